"""A step's ``ModelRunnerOutput``, finished on first demand (vLLM's ``AsyncModelRunnerOutput``).

``sample_tokens`` returns one of these instead of waiting for the device. vLLM's engine core asks for
the output (``get_output``) only when it pops the step from its batch queue, which under async
scheduling is after it has scheduled, and the runner has launched, the next step; the runner itself
finishes the step first thing in the next ``execute_model``, because that step's inputs are this
step's sampled tokens. Whichever asks first does the work; the other gets the same result (or the
same error). A lock makes that safe when an executor calls ``get_output`` from its own thread
(vLLM's multiprocess workers do).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from vllm.v1.outputs import AsyncModelRunnerOutput, ModelRunnerOutput

from tt_vllm_plugin.worker.fault_injection import record_engine_failure


class StepOutput(AsyncModelRunnerOutput):
    def __init__(self, finish: Callable[[], ModelRunnerOutput]) -> None:
        self._finish: Callable[[], ModelRunnerOutput] | None = finish
        self._lock = threading.Lock()
        self._output: ModelRunnerOutput | None = None
        self._error: BaseException | None = None

    def get_output(self) -> ModelRunnerOutput:
        with self._lock:
            if self._finish is not None:
                finish, self._finish = self._finish, None
                try:
                    self._output = finish()
                except BaseException as error:
                    self._error = error
                    record_engine_failure(error)  # outside the worker's own try: tt-serve reads why
        if self._error is not None:
            raise self._error
        assert self._output is not None
        return self._output

    def get_kv_connector_output(self) -> None:
        """No KV connector output (``--kv-transfer-config`` is refused); abstract in vLLM 0.34's
        ``AsyncModelRunnerOutput``, absent before."""
        return None

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._finish is None
