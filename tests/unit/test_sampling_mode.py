"""Which sampler runs a step (worker/sampling_mode.py): the rule, table-driven, on real SamplingParams."""

from __future__ import annotations

import pytest
from vllm.sampling_params import SamplingParams, StructuredOutputsParams
from vllm.v1.sample.sampler import Sampler

from tt_vllm_plugin.models.device_sampling import device_max_top_k
from tt_vllm_plugin.worker.sampling_mode import (
    SamplingPath,
    choose_sampling_path,
    host_sampling_reason,
    use_vllm_cpu_sampling_kernel,
)

DEVICE_OK = [
    SamplingParams(temperature=0.0),
    SamplingParams(temperature=0.0, top_k=0),  # greedy: the top-k limit does not matter
    SamplingParams(temperature=0.8, top_k=20, top_p=0.9, seed=3),
    SamplingParams(temperature=1.0, top_k=32),
    SamplingParams(temperature=0.0, stop=["x"], stop_token_ids=[5], ignore_eos=True, max_tokens=3, n=1),
]

HOST_ONLY = [
    (SamplingParams(temperature=0.0, logprobs=5), "logprobs"),
    (SamplingParams(temperature=0.0, logprobs=0), "logprobs"),
    (SamplingParams(temperature=0.0, prompt_logprobs=1), "prompt_logprobs"),
    (SamplingParams(temperature=0.0, presence_penalty=0.5), "presence_penalty"),
    (SamplingParams(temperature=0.0, frequency_penalty=0.5), "frequency_penalty"),
    (SamplingParams(temperature=0.0, repetition_penalty=1.2), "repetition_penalty"),
    (SamplingParams(temperature=0.7, top_k=10, min_p=0.1), "min_p"),
    (SamplingParams(temperature=0.0, logit_bias={3: 5.0}), "logit_bias"),
    (SamplingParams(temperature=0.0, allowed_token_ids=[1, 2]), "allowed_token_ids"),
    (SamplingParams(temperature=0.0, bad_words=["cat"]), "bad_words"),
    (SamplingParams(temperature=0.0, min_tokens=4), "min_tokens"),
    (
        SamplingParams(temperature=0.0, structured_outputs=StructuredOutputsParams(choice=["a", "b"])),
        "structured output",
    ),
    (SamplingParams(temperature=0.0, extra_args={"my_processor": 1}), "extra_args"),
    (
        SamplingParams(temperature=1.0, top_k=0),
        "top_k=0 (the device sampler keeps at most 32 candidates)",
    ),
    (
        SamplingParams(temperature=1.0, top_k=33),
        "top_k=33 (the device sampler keeps at most 32 candidates)",
    ),
    (None, "no sampling parameters"),
]


@pytest.mark.parametrize("params", DEVICE_OK)
def test_what_the_device_sampler_does(params):
    assert host_sampling_reason(params) is None


@pytest.mark.parametrize(("params", "reason"), HOST_ONLY)
def test_what_needs_vllms_sampler(params, reason):
    assert host_sampling_reason(params) == reason


def _path(requests, **overrides) -> SamplingPath:
    settings = dict(
        model_samples_on_device=True,
        sample_on_device_mode="all",
        always_compat_sampling=False,
        has_prefill=False,
        custom_logits_processors=False,
    )
    settings.update(overrides)
    return choose_sampling_path(requests=requests, **settings)


GREEDY = SamplingParams(temperature=0.0)
WITH_LOGPROBS = SamplingParams(temperature=0.0, logprobs=1)


@pytest.mark.parametrize(
    ("overrides", "requests", "expected"),
    [
        ({}, [GREEDY, DEVICE_OK[2]], SamplingPath.DEVICE),
        ({"has_prefill": True}, [GREEDY], SamplingPath.DEVICE),
        ({"sample_on_device_mode": "decode_only"}, [GREEDY], SamplingPath.DEVICE),
        ({"sample_on_device_mode": "decode_only", "has_prefill": True}, [GREEDY], SamplingPath.HOST),
        ({"sample_on_device_mode": None}, [GREEDY], SamplingPath.HOST),
        ({"model_samples_on_device": False}, [GREEDY], SamplingPath.HOST),
        ({"always_compat_sampling": True}, [GREEDY], SamplingPath.HOST),
        ({"custom_logits_processors": True}, [GREEDY], SamplingPath.HOST),
        # One request that needs vLLM's sampler sends the whole step there.
        ({}, [GREEDY, GREEDY, WITH_LOGPROBS], SamplingPath.HOST),
        ({}, [], SamplingPath.DEVICE),
        # A model whose device sampler is greedy only (max_device_top_k 0) samples greedy steps.
        ({"max_top_k": 0}, [GREEDY], SamplingPath.DEVICE),
        ({"max_top_k": 0}, [GREEDY, DEVICE_OK[2]], SamplingPath.HOST),
        ({"max_top_k": 10}, [DEVICE_OK[2]], SamplingPath.HOST),
    ],
)
def test_the_step_rule(overrides, requests, expected):
    assert _path(requests, **overrides) is expected


def test_the_device_top_k_limit_is_the_models_when_it_declares_one():
    class Declares:
        model_capabilities = {"supports_sample_on_device": True, "max_device_top_k": 0}

    class Silent:
        model_capabilities = {"supports_sample_on_device": True}

    assert (device_max_top_k(Declares()), device_max_top_k(Silent()), device_max_top_k(object())) == (
        0,
        32,
        32,
    )


def test_an_unknown_mode_is_refused_by_name():
    with pytest.raises(
        ValueError, match="sample_on_device_mode must be None, 'all' or 'decode_only', got 'x'"
    ):
        _path([GREEDY], sample_on_device_mode="x")


def test_the_host_sampler_uses_vllms_cpu_kernel():
    sampler = Sampler()
    topk_topp = sampler.topk_topp_sampler
    # Not a CPU platform to vLLM, so it picked the native exponential-noise path ...
    assert topk_topp.forward == topk_topp.forward_native
    assert use_vllm_cpu_sampling_kernel(sampler)
    # ... and now samples with the Gumbel-max kernel vLLM's CPU platform uses.
    assert topk_topp.forward == topk_topp.forward_cpu
    assert not use_vllm_cpu_sampling_kernel(Sampler(use_fp64_gumbel=True))


def test_the_native_and_cpu_kernels_draw_different_tokens_for_one_seed():
    """Why the host sampler is switched: same logits, same seed, different tokens per kernel."""
    import torch

    topk_topp = Sampler().topk_topp_sampler
    logits = torch.randn(1, 1000, generator=torch.Generator().manual_seed(0))

    def draws(forward) -> list[int]:
        generator = torch.Generator().manual_seed(5)
        return [int(forward(logits.clone(), {0: generator}, None, None)[0][0]) for _ in range(20)]

    assert draws(topk_topp.forward_cpu) == draws(topk_topp.forward_cpu)  # each is reproducible
    assert draws(topk_topp.forward_native) != draws(topk_topp.forward_cpu)
