"""Each supported architecture through vllm.LLM with the tt platform, against transformers.

Random-weight models keep this fast; they need no tokenizer (token ids in, token ids out).
"""

from __future__ import annotations

import pytest

from tests.e2e.in_process import in_process_llm
from tests.e2e.random_models import architecture_configs, save_random_model
from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine

PROMPTS = [[5, 17, 301, 44, 9], [100, 200, 300], list(range(3, 70)), [7]]
MAX_TOKENS = 12


@pytest.mark.parametrize("arch", sorted(architecture_configs()))
def test_greedy_matches_transformers(arch, tmp_path):
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    folder = str(save_random_model(arch, tmp_path / arch))
    expected = transformers_greedy(folder, PROMPTS, MAX_TOKENS)

    # The engine core in this process: no second process to start for a two-layer model.
    with in_process_llm(
        model=folder,
        skip_tokenizer_init=True,
        dtype="float32",
        max_model_len=256,
        max_num_seqs=4,
        block_size=16,
        additional_config={"tt": {"kv_cache_tokens": 4096}},
    ) as llm:
        params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True, detokenize=False)
        outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in PROMPTS], params)
        assert [list(o.outputs[0].token_ids) for o in outputs] == expected
