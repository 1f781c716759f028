"""StepOutput (worker/step_output.py): a step's output is finished once, by whoever asks first."""

from __future__ import annotations

import threading

import pytest
from vllm.v1.outputs import ModelRunnerOutput

from tt_vllm_plugin.worker.step_output import StepOutput


def test_the_step_is_finished_once_and_every_caller_gets_that_output():
    calls = []

    def finish() -> ModelRunnerOutput:
        calls.append(threading.get_ident())
        return ModelRunnerOutput(req_ids=["a"], req_id_to_index={"a": 0}, sampled_token_ids=[[7]])

    step = StepOutput(finish)
    assert not step.finished
    callers = [threading.Thread(target=step.get_output) for _ in range(4)]
    for thread in callers:
        thread.start()
    first = step.get_output()
    for thread in callers:
        thread.join()
    assert len(calls) == 1 and step.finished
    assert first.sampled_token_ids == [[7]] and step.get_output() is first


def test_a_failed_step_raises_the_same_error_for_every_caller_and_records_it(tmp_path, monkeypatch):
    failure_file = tmp_path / "failure"
    monkeypatch.setenv("TT_VLLM_ENGINE_FAILURE_FILE", str(failure_file))
    calls = []

    def finish() -> ModelRunnerOutput:
        calls.append(1)
        raise RuntimeError("device read failed")

    step = StepOutput(finish)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="^device read failed$"):
            step.get_output()
    assert len(calls) == 1
    assert failure_file.read_text() == "RuntimeError: device read failed\n"


def test_an_error_seen_by_the_step_and_then_by_the_worker_is_one_line(tmp_path, monkeypatch):
    from tt_vllm_plugin.worker.fault_injection import record_engine_failure

    failure_file = tmp_path / "failure"
    monkeypatch.setenv("TT_VLLM_ENGINE_FAILURE_FILE", str(failure_file))
    error = RuntimeError("device read failed")

    def finish() -> ModelRunnerOutput:
        raise error

    with pytest.raises(RuntimeError):
        StepOutput(finish).get_output()
    record_engine_failure(error)  # what the worker's execute_model does with the same exception
    record_engine_failure(RuntimeError("another failure"))
    assert failure_file.read_text() == "RuntimeError: device read failed\nRuntimeError: another failure\n"
