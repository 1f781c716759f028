"""A KV pool too small for the batch: vLLM preempts (recompute) and the outputs stay correct.

Also runs with vLLM's async scheduling off (the default engine in the other tests runs it on).
"""

from __future__ import annotations

import gc

import pytest

from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine

MAX_TOKENS = 40
PROMPTS = [
    "Tell me a story about a dragon",
    "List three prime numbers:",
    "The quick brown fox",
    "Explain photosynthesis in one sentence.",
    "Once upon a time",
    "What is the tallest mountain?",
]


def _preemptions(llm) -> float:
    return sum(metric.value for metric in llm.get_metrics() if metric.name == "vllm:num_preemptions")


def test_tiny_kv_pool_preempts_and_matches_transformers(default_model_path):
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    block_size = 16
    llm = LLM(
        model=default_model_path,
        dtype="float32",
        max_model_len=128,
        max_num_seqs=6,
        block_size=block_size,
        async_scheduling=False,
        disable_log_stats=False,
        # 12 blocks: the six requests need up to 4 blocks each at the end, so some must wait.
        additional_config={"tt": {"kv_cache_tokens": 12 * block_size}},
    )
    try:
        tokenizer = llm.get_tokenizer()
        prompt_ids = [tokenizer.encode(p) for p in PROMPTS]
        params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
        outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params)
        assert _preemptions(llm) > 0, "the pool was meant to be too small: no preemption happened"
        got = [list(o.outputs[0].token_ids) for o in outputs]
    finally:
        del llm
        gc.collect()
    assert got == transformers_greedy(default_model_path, prompt_ids, MAX_TOKENS)
