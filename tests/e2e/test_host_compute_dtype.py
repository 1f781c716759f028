"""A bf16 checkpoint on a CPU without native bf16 arithmetic is computed in fp32 (device/cpu_dtype.py),
and its tokens are exactly those of the same checkpoint served with ``dtype="float32"``: converting the
weights at load changes where the conversion happens, not the result.

"Without native bf16" is this machine with oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA``), which the
decision reads whatever the silicon has.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.e2e.in_process import in_process_llm
from tests.e2e.random_models import save_random_model
from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine

PROMPTS = [[5, 17, 301, 44, 9], list(range(3, 70)), [7]]
MAX_TOKENS = 12


def _bf16_checkpoint(folder: Path) -> str:
    from transformers import AutoModelForCausalLM

    fp32 = save_random_model("LlamaForCausalLM", folder / "fp32")
    model = AutoModelForCausalLM.from_pretrained(fp32, dtype=torch.bfloat16)
    model.save_pretrained(folder / "bf16")
    return str(folder / "bf16")


def _generate(folder: str, dtype: str) -> tuple[torch.dtype, list[list[int]]]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    with in_process_llm(
        model=folder,
        skip_tokenizer_init=True,
        dtype=dtype,
        max_model_len=256,
        max_num_seqs=4,
        additional_config={"tt": {"kv_cache_tokens": 4096}},
    ) as llm:
        params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True, detokenize=False)
        outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in PROMPTS], params)
        return llm.llm_engine.model_config.dtype, [list(o.outputs[0].token_ids) for o in outputs]


def test_bf16_without_native_bf16_is_computed_in_fp32_with_fp32_tokens(tmp_path, monkeypatch):
    folder = _bf16_checkpoint(tmp_path)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    auto_dtype, auto_tokens = _generate(folder, "bfloat16")
    fp32_dtype, fp32_tokens = _generate(folder, "float32")
    assert auto_dtype == fp32_dtype == torch.float32
    assert auto_tokens == fp32_tokens == transformers_greedy(folder, PROMPTS, MAX_TOKENS)

    monkeypatch.setenv("TT_VLLM_HOST_COMPUTE_DTYPE", "model")  # the user's way to keep bf16 anyway
    kept_dtype, _ = _generate(folder, "bfloat16")
    assert kept_dtype == torch.bfloat16
