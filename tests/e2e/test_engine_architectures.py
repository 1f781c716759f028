"""Each supported architecture through vllm.LLM with the tt platform, against transformers.

Random-weight models keep this fast; they need no tokenizer (token ids in, token ids out). One engine per
architecture runs two rounds: a batch of prompts of mixed lengths (one longer than every sliding window
of the random models and than a prefill chunk, so it is prefilled in chunks), then prompts that share
that long prompt's prefix (prefix-cache hits), batched with a fresh one.
"""

from __future__ import annotations

import pytest

from tests.e2e.in_process import in_process_llm
from tests.e2e.random_models import architecture_configs, longest_window, save_random_model
from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine

CHUNK = 48  # max_num_batched_tokens: prompts longer than this are prefilled in chunks
LONG = [(7 * i + 3) % 509 + 3 for i in range(150)]
PROMPTS = [[5, 17, 301, 44, 9], [100, 200, 300], list(range(3, 70)), [7], LONG]
# Served after PROMPTS: the first two reuse LONG's cached blocks, the last is new.
FOLLOW_UPS = [LONG[:131] + [11, 12, 13], LONG + [400, 401], [42, 43, 44, 45]]
BLOCK_SIZE = 16
MAX_TOKENS = 12


def test_the_long_prompts_cross_every_window_and_chunk():
    assert len(LONG) > max(longest_window(), CHUNK) * 2


@pytest.mark.parametrize("arch", sorted(architecture_configs()))
def test_greedy_matches_transformers(arch, tmp_path):
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    folder = str(save_random_model(arch, tmp_path / arch))
    expected = transformers_greedy(folder, PROMPTS + FOLLOW_UPS, MAX_TOKENS)

    # The engine core in this process: no second process to start for a two-layer model.
    with in_process_llm(
        model=folder,
        skip_tokenizer_init=True,
        dtype="float32",
        max_model_len=256,
        max_num_seqs=4,
        block_size=BLOCK_SIZE,
        enable_prefix_caching=True,
        enable_chunked_prefill=True,
        max_num_batched_tokens=CHUNK,
        additional_config={"tt": {"kv_cache_tokens": 4096}},
    ) as llm:
        params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True, detokenize=False)

        def generate(prompts: list[list[int]]) -> list:
            return llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params)

        first = generate(PROMPTS)
        assert [list(o.outputs[0].token_ids) for o in first] == expected[: len(PROMPTS)]
        second = generate(FOLLOW_UPS)
        assert [list(o.outputs[0].token_ids) for o in second] == expected[len(PROMPTS) :]
        cached = [o.num_cached_tokens for o in second]
        assert cached[0] == BLOCK_SIZE * (131 // BLOCK_SIZE) and cached[1] >= BLOCK_SIZE * (150 // BLOCK_SIZE)
