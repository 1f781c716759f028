"""Sampling on a vLLM without its V1 sampler (0.34 removed ``vllm/v1/sample/sampler.py``).

vLLM 0.34's replacements sample with Triton kernels on a GPU (``v1/worker/gpu/sample``) or with
``vllm._C`` CPU ops (``v1/worker/cpu/sampler.py``); a ``VLLM_TARGET_DEVICE=empty`` build has neither.
:class:`HostSampler` is vLLM 0.32's V1 ``Sampler`` on its PyTorch-native path, step for step: allowed
token ids, bad words, min tokens, logit bias, penalties (vLLM's own ``apply_penalties``), greedy
argmax, temperature, min-p, top-k/top-p (vLLM's own ``apply_top_k_top_p_pytorch``), then exponential
noise drawn from each seeded request's generator, and logprobs of the top tokens and the sampled one.
``tests/unit/test_host_sampler.py`` checks it against vLLM 0.32's ``Sampler`` (same tokens, same
logprobs). Custom logits processors, ``logprob_token_ids`` and thinking budgets are not implemented
and are refused where this sampler is used (``refusals.py``, ``platform.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_SAMPLING_EPS = 1e-5  # vLLM's: below it a temperature means greedy (vllm/v1/sample/sampler.py)


@dataclass(frozen=True)
class HostSamplingMetadata:
    """The batch's sampling parameters, row by row (vLLM's V1 ``SamplingMetadata``)."""

    temperature: torch.Tensor  # (n,) float32; 0 for greedy rows
    all_greedy: bool
    all_random: bool
    top_k: torch.Tensor | None  # None: no row cuts (vocabulary size means no cut)
    top_p: torch.Tensor | None
    min_p: torch.Tensor | None
    generators: dict[int, torch.Generator]
    max_num_logprobs: int | None
    no_penalties: bool
    penalties: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # frequency, presence, repetition
    prompt_token_ids: list[list[int]]
    output_token_ids: list[list[int]]
    logit_bias: Mapping[int, dict[int, float]]
    allowed_token_ids: Mapping[int, list[int]]
    bad_words_token_ids: Mapping[int, list[list[int]]]
    min_tokens: Mapping[int, tuple[int, set[int]]]  # row -> (min_tokens, stop token ids)

    @classmethod
    def of_rows(
        cls,
        *,
        vocab_size: int,
        temperature: np.ndarray,
        top_k: np.ndarray,
        top_p: np.ndarray,
        min_p: np.ndarray,
        penalties: tuple[np.ndarray, np.ndarray, np.ndarray],
        prompt_token_ids: list[list[int]],
        output_token_ids: list[list[int]],
        generators: dict[int, torch.Generator],
        num_logprobs: Sequence[int | None],
        **per_row: Mapping[int, Any],
    ) -> HostSamplingMetadata:
        n = len(temperature)
        temp = torch.from_numpy(temperature.astype(np.float32))
        greedy = temp < _SAMPLING_EPS
        frequency, presence, repetition = (torch.from_numpy(a.astype(np.float32)) for a in penalties)
        wanted = [count for count in num_logprobs if count is not None]
        return cls(
            temperature=temp,
            all_greedy=bool(greedy.all()),
            all_random=not bool(greedy.any()),
            top_k=torch.from_numpy(top_k.astype(np.int64)) if (top_k < vocab_size).any() else None,
            top_p=torch.from_numpy(top_p.astype(np.float32)) if (top_p < 1.0).any() else None,
            min_p=torch.from_numpy(min_p.astype(np.float32)) if (min_p > _SAMPLING_EPS).any() else None,
            generators=generators,
            max_num_logprobs=max(wanted) if wanted else None,
            no_penalties=bool((frequency == 0).all() and (presence == 0).all() and (repetition == 1).all()),
            penalties=(frequency, presence, repetition),
            prompt_token_ids=prompt_token_ids,
            output_token_ids=output_token_ids,
            **{name: {row: v for row, v in values.items() if row < n} for name, values in per_row.items()},
        )


@dataclass(frozen=True)
class HostSamplerOutput:
    sampled_token_ids: torch.Tensor  # (n, 1) int32
    logprobs_tensors: Any  # vllm.v1.outputs.LogprobsTensors or None


class HostSampler:
    def __init__(self, logprobs_mode: str = "raw_logprobs", use_fp64_gumbel: bool = False) -> None:
        self.logprobs_mode = logprobs_mode
        self.use_fp64_gumbel = use_fp64_gumbel

    def __call__(self, logits: torch.Tensor, sampling_metadata: HostSamplingMetadata) -> HostSamplerOutput:
        meta = sampling_metadata
        # Logprobs come from the logits as the model gave them (vLLM's "raw" modes, the default).
        logprobs = None
        if meta.max_num_logprobs is not None:
            if self.logprobs_mode == "raw_logprobs":
                logprobs = self.compute_logprobs(logits)
            elif self.logprobs_mode == "raw_logits":
                logprobs = logits.to(torch.float32).clone()
        logits = logits.to(torch.float32)
        _apply_logits_processors(logits, meta)
        sampled, processed = self._sample(logits, meta)
        if processed is not None:
            logprobs = processed
        tensors = None
        if meta.max_num_logprobs is not None:
            tensors = self.gather_logprobs(logprobs, meta.max_num_logprobs, sampled)
        return HostSamplerOutput(sampled.to(torch.int32).unsqueeze(-1), tensors)

    def _sample(self, logits: torch.Tensor, meta: HostSamplingMetadata) -> tuple[torch.Tensor, Any]:
        greedy = None if meta.all_random else logits.argmax(dim=-1).view(-1)
        if meta.all_greedy:
            return greedy, self._processed(logits, meta)
        temperature = meta.temperature
        if not meta.all_random:  # greedy rows would divide by zero
            temperature = torch.where(temperature < _SAMPLING_EPS, 1.0, temperature)
        logits.div_(temperature.unsqueeze(dim=1))
        if meta.min_p is not None:
            probs = logits.softmax(dim=-1)
            threshold = probs.amax(dim=-1, keepdim=True).mul_(meta.min_p.unsqueeze(1))
            logits.masked_fill_(probs < threshold, -float("inf"))
        from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

        logits = apply_top_k_top_p_pytorch(logits, meta.top_k, meta.top_p)
        processed = self._processed(logits, meta)
        probs = logits.softmax(dim=-1, dtype=torch.float32)
        random = _random_sample(probs, meta.generators, self.use_fp64_gumbel)
        if greedy is None:
            return random, processed
        return torch.where(meta.temperature < _SAMPLING_EPS, greedy, random), processed

    def _processed(self, logits: torch.Tensor, meta: HostSamplingMetadata) -> torch.Tensor | None:
        if meta.max_num_logprobs is None:
            return None
        if self.logprobs_mode == "processed_logits":
            return logits.clone()
        if self.logprobs_mode == "processed_logprobs":
            return self.compute_logprobs(logits)
        return None

    @staticmethod
    def compute_logprobs(logits: torch.Tensor) -> torch.Tensor:
        return logits.log_softmax(dim=-1, dtype=torch.float32)

    @staticmethod
    def gather_logprobs(logprobs: torch.Tensor, num_logprobs: int, token_ids: torch.Tensor) -> Any:
        """The top ``num_logprobs`` and each row's ``token_ids`` logprob and rank (vLLM's
        ``Sampler.gather_logprobs``): ``(ids, logprobs, ranks)``, the given token first."""
        from vllm.v1.outputs import LogprobsTensors

        top_logprobs, top_ids = torch.topk(logprobs, num_logprobs, dim=-1)
        token_ids = token_ids.long().unsqueeze(-1)
        token_logprobs = logprobs.gather(-1, token_ids)
        ranks = (logprobs >= token_logprobs).sum(-1)
        ids = torch.cat((token_ids, top_ids), dim=1).to(torch.int32)
        return LogprobsTensors(ids, torch.cat((token_logprobs, top_logprobs), dim=1), ranks)


def _apply_logits_processors(logits: torch.Tensor, meta: HostSamplingMetadata) -> None:
    """In place, in vLLM's order: allowed tokens, bad words, min tokens, logit bias, penalties."""
    for row, allowed in meta.allowed_token_ids.items():
        kept = logits[row, allowed].clone()
        logits[row] = -float("inf")
        logits[row, allowed] = kept
    for row, bad_words in meta.bad_words_token_ids.items():
        past = meta.output_token_ids[row]
        for word in bad_words:
            prefix = word[:-1]
            if len(prefix) <= len(past) and (not prefix or past[-len(prefix) :] == prefix):
                logits[row, word[-1]] = -float("inf")
    for row, (min_tokens, stop_ids) in meta.min_tokens.items():
        if len(meta.output_token_ids[row]) < min_tokens and stop_ids:
            logits[row, sorted(stop_ids)] = -float("inf")
    for row, biases in meta.logit_bias.items():
        tokens = torch.tensor(list(biases), dtype=torch.int64)
        logits[row, tokens] += torch.tensor(list(biases.values()), dtype=logits.dtype)
    if not meta.no_penalties:
        from vllm.model_executor.layers.utils import apply_penalties

        vocab = logits.shape[1]
        frequency, presence, repetition = meta.penalties
        apply_penalties(
            logits,
            _padded(meta.prompt_token_ids, vocab),
            _padded(meta.output_token_ids, vocab),
            presence,
            frequency,
            repetition,
        )


