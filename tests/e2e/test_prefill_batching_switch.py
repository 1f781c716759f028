"""The ``prefill_batching`` TT option: off, every request is prefilled in its own ``prefill_forward``
call (Tenstorrent's one-user-at-a-time prefill); the generated tokens are the same as with it on.

The engine core runs in this process so the test can see each ``prefill_forward`` call's batch size:
without that, "on" and "off" giving the same tokens would also pass if the option did nothing.
"""

from __future__ import annotations

import pytest

from tests.e2e.in_process import in_process_llm

pytestmark = pytest.mark.engine

PROMPTS = [
    "Hi",
    "The capital of France is",
    "Write a haiku about the sea.",
    "1, 2, 3, 4,",
    # Longer than the step's token budget (MAX_BATCHED_TOKENS): prefilled in chunks over several steps.
    "In a distant galaxy, far beyond the reach of the brightest telescopes, a small team of engineers "
    "was building a machine that could think. They worked for years in a cold laboratory carved into "
    "the side of a mountain, and every night they argued about what the machine should be allowed to "
    "know, what it should be allowed to say, and who would decide. Their first question to it was simple:",
]
MAX_TOKENS = 16
MAX_BATCHED_TOKENS = 64


def _run(model: str, prefill_batching: bool) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """Greedy tokens, top prompt-logprob token ids, and the batch size of every prefill_forward call."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    # In-process engine core: collective_rpc then runs its callable on the worker in this process.
    with in_process_llm(
        model=model,
        dtype="float32",
        max_model_len=512,
        max_num_seqs=8,
        max_num_batched_tokens=MAX_BATCHED_TOKENS,
        enable_prefix_caching=False,  # the second generate must prefill every prompt again
        seed=0,
        additional_config={"tt": {"kv_cache_tokens": 4096, "prefill_batching": prefill_batching}},
    ) as llm:
        calls: list[int] = []

        def count_prefill_calls(worker) -> None:
            model = worker.model_runner.tt_model
            forward = model.prefill_forward

            def counted(tokens, *args, **kwargs):
                calls.append(int(tokens.shape[0]))
                return forward(tokens, *args, **kwargs)

            model.prefill_forward = counted

        llm.collective_rpc(count_prefill_calls)
        tokenizer = llm.get_tokenizer()
        prompts = [TokensPrompt(prompt_token_ids=tokenizer.encode(p)) for p in PROMPTS]
        assert len(prompts[-1]["prompt_token_ids"]) > MAX_BATCHED_TOKENS, "the long prompt must be chunked"

        greedy = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
        tokens = [list(o.outputs[0].token_ids) for o in llm.generate(prompts, greedy)]
        # Prompt logprobs take the runner's other prefill path (every position's logits, flat).
        with_logprobs = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1)
        top_prompt_tokens = [
            [max(position, key=lambda t: position[t].logprob) for position in o.prompt_logprobs[1:]]
            for o in llm.generate(prompts, with_logprobs)
        ]
        return tokens, top_prompt_tokens, calls


@pytest.fixture(scope="module")
def runs(default_model_path):
    return {on: _run(default_model_path, on) for on in (True, False)}


def test_prefill_batching_on_batches_and_off_prefills_one_request_per_call(runs):
    _, _, calls_on = runs[True]
    _, _, calls_off = runs[False]
    assert max(calls_on) > 1, f"batched prefill never put two requests in one call: {calls_on}"
    assert set(calls_off) == {1}, f"with prefill_batching off a call held several requests: {calls_off}"
    # Two generates of len(PROMPTS) requests, the long one in several chunks.
    assert len(calls_off) > 2 * len(PROMPTS)
    assert len(calls_off) > len(calls_on)


def test_greedy_tokens_identical_with_prefill_batching_on_and_off(runs):
    tokens_on, _, _ = runs[True]
    tokens_off, _, _ = runs[False]
    for prompt, on, off in zip(PROMPTS, tokens_on, tokens_off, strict=True):
        assert len(on) == MAX_TOKENS
        assert off == on, f"prompt {prompt[:40]!r}"


def test_prompt_logprobs_identical_with_prefill_batching_on_and_off(runs):
    _, top_on, _ = runs[True]
    _, top_off, _ = runs[False]
    assert sum(map(len, top_on)) > 90, "expected one top token per prompt position after the first"
    assert top_off == top_on
