"""Fixed decode slots through a real engine: a request keeps its decode slot from its prefill to its
last token while others finish around it, and with TT option ``data_parallel`` > 1 each prefill is told
the slot it fills (``empty_slots``, which tt-metal uses to pick the data-parallel submesh and KV cache).
The model samples on its device (greedy), and each decode says ``reset_batch`` exactly when its slots
hold other requests than the previous decode's (tt-metal then takes the runner's tokens instead of the
ones it sampled itself).

The host device ignores ``data_parallel`` in its math, so the runner's slot bookkeeping is what this
shows; the engine core runs in this process so the test can watch every model call.
"""

from __future__ import annotations

import pytest

from tests.e2e.in_process import in_process_llm

pytestmark = pytest.mark.engine

PROMPTS = [f"Count from {n} to {n + 20}:" for n in range(10)]
MAX_TOKENS = [3, 17, 6, 12, 2, 15, 9, 4, 11, 7]  # uneven, so slots free up between busy ones
MAX_NUM_SEQS = 4


@pytest.fixture(scope="module")
def calls(default_model_path):
    """Every prefill and decode call's slots and first KV block per row, and the generated tokens."""
    from vllm import SamplingParams

    with in_process_llm(
        model=default_model_path,
        dtype="float32",
        max_model_len=256,
        max_num_seqs=MAX_NUM_SEQS,
        enable_prefix_caching=False,  # a request's first KV block then names it while it runs
        seed=0,
        additional_config={
            "tt": {"kv_cache_tokens": 4096, "data_parallel": 2, "sample_on_device_mode": "all"}
        },
    ) as llm:
        record: list[tuple] = []

        def watch(worker) -> None:
            model = worker.model_runner.tt_model
            prefill, decode = model.prefill_forward, model.decode_forward

            def watched_prefill(tokens, page_table, *args, **kwargs):
                record.append(("prefill", kwargs.get("empty_slots"), page_table[:, 0].tolist()))
                return prefill(tokens, page_table, *args, **kwargs)

            def watched_decode(tokens, start_pos, page_table, *args, **kwargs):
                busy = [
                    (s, int(page_table[s, 0]), int(p)) for s, p in enumerate(start_pos.tolist()) if p >= 0
                ]
                record.append(("decode", busy, kwargs.get("reset_batch"), kwargs.get("sampling_params")))
                return decode(tokens, start_pos, page_table, *args, **kwargs)

            model.prefill_forward, model.decode_forward = watched_prefill, watched_decode

        llm.collective_rpc(watch)
        params = [SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True) for n in MAX_TOKENS]
        outputs = llm.generate(PROMPTS, params)
        yield record, [list(o.outputs[0].token_ids) for o in outputs]


def test_every_prefill_names_its_slot_and_decode_keeps_each_request_there(calls):
    record, tokens = calls
    assert [len(t) for t in tokens] == MAX_TOKENS
    slot_of_block: dict[int, int] = {}  # first KV block of a prefilled request -> its slot
    last_pos: dict[int, tuple[int, int]] = {}  # first KV block -> (slot, position) at its last decode
    decoded_slots: set[int] = set()
    holes = 0
    for call in record:
        if call[0] == "prefill":
            _, empty_slots, first_blocks = call
            assert empty_slots is not None and len(empty_slots) == len(first_blocks)
            assert all(0 <= s < MAX_NUM_SEQS for s in empty_slots)
            for block, slot in zip(first_blocks, empty_slots, strict=True):
                slot_of_block[block] = slot
                last_pos.pop(block, None)  # a new request (blocks are reused once one finishes)
            continue
        busy = call[1]
        assert call[3] is not None, "the step was not sampled on the device"
        slots = [s for s, _, _ in busy]
        holes += any(s > len(busy) - 1 for s in slots)  # a free slot below a busy one
        for slot, block, pos in busy:
            decoded_slots.add(slot)
            previous = last_pos.get(block)
            if previous is not None:
                assert previous == (slot, pos - 1), (
                    f"request with first block {block}: {previous} -> {slot, pos}"
                )
            else:  # its first decode: in the slot its prefill named
                assert slot_of_block[block] == slot
            last_pos[block] = (slot, pos)
    assert decoded_slots == set(range(MAX_NUM_SEQS))
    assert holes > 0, "no step decoded with a free slot between busy ones: the test did not exercise holes"


def test_reset_batch_exactly_when_the_slots_hold_other_requests(calls):
    record, _ = calls
    prefilled: dict[int, int] = {}  # slot -> which prefill last filled it (a request's identity)
    previous = None  # {slot: prefill} of the previous decode
    changes = 0
    for number, call in enumerate(record):
        if call[0] == "prefill":
            for slot in call[1]:
                prefilled[slot] = number
            continue
        layout = {slot: prefilled[slot] for slot, _, _ in call[1]}
        assert call[2] is (layout != previous), (previous, layout, call[2])
        changes += layout != previous
        previous = layout
    decodes = sum(call[0] == "decode" for call in record)
    assert 1 < changes < decodes, "every or no decode changed the layout: the test did not exercise both"
