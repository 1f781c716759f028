"""The values the parts of a step hand each other.

``execute_model`` builds a :class:`StepContext` (what every part reads) and a :class:`RowOutputs` (where
the model's outputs land, row by row); the prefill and decode calls fill it, the decode possibly later
(:class:`DecodeRead`); ``sample_tokens`` gets it all back as one :class:`PendingStep`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.outputs import LogprobsTensors

from tt_vllm_plugin.models.contract import KVCache, TTModel
from tt_vllm_plugin.worker.decode_slots import DecodeSlots
from tt_vllm_plugin.worker.input_batch import TTInputBatch
from tt_vllm_plugin.worker.metrics import StepMetrics
from tt_vllm_plugin.worker.multimodal_inputs import RopeDeltas

if TYPE_CHECKING:
    from vllm.v1.worker.gpu_input_batch import CachedRequestState


@dataclass(frozen=True)
class StepContext:
    """What each part of a step reads: the model and its KV cache, the batch and its requests, the
    requests' decode slots, and the metrics that time the model calls."""

    model: TTModel
    kv_cache: KVCache
    batch: TTInputBatch
    requests: Mapping[str, CachedRequestState]
    slots: DecodeSlots
    metrics: StepMetrics
    # The KV cache group of each layer when there are several (hybrid attention): the model then gets
    # page_tables_per_layer; None with one group.
    layer_groups: list[int] | None = None
    # The model takes images: each prefill gets its rows' image features (multimodal_inputs.py).
    takes_images: bool = False
    # M-RoPE models: each request's delta from its prefill, passed to every decode; None otherwise.
    rope_deltas: RopeDeltas | None = None


@dataclass(frozen=True)
class RowOutputs:
    """The model's output for each batch row, in batch order. One sampler serves the whole step
    (``step_plan.py``), so the rows hold either logits for vLLM's sampler or the token ids the model's
    device sampled."""

    values: torch.Tensor  # (num_reqs, vocab) float32 logits, or (num_reqs,) int64 token ids
    sampled_on_device: bool

    @classmethod
    def for_step(cls, num_reqs: int, vocab_size: int, sampled_on_device: bool) -> RowOutputs:
        if sampled_on_device:
            return cls(torch.zeros(num_reqs, dtype=torch.int64), True)
        return cls(torch.empty((num_reqs, vocab_size), dtype=torch.float32), False)

    def put_prefill(self, rows: np.ndarray, out: torch.Tensor) -> None:
        """A prefill call's output for ``rows``, in their order: (B,) token ids or (B, 1, vocab) logits
        (a device may pad B; the padding is dropped)."""
        if self.sampled_on_device:
            self.values[rows] = out.reshape(-1)[: len(rows)].cpu()
        else:
            self.put_logits(rows, out.reshape(out.shape[0], -1)[: len(rows)])

    def put_decode(self, rows: np.ndarray, slots: np.ndarray, out: torch.Tensor) -> None:
        """A decode call's host output (one entry per slot): row ``rows[i]`` was decoded in slot
        ``slots[i]``."""
        where = torch.from_numpy(slots)
        if self.sampled_on_device:
            self.values[rows] = out.reshape(-1)[where].cpu()
        else:
            self.put_logits(rows, out.reshape(out.shape[0], -1)[where.to(out.device)])

    def put_logits(self, rows: np.ndarray, logits: torch.Tensor) -> None:
        """(len(rows), >= vocab) logits on any device; a model's padded vocabulary is cut off."""
        vocab_size = self.values.shape[1]
        self.values[rows] = logits[:, :vocab_size].to(device="cpu", dtype=torch.float32)


@dataclass(frozen=True)
class DecodeRead:
    """An async decode's output on its way to the host (``supports_async_decode``, contract.py)."""

    host: Any  # the host output, valid once every event is done
    events: list[Any]
    rows: np.ndarray  # the batch rows decoded
    slots: np.ndarray  # the decode slot of each of them


@dataclass(frozen=True)
class PendingStep:
    """What ``execute_model`` leaves for ``sample_tokens`` (vLLM calls them back to back)."""

    scheduler_output: SchedulerOutput
    outputs: RowOutputs
    partial_rows: np.ndarray  # rows whose sampled token is discarded (see StepPlan)
    prompt_logprobs: dict[str, LogprobsTensors | None]
    decode_read: DecodeRead | None  # with async decode: the decode rows' outputs, still coming