def _padded(rows: list[list[int]], pad: int) -> torch.Tensor:
    """The rows as one int64 tensor, padded with ``pad`` (vLLM pads with the vocabulary size)."""
    width = max((len(row) for row in rows), default=0)
    out = torch.full((len(rows), width), pad, dtype=torch.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
    return out


def _random_sample(
    probs: torch.Tensor, generators: dict[int, torch.Generator], use_fp64_gumbel: bool
) -> torch.Tensor:
    """vLLM's ``random_sample``: argmax of probs / q with q ~ Exp(1), each seeded row's q drawn from
    its own generator (so its tokens do not depend on the rest of the batch)."""
    q = torch.empty(probs.shape, dtype=torch.float64 if use_fp64_gumbel else probs.dtype)
    if len(generators) != probs.shape[0]:
        q.exponential_()
    for row, generator in generators.items():
        q[row].exponential_(generator=generator)
    if q.dtype == probs.dtype:
        return probs.div_(q).argmax(dim=-1).view(-1)
    return q.reciprocal_().mul_(probs).argmax(dim=-1).view(-1)


def apply_grammar_bitmask(
    scheduler_output: Any, grammar_output: Any, batch: Any, logits: torch.Tensor
) -> None:
    """Mask each structured-output row's logits with its grammar bitmask (vLLM's
    ``apply_grammar_bitmask``; bit t of word t // 32 set: token t allowed). One bitmask row per request:
    speculative decoding is refused on the tt platform."""
    rows = {req_id: row for row, req_id in enumerate(batch.req_ids)}
    wanted = [(k, rows[r]) for k, r in enumerate(grammar_output.structured_output_request_ids) if r in rows]
    if not wanted:
        return
    masks = torch.from_numpy(np.asarray(grammar_output.grammar_bitmask))[[k for k, _ in wanted]]
    width = min(logits.shape[1], masks.shape[1] * 32)
    tokens = torch.arange(width)
    allowed = ((masks[:, tokens // 32] >> (tokens % 32)) & 1).bool()
    target = [row for _, row in wanted]
    logits[target, :width] = logits[target, :width].masked_fill(~allowed, -float("inf"))
