"""Async decode through a real engine: the engine core's host work for other steps runs between a
decode's launch and the moment its output is taken from the device.

The runner launches each decode (``decode_forward(read_from_device=False)`` plus the queued read
``read_decode_output(out, async_read=True)``) in ``execute_model`` and finishes the step later
(worker/step_output.py). Under vLLM's async scheduling the engine core meanwhile processes the previous
step's output (``update_from_output``) and schedules the next step (``schedule``): on a Tenstorrent
card or a CUDA host device that host work overlaps the decode. On the CPU host device the decode has
already run when ``decode_forward`` returns, so what this shows is the order of the calls, with the
engine core running in this process so the test can watch its scheduler and the model together.
"""

from __future__ import annotations

import pytest

from tests.e2e.in_process import in_process_llm
from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a land far away,"]
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def run(default_model_path):
    """The sequence of engine-core and model events, and each request's prompt and generated ids."""
    from vllm import SamplingParams

    with in_process_llm(
        model=default_model_path,
        dtype="float32",
        max_model_len=256,
        max_num_seqs=4,
        seed=0,
        additional_config={"tt": {"kv_cache_tokens": 4096}},
    ) as llm:
        assert llm.llm_engine.vllm_config.scheduler_config.async_scheduling
        events: list[str] = []
        scheduler = llm.llm_engine.engine_core.engine_core.scheduler
        schedule, update = scheduler.schedule, scheduler.update_from_output

        def watched_schedule(*args, **kwargs):
            events.append("schedule")
            return schedule(*args, **kwargs)

        def watched_update(*args, **kwargs):
            events.append("update")
            return update(*args, **kwargs)

        scheduler.schedule, scheduler.update_from_output = watched_schedule, watched_update

        def watch(worker) -> None:
            model = worker.model_runner.tt_model
            decode, read = model.decode_forward, model.read_decode_output
            process = model.process_decode_output_host

            def watched_decode(*args, **kwargs):
                events.append("decode" if kwargs.get("read_from_device") is False else "decode (reading)")
                return decode(*args, **kwargs)

            def watched_read(*args, **kwargs):
                events.append("read queued" if kwargs.get("async_read") else "read (blocking)")
                return read(*args, **kwargs)

            def watched_process(*args, **kwargs):
                events.append("output taken")
                return process(*args, **kwargs)

            model.decode_forward, model.read_decode_output = watched_decode, watched_read
            model.process_decode_output_host = watched_process

        llm.collective_rpc(watch)
        params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
        outputs = llm.generate(PROMPTS, params)
        yield events, [(o.prompt_token_ids, list(o.outputs[0].token_ids)) for o in outputs]


def test_tokens_match_transformers(run, default_model_path):
    _, requests = run
    prompts = [prompt for prompt, _ in requests]
    assert [tokens for _, tokens in requests] == transformers_greedy(default_model_path, prompts, MAX_TOKENS)


def test_each_decode_output_is_taken_after_the_engine_core_moved_on(run):
    events, _ = run
    launches = [i for i, event in enumerate(events) if event == "decode"]
    assert launches, "no async decode ran"
    assert "decode (reading)" not in events and "read (blocking)" not in events
    for launch in launches:
        assert events[launch + 1] == "read queued", events[launch : launch + 2]
        taken = events.index("output taken", launch)
        between = events[launch + 2 : taken]
        # One decode in flight at a time: its output is taken before the next one is launched.
        assert "decode" not in between
        # vLLM processed the previous step's output and scheduled the next step meanwhile.
        assert "update" in between and "schedule" in between, between
    assert events.count("output taken") == len(launches)
