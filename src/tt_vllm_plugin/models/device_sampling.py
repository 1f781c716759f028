"""Sampling on the model's device: the per-row parameters and the host models' sampler.

Tenstorrent's generators take ``sampling_params=`` in ``prefill_forward`` / ``decode_forward`` and then
return token ids instead of logits; tt-metal's ``SamplingParams`` carries temperature, top-k and top-p
(plus a seed) per batch row, and its device sampler keeps at most 32 candidates (``max_top_k``). This
module gives that call one typed shape, :class:`DeviceSamplingParams`, and the pure function the host
models run for it, :func:`sample_on_device`.

What it does is vLLM's sampling for greedy / temperature / top-k / top-p requests, with the same
distribution (top-k then top-p on temperature-scaled logits, ties at the top-k cut kept); which random
numbers are drawn differs, so seeded tokens match vLLM's host sampler in distribution, not one by one.
Everything else (penalties, min_p, logit_bias, logprobs, grammars ...) stays with vLLM's sampler on the
host: see ``worker/sampling_mode.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

# tt-metal's on-device sampler keeps the top 32 candidates per row (its ``max_top_k`` default).
DEVICE_MAX_TOP_K = 32
# vLLM's threshold below which a temperature means greedy (vllm.v1.sample.sampler._SAMPLING_EPS).
GREEDY_TEMPERATURE = 1e-5
SEED_RANGE = 2**31  # seeds are drawn in [0, 2**31), like vLLM's CPU sampler draws its per-row seeds
UNSEEDED = -1  # a request_seeds entry for a request without a seed
# A model may declare how many top-k candidates its device sampler keeps (0: greedy only) under this
# ``model_capabilities`` key, the one Tenstorrent's models use; without it, DEVICE_MAX_TOP_K applies.
MAX_DEVICE_TOP_K_CAPABILITY = "max_device_top_k"


def device_max_top_k(model: Any) -> int:
    caps = getattr(model, "model_capabilities", None) or {}
    return int(caps.get(MAX_DEVICE_TOP_K_CAPABILITY, DEVICE_MAX_TOP_K))


@dataclass(frozen=True)
class DeviceSamplingParams:
    """One call's sampling parameters, one entry per batch row (padded rows included).

    ``temperature``: (B,) float32, below ``GREEDY_TEMPERATURE`` means greedy (argmax).
    ``top_k``: (B,) int64, ``<= 0`` means no top-k cut.
    ``top_p``: (B,) float32 in (0, 1], 1 means no top-p cut.
    ``seeds``: (B,) int64 in [0, 2**31): the random stream of this row for this call. The runner
    draws it from the request's own generator when the request has a seed, so seeded requests are
    reproducible whatever else shares the batch. Host models sample with it.
    ``request_seeds``: (B,) int64, the request's own ``seed``, ``UNSEEDED`` (-1) for requests without
    one. tt-metal takes this: its SeedManager seeds a slot's random stream once, when the request is
    prefilled into it, and advances that stream itself every decode.
    """

    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    seeds: torch.Tensor
    request_seeds: torch.Tensor

    def __post_init__(self) -> None:
        fields = (self.temperature, self.top_k, self.top_p, self.seeds, self.request_seeds)
        rows = {t.shape for t in fields}
        if len(rows) != 1 or len(next(iter(rows))) != 1:
            raise ValueError(
                "DeviceSamplingParams needs 1-D tensors of one length (one entry per row), got "
                f"shapes {[tuple(t.shape) for t in fields]}."
            )

    @property
    def num_rows(self) -> int:
        return int(self.temperature.shape[0])

    @classmethod
    def from_lists(
        cls,
        temperature: Sequence[float],
        top_k: Sequence[int],
        top_p: Sequence[float],
        seeds: Sequence[int],
        request_seeds: Sequence[int | None] | None = None,
    ) -> DeviceSamplingParams:
        if request_seeds is None:  # no request has a seed
            request_seeds = [None] * len(seeds)
        return cls(
            temperature=torch.tensor(temperature, dtype=torch.float32),
            top_k=torch.tensor(top_k, dtype=torch.int64),
            top_p=torch.tensor(top_p, dtype=torch.float32),
            seeds=torch.tensor(seeds, dtype=torch.int64),
            request_seeds=request_seed_tensor(request_seeds),
        )

    def select(self, rows: torch.Tensor | slice) -> DeviceSamplingParams:
        """The parameters of ``rows`` only (an index tensor or a slice)."""
        return DeviceSamplingParams(
            self.temperature[rows],
            self.top_k[rows],
            self.top_p[rows],
            self.seeds[rows],
            self.request_seeds[rows],
        )

    def padded(self, num_rows: int, slots: torch.Tensor | None = None) -> DeviceSamplingParams:
        """Spread over ``num_rows`` rows, greedy where no row lands (decode inputs fill ``max_batch``
        slots): row i goes to ``slots[i]``, or to row i without ``slots``."""
        if num_rows < self.num_rows:
            raise ValueError(f"cannot pad {self.num_rows} sampling rows down to {num_rows}.")
        where = torch.arange(self.num_rows) if slots is None else torch.as_tensor(slots, dtype=torch.int64)

        def place(t: torch.Tensor, value: float) -> torch.Tensor:
            out = torch.full((num_rows,), value, dtype=t.dtype)
            out[where] = t
            return out

        return DeviceSamplingParams(
            place(self.temperature, 0.0),
            place(self.top_k, 0),
            place(self.top_p, 1.0),
            place(self.seeds, 0),
            place(self.request_seeds, UNSEEDED),
        )


def request_seed_tensor(seeds: Sequence[int | None]) -> torch.Tensor:
    """Requests' own seeds as ``request_seeds`` entries: ``UNSEEDED`` for None."""
    return torch.tensor([UNSEEDED if seed is None else seed for seed in seeds], dtype=torch.int64)


