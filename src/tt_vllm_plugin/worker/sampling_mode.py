"""Which sampler runs a step: the model's device sampler, or vLLM's ``Sampler`` on the host.

Tenstorrent's rule, mirrored: the device samples a step only when the model declares
``supports_sample_on_device``, ``sample_on_device_mode`` allows the step ("all", or "decode_only" for a
step with decode rows only), ``always_compat_sampling`` is off, and EVERY request in the step asks for
nothing beyond greedy / temperature / top-k (within the device's limit) / top-p / seed. Anything else
(logprobs, penalties, min_p, logit_bias, allowed tokens, bad words, min_tokens, grammars, custom logits
processors ...) sends the whole step to vLLM's sampler (Tenstorrent's "compat" sampling), so every
request gets exactly vLLM's results.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from vllm.sampling_params import SamplingParams

from tt_vllm_plugin.compat import has_vllm_cpu_op
from tt_vllm_plugin.models.device_sampling import (
    DEVICE_MAX_TOP_K,
    GREEDY_TEMPERATURE,
    SEED_RANGE,
    DeviceSamplingParams,
    request_seed_tensor,
)
from tt_vllm_plugin.options import TTOptions

if TYPE_CHECKING:
    from tt_vllm_plugin.worker.input_batch import TTInputBatch


class SamplingPath(enum.Enum):
    DEVICE = "device"
    HOST = "host"


def host_sampling_reason(params: SamplingParams | None, max_top_k: int = DEVICE_MAX_TOP_K) -> str | None:
    """The first thing ``params`` asks for that the device sampler does not do, or None."""
    if params is None:
        return "no sampling parameters"
    checks = (
        (params.logprobs is not None, "logprobs"),
        (params.prompt_logprobs is not None, "prompt_logprobs"),
        (bool(params.logprob_token_ids), "logprob_token_ids"),
        (params.presence_penalty != 0.0, "presence_penalty"),
        (params.frequency_penalty != 0.0, "frequency_penalty"),
        (params.repetition_penalty != 1.0, "repetition_penalty"),
        (params.min_p != 0.0, "min_p"),
        (bool(params.logit_bias), "logit_bias"),
        (params.allowed_token_ids is not None, "allowed_token_ids"),
        (bool(params.bad_words), "bad_words"),
        (params.min_tokens != 0, "min_tokens"),
        (params.structured_outputs is not None, "structured output"),
        (params.thinking_token_budget is not None, "thinking_token_budget"),
        # Custom logits processors read their per-request arguments from extra_args.
        (bool(params.extra_args), "extra_args"),
    )
    for needed, name in checks:
        if needed:
            return name
    # The device keeps at most max_top_k candidates: a random request without a top-k cut (or a
    # wider one) would get a narrower distribution there than vLLM gives it.
    if params.temperature >= GREEDY_TEMPERATURE and not 0 < params.top_k <= max_top_k:
        return f"top_k={params.top_k} (the device sampler keeps at most {max_top_k} candidates)"
    return None


def device_sampling_enabled(
    *, model_samples_on_device: bool, sample_on_device_mode: str | None, always_compat_sampling: bool
) -> bool:
    """Whether any step may sample on the device (then the model's warm-up prepares for it)."""
    return model_samples_on_device and sample_on_device_mode is not None and not always_compat_sampling


def choose_sampling_path(
    *,
    model_samples_on_device: bool,
    sample_on_device_mode: str | None,
    always_compat_sampling: bool,
    has_prefill: bool,
    custom_logits_processors: bool,
    requests: Iterable[SamplingParams | None],
    max_top_k: int = DEVICE_MAX_TOP_K,
) -> SamplingPath:
    """The sampler for one step (all its requests together); see the module docstring."""
    if not device_sampling_enabled(
        model_samples_on_device=model_samples_on_device,
        sample_on_device_mode=sample_on_device_mode,
        always_compat_sampling=always_compat_sampling,
    ):
        return SamplingPath.HOST
    if sample_on_device_mode == "decode_only" and has_prefill:
        return SamplingPath.HOST
    if sample_on_device_mode not in ("all", "decode_only"):
        raise ValueError(
            f"sample_on_device_mode must be None, 'all' or 'decode_only', got {sample_on_device_mode!r}."
        )
    if custom_logits_processors:
        return SamplingPath.HOST
    if any(host_sampling_reason(params, max_top_k) is not None for params in requests):
        return SamplingPath.HOST
    return SamplingPath.DEVICE


def use_vllm_cpu_sampling_kernel(sampler: Any) -> bool:
    """Make ``sampler`` draw random tokens the way vLLM's own CPU platform does; True if it now does.

    The runner always samples on the CPU, but vLLM picks its CPU kernel (Gumbel-max with a per-row
    seed drawn from the request's generator, ``TopKTopPSampler.forward_cpu``) only when the platform
    says ``is_cpu()``; for any other platform it takes the native exponential-noise path, which draws
    different random numbers. Seeded requests then gave other tokens than vLLM's CPU platform for the
    same seed; with the same kernel they give the same tokens.
    """
    topk_topp = sampler.topk_topp_sampler
    if sampler.use_fp64_gumbel or not has_vllm_cpu_op("fused_gumbel_argmax"):
        return False
    topk_topp.forward = topk_topp.forward_cpu
    return True


@dataclass(frozen=True)
class SamplingOptions:
    """The two TT sampling options (both devices act on them)."""

    sample_on_device_mode: str | None
    always_compat_sampling: bool

    @classmethod
    def of(cls, options: TTOptions) -> SamplingOptions:
        return cls(options.sample_on_device_mode, options.always_compat_sampling)


def device_sampling_params(
    batch: TTInputBatch,
    num_reqs: int,
    discarded: np.ndarray,
    request_seeds: Sequence[int | None],
) -> DeviceSamplingParams:
    """The device sampler's per-row parameters for the first ``num_reqs`` slots of ``batch``.

    A seeded request's seed for this step is drawn from its own generator (as vLLM's CPU sampler draws
    its per-row seeds), so its tokens do not depend on the rest of the batch; ``discarded`` rows (a
    prompt chunk whose token is thrown away) leave their generator untouched. Other rows draw from
    the process RNG. ``request_seeds``: each row's request ``seed`` (None without one), for tt-metal.
    """
    seeds = torch.randint(0, SEED_RANGE, (num_reqs,), dtype=torch.int64)
    for row, generator in batch.generators.items():
        if row < num_reqs and not discarded[row]:
            seeds[row] = torch.randint(0, SEED_RANGE, (1,), generator=generator, dtype=torch.int64)[0]
    top_k = torch.from_numpy(batch.top_k_cpu[:num_reqs].astype(np.int64))
    top_k[top_k >= batch.vocab_size] = 0  # vLLM stores "no top-k cut" as the vocabulary size
    return DeviceSamplingParams(
        temperature=torch.from_numpy(batch.temperature_cpu[:num_reqs].astype(np.float32)),
        top_k=top_k,
        top_p=torch.from_numpy(batch.top_p_cpu[:num_reqs].astype(np.float32)),
        seeds=seeds,
        request_seeds=request_seed_tensor(request_seeds),
    )
