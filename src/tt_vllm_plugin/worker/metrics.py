"""The plugin's Prometheus metrics (``tt_vllm_*``), served by vLLM's own ``/metrics``.

Why it is wired this way. The runner lives in vLLM's engine-core process; ``/metrics`` is served by the
API-server process from prometheus_client's default registry (with one API server). vLLM's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``, which ``--api-server-count`` > 1 or the user sets) cannot simply be
switched on by the plugin: prometheus_client picks in-memory or file-backed values once, when it is
imported, and the API server imports it before any plugin code runs, so its vLLM metrics would stay in
memory while ``get_prometheus_registry()`` served only the directory, and they would vanish. Instead:

- API-server side (``export_engine_metrics``, from the platform's config check, in the process that is
  not a multiprocessing child): make a private directory, pass it to the engine core in
  ``TT_VLLM_METRICS_DIR``, and add prometheus_client's ``MultiProcessCollector`` for that directory alone
  to the default registry. ``/metrics`` shows vLLM's metrics exactly as before, plus ours. The directory
  is removed when that process exits.
- Engine-core side (``engine_metrics``): the metrics are created with prometheus_client's file-backed
  values (``MultiProcessValue``) in that directory, in a private registry; nothing else changes there.
- In vLLM's multiprocess mode the engine core already writes file-backed values into vLLM's directory,
  which vLLM's registry collects: the plugin adds nothing.

Every series carries ``backend`` (``TT_SERVE_BACKEND``, else "tt") and ``device`` (host|ttnn).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter as RefCounts
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values

from tt_vllm_plugin import envs
from tt_vllm_plugin.compat import resumed_req_ids

METRICS_DIR_ENV = envs.TT_VLLM_METRICS_DIR.name
BACKEND_ENV = envs.TT_SERVE_BACKEND.name
PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
LABELS = ("backend", "device")

_MODEL_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_OVERHEAD_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

_exported_dir: str | None = None  # the directory this process collects, once set up
_file_value_class: Any = None  # one per process: two classes would map the same files twice
_engine_metrics: dict[tuple[str, str], StepMetrics] = {}


def export_engine_metrics() -> str | None:
    """API-server side: collect the engine core's ``tt_vllm_*`` metrics into the default registry.

    Returns the directory the engine core writes to (None in vLLM's multiprocess mode, or in a
    multiprocessing child such as the engine core itself, which must not start its own collection)."""
    global _exported_dir
    if os.environ.get(PROMETHEUS_DIR_ENV) or multiprocessing.parent_process() is not None:
        return None
    if _exported_dir is None:
        directory = tempfile.mkdtemp(prefix="tt-vllm-metrics-")
        multiprocess.MultiProcessCollector(REGISTRY, path=directory)
        owner = os.getpid()
        # Forked children inherit atexit handlers; only the owner removes the directory.
        atexit.register(lambda: os.getpid() == owner and shutil.rmtree(directory, ignore_errors=True))
        _exported_dir = directory
    # Overwrites a directory inherited from a parent process: that one belongs to another server.
    os.environ[METRICS_DIR_ENV] = _exported_dir
    return _exported_dir


def backend_label() -> str:
    return os.environ.get(BACKEND_ENV, "").strip() or "tt"


def engine_metrics(device: str) -> StepMetrics:
    """Engine-core side: this process's metrics for ``device`` (created once, then shared)."""
    key = (backend_label(), device)
    if key not in _engine_metrics:
        directory = os.environ.get(METRICS_DIR_ENV) or ""
        if getattr(values.ValueClass, "_multiprocess", False) or not os.path.isdir(directory):
            # vLLM's multiprocess mode (already file-backed), or nobody collects: plain values.
            _engine_metrics[key] = StepMetrics(*key)
        else:
            with _file_backed_values(directory):
                _engine_metrics[key] = StepMetrics(*key)
    return _engine_metrics[key]


@contextmanager
def _file_backed_values(directory: str) -> Iterator[None]:
    """Create metrics with prometheus_client's multiprocess values in ``directory``. Each labelled child
    opens its file when created, so every child is created inside this block (see ``StepMetrics``)."""
    global _file_value_class
    saved_class, saved_dir = values.ValueClass, os.environ.get(PROMETHEUS_DIR_ENV)
    os.environ[PROMETHEUS_DIR_ENV] = directory
    if _file_value_class is None:
        _file_value_class = values.MultiProcessValue()
    values.ValueClass = _file_value_class
    try:
        yield
    finally:
        values.ValueClass = saved_class
        if saved_dir is None:
            os.environ.pop(PROMETHEUS_DIR_ENV, None)
        else:
            os.environ[PROMETHEUS_DIR_ENV] = saved_dir


