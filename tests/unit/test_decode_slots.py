"""Fixed decode slots (worker/decode_slots.py) and the decode inputs and sampling rows laid out by them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vllm import SamplingParams
from vllm.v1.worker.gpu_input_batch import CachedRequestState

from tt_vllm_plugin.models.device_sampling import DeviceSamplingParams
from tt_vllm_plugin.worker.decode_slots import DecodeLayout, DecodeSlots
from tt_vllm_plugin.worker.input_batch import TTInputBatch, make_input_batch


def input_batch_with(requests: list[tuple[str, list[int], list[int]]], block_size: int) -> TTInputBatch:
    """A batch holding (req_id, prompt, block ids) requests, each about to decode its last prompt token."""
    batch = make_input_batch(
        max_num_reqs=8,
        max_model_len=16,
        max_num_batched_tokens=64,
        device=torch.device("cpu"),
        vocab_size=100,
        block_sizes=[block_size],
        max_num_blocks_per_req=[16 // block_size],
    )
    for req_id, prompt, blocks in requests:
        batch.add_request(
            CachedRequestState(
                req_id=req_id,
                prompt_token_ids=prompt,
                mm_features=[],
                sampling_params=SamplingParams(),
                generator=None,
                block_ids=(list(blocks),),
                num_computed_tokens=len(prompt) - 1,
                output_token_ids=[],
            )
        )
    return batch


def test_a_request_keeps_its_slot_and_freed_slots_are_reused_lowest_first():
    slots = DecodeSlots(4)
    assert [slots.assign(r) for r in ("a", "b", "c")] == [0, 1, 2]
    assert slots.assign("b") == 1  # the same slot on every step
    slots.release(["a", "c", "unknown"])
    assert slots.assign("d") == 0 and slots.assign("e") == 2 and slots.assign("f") == 3
    assert slots.of(["f", "b", "d"]).tolist() == [3, 1, 0]
    assert len(slots) == 4 and "a" not in slots


def test_more_running_requests_than_slots_is_reported_as_a_bug():
    slots = DecodeSlots(1)
    slots.assign("a")
    with pytest.raises(RuntimeError, match="all 1 decode slots are taken by running requests"):
        slots.assign("b")


def test_sampling_rows_land_in_their_slots_and_the_rest_are_greedy():
    rows = DeviceSamplingParams.from_lists([0.7, 0.9], [5, 0], [0.8, 1.0], [11, 12])
    placed = rows.padded(5, torch.tensor([3, 0]))
    assert placed.temperature.tolist() == pytest.approx([0.9, 0.0, 0.0, 0.7, 0.0])
    assert placed.top_k.tolist() == [0, 0, 0, 5, 0]
    assert placed.top_p.tolist() == pytest.approx([1.0, 1.0, 1.0, 0.8, 1.0])
    assert placed.seeds.tolist() == [12, 0, 0, 11, 0]
    assert rows.padded(3).seeds.tolist() == [11, 12, 0]  # without slots: the first rows


def test_decode_inputs_put_each_row_in_its_slot():
    batch = input_batch_with(
        [("a", [5, 6, 7], [0, 1]), ("b", [8, 9], [2]), ("c", [1, 2, 3, 4, 5], [3, 4])], block_size=2
    )
    rows = np.array([0, 2])
    inputs = batch.decode_inputs(rows, max_batch=6, slots=np.array([4, 1]))
    assert inputs.start_pos.tolist() == [-1, 4, -1, -1, 2, -1]
    assert inputs.tokens[:, 0].tolist() == [0, 5, 0, 0, 7, 0]
    assert inputs.page_table[4, :2].tolist() == [0, 1] and inputs.page_table[1, :3].tolist() == [3, 4, 0]
    assert inputs.page_table[[0, 2, 3, 5]].abs().sum() == 0  # empty slots: zero page table rows


def test_reset_batch_when_the_layout_changed_since_the_device_last_sampled():
    layout = DecodeLayout()
    assert layout.reset_batch([0, 1], ["a", "b"], device_sampled=True)  # the first decode
    assert not layout.reset_batch([0, 1], ["a", "b"], device_sampled=True)  # same slots, same requests
    assert layout.reset_batch([1], ["b"], device_sampled=True)  # "a" finished
    assert layout.reset_batch([0, 1], ["c", "b"], device_sampled=True)  # "c" took slot 0
    assert not layout.reset_batch([0, 1], ["c", "b"], device_sampled=True)
    # A decode sampled by vLLM on the host leaves the device nothing to continue from.
    layout.reset_batch([0, 1], ["c", "b"], device_sampled=False)
    assert layout.reset_batch([0, 1], ["c", "b"], device_sampled=True)
    assert layout.reset_batch([0, 1], ["b", "c"], device_sampled=True)  # same requests, other slots