def filtered_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """One row's (already temperature-scaled) logits with everything outside top-k then top-p at -inf.

    Top-k keeps every token scoring at least the k-th best (ties at the cut stay, as in vLLM); top-p
    then keeps the smallest set of most likely tokens whose probability reaches ``top_p`` (at least one).
    """
    out = logits.clone()
    vocab = out.shape[-1]
    if 0 < top_k < vocab:
        kth = torch.topk(out, top_k).values[-1]
        out[out < kth] = float("-inf")
    if top_p < 1.0:
        probs, order = out.softmax(-1).sort(descending=True)
        mass_before = probs.cumsum(-1) - probs  # probability of the strictly more likely tokens
        drop = mass_before >= top_p
        drop[0] = False
        out[order[drop]] = float("-inf")
    return out


def sample_on_device(logits: torch.Tensor, params: DeviceSamplingParams) -> torch.Tensor:
    """Sample one token per row of ``logits`` (B, vocab); returns (B,) int64 token ids.

    Greedy rows take the argmax; the others draw from softmax(filtered logits / temperature) with a
    generator seeded by the row's seed, so a row's token depends only on its logits and its seed.
    """
    if logits.dim() != 2 or logits.shape[0] != params.num_rows:
        raise ValueError(
            f"logits must be (rows, vocab) with rows == {params.num_rows} sampling rows, "
            f"got {tuple(logits.shape)}."
        )
    logits = logits.float()
    tokens = logits.argmax(dim=-1)
    for row in torch.nonzero(params.temperature >= GREEDY_TEMPERATURE).flatten().tolist():
        scaled = logits[row] / params.temperature[row]
        probs = filtered_logits(scaled, int(params.top_k[row]), float(params.top_p[row])).softmax(-1)
        generator = torch.Generator(device=logits.device).manual_seed(int(params.seeds[row]))
        tokens[row] = torch.multinomial(probs, 1, generator=generator)[0]
    return tokens


def sample_rows(
    logits: torch.Tensor, params: Any, num_rows: int, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """A host model's device sampling of ``logits`` (one per computed row) with the call's
    ``sampling_params``: its first ``num_rows`` entries, or the entries of ``rows`` (decode slots)."""
    if not isinstance(params, DeviceSamplingParams):
        raise TypeError(f"sampling_params must be a DeviceSamplingParams, got {type(params).__name__}.")
    if params.num_rows < num_rows:
        raise ValueError(f"sampling_params has {params.num_rows} rows; this call has {num_rows}.")
    chosen = params.select(slice(0, num_rows) if rows is None else rows.cpu())
    return sample_on_device(logits, chosen)