class StepMetrics:
    """Per-step figures of one engine: model time, host overhead, batch rows, KV blocks, samplers.

    Call order per step (the worker and runner do this): ``begin_step`` -> ``model_call`` (prefill,
    decode) -> ``end_execute`` -> ``begin_sample`` -> ``end_step``. A step with no model call (nothing
    scheduled) records nothing but its KV bookkeeping."""

    def __init__(self, backend: str, device: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        labels = {"backend": backend, "device": device}

        def histogram(name: str, text: str, buckets: tuple[float, ...]) -> Any:
            return Histogram(name, text, LABELS, registry=r, buckets=buckets).labels(**labels)

        self.prefill_seconds = histogram(
            "tt_vllm_prefill_model_seconds", "Model time of a step's prefill call(s).", _MODEL_SECONDS
        )
        self.decode_seconds = histogram(
            "tt_vllm_decode_model_seconds",
            "Model time of a step's decode call (with async decode: issuing it; see decode_wait).",
            _MODEL_SECONDS,
        )
        self.host_overhead_seconds = histogram(
            "tt_vllm_step_host_overhead_seconds",
            "Time a step spends in the runner outside model calls (batch update, inputs, sampling).",
            _OVERHEAD_SECONDS,
        )
        self.decode_wait_seconds = histogram(
            "tt_vllm_decode_wait_seconds",
            "With async decode: the wait for a decode's output when its step is finished.",
            _MODEL_SECONDS,
        )
        self.prefill_rows = histogram("tt_vllm_prefill_rows", "Requests prefilled in a step.", _ROWS)
        self.decode_rows = histogram("tt_vllm_decode_rows", "Requests decoded in a step.", _ROWS)
        steps = Counter("tt_vllm_steps", "Steps that ran the model.", LABELS, registry=r)
        self.steps = steps.labels(**labels)
        sampling = Counter(
            "tt_vllm_sampling_steps",
            "Steps sampled by the model's device sampler or by vLLM's sampler on the host.",
            (*LABELS, "sampler"),
            registry=r,
        )
        self.sampled_on = {where: sampling.labels(**labels, sampler=where) for where in ("device", "host")}
        blocks = Gauge(
            "tt_vllm_kv_cache_blocks",
            "KV cache blocks held by requests (used) and available (free).",
            (*LABELS, "state"),
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.kv_used = blocks.labels(**labels, state="used")
        self.kv_free = blocks.labels(**labels, state="free")

        self._usable_blocks = 0
        self._block_refs: RefCounts[int] = RefCounts()
        self._req_blocks: dict[str, list[int]] = {}
        self._runner_seconds = 0.0
        self._model_seconds = 0.0
        self._model_called = False
        self._mark = 0.0
        self._sampling_totals: dict[str, int] = {}

    # ---- KV blocks ------------------------------------------------------------------------------

    def set_num_blocks(self, num_blocks: int) -> None:
        self._usable_blocks = max(0, num_blocks - 1)  # vLLM keeps block 0 as its null block
        self._req_blocks.clear()  # a new KV cache: a new engine (several may run in one process)
        self._block_refs.clear()
        self._publish_blocks()

    def _track_blocks(self, scheduler_output: Any) -> None:
        """Follow the block lists the scheduler hands out (new, grown, resumed, finished, preempted)."""
        for req_id in (*scheduler_output.finished_req_ids, *(scheduler_output.preempted_req_ids or ())):
            self._drop(req_id)
        for new in scheduler_output.scheduled_new_reqs:
            self._drop(new.req_id)
            self._add(new.req_id, [b for group in new.block_ids[:1] for b in group])
        cached = scheduler_output.scheduled_cached_reqs
        resumed = resumed_req_ids(cached)
        for req_id, new_ids in zip(cached.req_ids, cached.new_block_ids, strict=True):
            if req_id in resumed:
                self._drop(req_id)  # a resumed request's list replaces the old one
            if new_ids is not None:
                self._add(req_id, list(new_ids[0]))
        self._publish_blocks()

    def _add(self, req_id: str, block_ids: list[int]) -> None:
        self._req_blocks.setdefault(req_id, []).extend(block_ids)
        self._block_refs.update(block_ids)

    def _drop(self, req_id: str) -> None:
        self._block_refs.subtract(self._req_blocks.pop(req_id, ()))
        self._block_refs = +self._block_refs  # forget blocks no request holds any more

    def _publish_blocks(self) -> None:
        used = len(self._block_refs)
        self.kv_used.set(used)
        self.kv_free.set(max(0, self._usable_blocks - used))

    # ---- step timing ----------------------------------------------------------------------------

    def begin_step(self, scheduler_output: Any) -> None:
        self._track_blocks(scheduler_output)
        self._runner_seconds = self._model_seconds = 0.0
        self._model_called = False
        self._mark = time.perf_counter()

    @contextmanager
    def model_call(self, kind: str, rows: int) -> Iterator[None]:
        """Time one kind of model call ("prefill" or "decode") of ``rows`` requests."""
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self._model_seconds += elapsed
        self._model_called = True
        if kind == "prefill":
            self.prefill_seconds.observe(elapsed)
            self.prefill_rows.observe(rows)
        else:
            self.decode_seconds.observe(elapsed)
            self.decode_rows.observe(rows)

    @contextmanager
    def model_wait(self) -> Iterator[None]:
        """Time the wait for an async decode's output (when its step is finished): model time too."""
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self._model_seconds += elapsed
        self.decode_wait_seconds.observe(elapsed)

    def end_execute(self) -> None:
        self._runner_seconds += time.perf_counter() - self._mark

    def begin_sample(self) -> None:
        self._mark = time.perf_counter()

    def end_step(self, sampling_totals: Mapping[str, int]) -> None:
        """Close a step. ``sampling_totals``: the runner's running count of steps per sampler
        ("device"/"host"); the counters advance by what it grew since the last step."""
        self._runner_seconds += time.perf_counter() - self._mark
        if not self._model_called:
            return
        self._model_called = False
        self.steps.inc()
        self.host_overhead_seconds.observe(max(0.0, self._runner_seconds - self._model_seconds))
        for where, total in sampling_totals.items():
            if total > self._sampling_totals.get(where, 0):
                self.sampled_on[where].inc(total - self._sampling_totals.get(where, 0))
                self._sampling_totals[where] = total
