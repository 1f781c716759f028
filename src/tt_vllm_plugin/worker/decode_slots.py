"""Fixed decode slots: each running request keeps one slot of the model's decode batch for its life.

vLLM's persistent batch moves requests between rows as others finish (``condense``). A TT model's
decode batch is ``max_batch`` fixed slots, and with tt-metal's data parallelism (TT option
``data_parallel`` > 1) slot ``s`` lives on submesh ``s // (max_batch / data_parallel)`` together with
that request's KV cache, so a request must not change slot while its KV cache exists. The runner
therefore keeps a request's slot from its first scheduled step until it finishes or is preempted
(vLLM frees its KV blocks then; a resumed request is recomputed in whichever slot is free), and
tells ``prefill_forward`` which slot each prompt fills (``empty_slots``, tt-metal's argument).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import numpy as np


class DecodeSlots:
    """Slot of each running request, in ``[0, num_slots)``; lowest free slot first."""

    def __init__(self, num_slots: int) -> None:
        self.num_slots = num_slots
        self._free = list(range(num_slots))  # a heap
        self._slot_of: dict[str, int] = {}

    def __contains__(self, req_id: str) -> bool:
        return req_id in self._slot_of

    def __len__(self) -> int:
        return len(self._slot_of)

    def assign(self, req_id: str) -> int:
        """The request's slot, taking the lowest free one the first time."""
        slot = self._slot_of.get(req_id)
        if slot is not None:
            return slot
        if not self._free:
            raise RuntimeError(
                f"all {self.num_slots} decode slots are taken by running requests; the scheduler ran more "
                "requests than max_num_seqs, which is a bug."
            )
        slot = heapq.heappop(self._free)
        self._slot_of[req_id] = slot
        return slot

    def release(self, req_ids: Iterable[str]) -> None:
        """Free the slots of requests that finished or lost their KV cache (unknown ids are fine)."""
        for req_id in req_ids:
            slot = self._slot_of.pop(req_id, None)
            if slot is not None:
                heapq.heappush(self._free, slot)

    def of(self, req_ids: Iterable[str]) -> np.ndarray:
        """The slots of ``req_ids`` (each must hold one), as an int64 array."""
        return np.fromiter((self._slot_of[req_id] for req_id in req_ids), dtype=np.int64)


class DecodeLayout:
    """Whether a device-sampled decode must tell the model its batch changed (``reset_batch``).

    A tt-metal generator that samples on its device feeds the tokens it sampled straight into its next
    decode (its traced inputs stay on the device) unless told ``reset_batch``; it then takes the
    runner's tokens and positions and re-aligns each slot's random stream. Tenstorrent's own runner
    sets it whenever the decode batch's layout changed since the previous decode. Here that is: the
    (slot -> request) map differs from the last device-sampled decode's, or the last decode was
    sampled by vLLM on the host (the device then has no tokens of its own to continue from).
    """

    def __init__(self) -> None:
        self._last_device_sampled: dict[int, str] | None = None

    def reset_batch(self, slots: Iterable[int], req_ids: Iterable[str], device_sampled: bool) -> bool:
        """Record this decode's layout; True if it differs from what the device last sampled."""
        layout = dict(zip((int(slot) for slot in slots), req_ids, strict=True))
        changed = layout != self._last_device_sampled
        self._last_device_sampled = layout if device_sampled else None
        return changed
