"""A KV pool too small for the batch on a Tenstorrent-built vLLM: vLLM preempts (recompute) and the
outputs stay transformers'. Up to 0.32 a resumed request comes back through ``resumed_req_ids``; 0.34
re-sends it as a new request whose ``prefill_token_ids`` hold its prompt and generated tokens
(compat.new_request_output_tokens), which this covers for real."""

from __future__ import annotations

import pytest

from tests.e2e.in_process import in_process_llm
from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine


PREEMPT_PROMPTS = [
    "Tell me a story about a dragon",
    "List three prime numbers:",
    "The quick brown fox",
    "Explain photosynthesis in one sentence.",
]
PREEMPT_TOKENS = 40


def test_a_tiny_kv_pool_preempts_and_resumed_requests_match_transformers(default_model_path):
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    block_size = 16
    with in_process_llm(
        model=default_model_path,
        dtype="float32",
        max_model_len=128,
        max_num_seqs=4,
        block_size=block_size,
        disable_log_stats=False,
        # 10 blocks: four requests need up to 4 blocks each at the end, so some are preempted.
        additional_config={"tt": {"kv_cache_tokens": 10 * block_size}},
    ) as engine:
        tokenizer = engine.get_tokenizer()
        prompt_ids = [tokenizer.encode(p) for p in PREEMPT_PROMPTS]
        params = SamplingParams(temperature=0.0, max_tokens=PREEMPT_TOKENS, ignore_eos=True)
        outputs = engine.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params)
        preemptions = sum(m.value for m in engine.get_metrics() if m.name == "vllm:num_preemptions")
        got = [list(o.outputs[0].token_ids) for o in outputs]
    assert preemptions > 0, "the pool was meant to be too small: no preemption happened"
    assert got == transformers_greedy(default_model_path, prompt_ids, PREEMPT_TOKENS)
