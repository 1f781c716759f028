"""vllm.LLM on vLLM 0.25.1 with the tt platform on the host device: the embedded model, greedy,
token-identical to transformers, on the host models' plain-torch paths (no vllm._C here).

One in-process engine for the module (its runner is then reachable through ``collective_rpc``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.in_process import in_process_llm
from tests.vllm025.conftest import MAX_TOKENS, PROMPTS

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def llm(default_model_path) -> Iterator[Any]:
    with in_process_llm(
        model=default_model_path,
        dtype="float32",
        max_model_len=512,
        max_num_seqs=8,
        seed=0,
        additional_config={"tt": {"kv_cache_tokens": 8192}},
    ) as engine:
        yield engine


def _greedy(llm, prompt_ids: list[list[int]]) -> list[list[int]]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    sampling = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], sampling)
    return [list(output.outputs[0].token_ids) for output in outputs]


def test_platform_is_tt_on_vllm_0_25_1(llm):
    import vllm
    from vllm.platforms import current_platform

    assert (vllm.__version__, current_platform.device_name) == ("0.25.1", "tt")


def test_batched_greedy_matches_transformers(llm, prompt_ids, reference):
    for prompt, expected, actual in zip(PROMPTS, reference, _greedy(llm, prompt_ids), strict=True):
        assert actual == expected, f"prompt {prompt!r}"


def test_one_prompt_at_a_time_matches_too(llm, prompt_ids, reference):
    # A lone request takes other paths (no batched prefill, decode batch of one).
    assert _greedy(llm, prompt_ids[:1]) == reference[:1]


def _model_paths(worker) -> dict[str, Any]:
    model = worker.model_runner.tt_model
    layer = model.weights.layers[0]
    return {
        "fused_ops": model.ops.fused,
        "rope_fused": model.rope.fused,
        "vllm_attention": model.attention.name == "vllm",
        "linear": sorted(
            {linear.backend for linear in (layer.qkv, layer.o, layer.mlp.gate_up, layer.mlp.down)}
        ),
        "lm_head": model.weights.lm_head.backend,
        "cpu_sampling_kernel": worker.model_runner.sampler.topk_topp_sampler.forward.__name__,
    }


def test_the_host_model_runs_its_plain_torch_paths(llm):
    paths = llm.collective_rpc(_model_paths)[0]
    assert paths == {
        "fused_ops": False,
        "rope_fused": False,
        "vllm_attention": False,
        "linear": ["torch"],
        "lm_head": "torch",
        "cpu_sampling_kernel": "forward_native",
    }
