"""vllm.LLM on a Tenstorrent-built vLLM (0.25.1, 0.26.0, 0.34.0) with the tt platform on the host
device: the embedded model, greedy, token-identical to transformers, on the host models' plain-torch
paths (no vllm._C here), with vLLM's V1 sampler where the release has it and the plugin's host sampler
where it does not (0.34).

One in-process engine for the module (its runner is then reachable through ``collective_rpc``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.in_process import in_process_llm
from tests.tenstorrent_vllm.conftest import MAX_TOKENS, PROMPTS
from tt_vllm_plugin import compat

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


def test_platform_is_tt_on_this_release(llm, vllm_release):
    import vllm
    from vllm.platforms import current_platform

    assert (vllm.__version__, current_platform.device_name) == (vllm_release, "tt")


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
        "sampler": _sampler_path(worker.model_runner.sampler),
    }


def _sampler_path(sampler) -> str:
    topk_topp = getattr(sampler, "topk_topp_sampler", None)
    return f"{type(sampler).__name__}.{topk_topp.forward.__name__ if topk_topp else '__call__'}"


def test_the_host_model_runs_its_plain_torch_paths(llm):
    paths = llm.collective_rpc(_model_paths)[0]
    assert paths == {
        "fused_ops": False,
        "rope_fused": False,
        "vllm_attention": False,
        "linear": ["torch"],
        "lm_head": "torch",
        # vLLM's V1 sampler on its PyTorch path up to 0.32; 0.34 has none: the plugin's host sampler.
        "sampler": "Sampler.forward_native" if compat.vllm_v1_runner_parts() else "HostSampler.__call__",
    }


def test_what_only_vllms_v1_sampler_does_is_refused_where_the_host_sampler_samples(llm):
    from vllm import SamplingParams
    from vllm.exceptions import VLLMValidationError

    params = SamplingParams(temperature=0.0, max_tokens=2, logprob_token_ids=[5, 7])
    if compat.vllm_v1_runner_parts():  # 0.25.1, 0.26.0: vLLM's V1 sampler does it
        output = llm.generate(["Hi"], params)[0].outputs[0]
        assert len(output.token_ids) == 2 and output.logprobs is not None
        return
    with pytest.raises(VLLMValidationError) as error:  # 0.34: refused per request, naming the field
        llm.generate(["Hi"], params)
    assert "logprob_token_ids (logprobs of chosen token ids) is not supported on the tt platform" in str(
        error.value
    )
