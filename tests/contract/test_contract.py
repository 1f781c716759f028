"""Conformance to the TT model contract (src/tt_vllm_plugin/models/contract.py), for any model class.

Every test drives the model the way TTModelRunner does (the same argument types and padding) and checks
shapes, dtypes and padding conventions, and logits against transformers on the same weights: decode is
teacher-forced (each step feeds the reference sequence's next token), so devices whose numerics differ
slightly are still compared step by step. Which subjects run, and how strictly: see conftest.py.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from tests.contract.conftest import Subject
from tests.contract.helpers import BlockPool, blocks_for, padded_tokens, page_table, random_prompts
from tt_vllm_plugin.models.contract import (
    PREFILL_TAKES_DECODE_ROWS,
    SUPPORTS_ASYNC_DECODE,
    SUPPORTS_CHUNKED_PREFILL,
    SUPPORTS_PREFIX_CACHING,
    SUPPORTS_PROMPT_LOGPROBS,
    SUPPORTS_SAMPLE_ON_DEVICE,
    TTModel,
)
from tt_vllm_plugin.models.optional_hooks import (
    ASYNC_DECODE_HOOKS,
    OPTIONAL_HOOKS,
    kv_token_budget,
    trace_flags,
    warm_up,
)

NUM_BLOCKS = 64
KNOWN_CAPABILITIES = (
    SUPPORTS_PREFIX_CACHING,
    SUPPORTS_CHUNKED_PREFILL,
    SUPPORTS_ASYNC_DECODE,
    SUPPORTS_SAMPLE_ON_DEVICE,
    SUPPORTS_PROMPT_LOGPROBS,
    PREFILL_TAKES_DECODE_ROWS,
)


def int32(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32)


def torch_leaves(kv_cache) -> list[torch.Tensor] | None:
    """The KV cache's tensors if they are host torch tensors; None for device tensors (opaque to us)."""
    leaves, stack = [], [kv_cache]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, torch.Tensor):
            leaves.append(item)
        else:
            return None
    return leaves


def prefill(subject: Subject, kv_cache, prompts, rows, width=None, start_pos=None, lens=None, **extra):
    """One batched prefill as the runner issues it: zero-padded tokens and page table, int32 lengths."""
    lens = lens or [len(p) for p in prompts]
    width = width or max(len(r) for r in rows)
    return subject.model().prefill_forward(
        padded_tokens([p[:n] for p, n in zip(prompts, lens, strict=True)]),
        page_table(rows, width),
        kv_cache,
        int32(lens),
        start_pos=int32(start_pos or [0] * len(prompts)),
        **extra,
    )


def decode(subject: Subject, kv_cache, active: dict[int, tuple[int, int, list[int]]], seed: int, **extra):
    """One decode step padded to max_batch: slot -> (token, position, blocks); empty slots get a garbage
    token, start_pos -1 and an all-zero page-table row. The page table has a constant width."""
    max_batch = subject.max_batch
    tokens = torch.randint(
        1, subject.vocab_size, (max_batch, 1), generator=torch.Generator().manual_seed(seed)
    )
    start_pos = torch.full((max_batch,), -1, dtype=torch.int32)
    rows: list[list[int]] = [[] for _ in range(max_batch)]
    for slot, (token, position, blocks) in active.items():
        tokens[slot, 0], start_pos[slot], rows[slot] = token, position, blocks
    table = page_table(rows, blocks_for(subject.max_seq_len, subject.block_size))
    out = subject.model().decode_forward(tokens, start_pos, table, kv_cache, **extra)
    assert out.shape[:2] == (max_batch, 1) and out.shape[2] >= subject.vocab_size, out.shape
    assert out.dtype.is_floating_point, out.dtype
    return out


def sequences(subject: Subject, prompt_lens: list[int], steps: int, seed: int) -> list[torch.Tensor]:
    """Prompts followed by ``steps`` more reference tokens each (teacher forcing)."""
    return random_prompts([n + steps for n in prompt_lens], seed, subject.vocab_size)


# ---- the class


def test_call_patterns_of_the_runner_bind(subject):
    cls = subject.model_cls
    assert isinstance(inspect.getattr_static(cls, "initialize_vllm_model"), classmethod)
    shape, kv, table = (4, 2, subject.block_size, 8), [[None, None]], torch.zeros(1, 1, dtype=torch.int32)
    calls = {
        cls.initialize_vllm_model: ((subject.hf_config, subject.device, 8, 128), {"n_layers": None}),
        cls.allocate_kv_cache: ((None, shape, torch.float32, 2), {}),
        cls.prefill_forward: (
            (None, torch.zeros(1, 4, dtype=torch.int64), table, kv, int32([4])),
            {"start_pos": int32([0]), "enable_trace": False, "sampling_params": None},
        ),
        cls.decode_forward: (
            (None, torch.zeros(1, 1, dtype=torch.int64), int32([0]), table, kv),
            {"enable_trace": False, "read_from_device": True, "sampling_params": None, "reset_batch": False},
        ),
    }
    for method, (args, kwargs) in calls.items():
        inspect.signature(method).bind(*args, **kwargs)  # raises TypeError when the call cannot bind
    inspect.signature(cls.initialize_vllm_model).bind(
        subject.hf_config, subject.device, 8, 128, n_layers=1, tt_data_parallel=1, optimizations="performance"
    )


def test_capabilities_are_a_dict_of_booleans(subject):
    capabilities = subject.model_cls.model_capabilities
    assert isinstance(capabilities, dict)
    for key in KNOWN_CAPABILITIES:
        assert isinstance(capabilities.get(key, False), bool), key


def test_initialized_model_satisfies_the_protocol(subject):
    assert isinstance(subject.model(), TTModel)


def test_kv_cache_layout(subject):
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    assert kv_cache, "allocate_kv_cache returned nothing"
    leaves = torch_leaves(kv_cache)
    if leaves is None:
        pytest.skip("device tensors: the runner treats the KV cache as opaque, so only its use is checked")
    assert len(kv_cache) == subject.num_layers
    shape = (NUM_BLOCKS, *leaves[0].shape[1:])
    assert shape[2] == subject.block_size
    for pair in kv_cache:
        assert len(pair) == 2 and all(t.shape == shape for t in pair)
        # Zeros, not garbage: masked-out slots must never hold NaN (0 * NaN leaks into attention).
        assert all(not t.any() for t in pair)


# ---- prefill


def test_batched_prefill_of_different_lengths(subject):
    b = subject.block_size
    prompts = random_prompts([b + 3, 3 * b + 1, 3, 2 * b], seed=1, vocab_size=subject.vocab_size)
    pool = BlockPool(NUM_BLOCKS, seed=2)
    rows = [pool.take(blocks_for(len(p), b)) for p in prompts]
    # A page table wider than any prompt needs: the padding columns are zeros.
    out = prefill(subject, subject.kv_cache(NUM_BLOCKS), prompts, rows, width=blocks_for(3 * b + 1, b) + 2)
    assert out.shape[:2] == (len(prompts), 1) and out.shape[2] >= subject.vocab_size, out.shape
    assert out.dtype.is_floating_point
    for row, prompt in enumerate(prompts):
        subject.assert_close(out[row, 0], subject.reference_logits(prompt)[-1], f"prefill row {row}")


def test_prefill_after_a_cached_prefix(subject):
    """Request B reuses A's first two cached blocks (prefix caching) and computes only its tail, in the
    same call as a fresh request C: start_pos says how much of each row is cached."""
    if not subject.capabilities.get(SUPPORTS_PREFIX_CACHING):
        pytest.skip("the model does not declare supports_prefix_caching")
    b, vocab = subject.block_size, subject.vocab_size
    a, c, tail = random_prompts([3 * b + 2, 6, 7], seed=7, vocab_size=vocab)
    b_prompt = torch.cat([a[: 2 * b], tail])
    pool = BlockPool(NUM_BLOCKS, seed=9)
    rows_a = pool.take(blocks_for(len(a), b))
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    prefill(subject, kv_cache, [a], [rows_a])
    rows_b = rows_a[:2] + pool.take(blocks_for(len(b_prompt), b) - 2)
    out = prefill(
        subject, kv_cache, [b_prompt, c], [rows_b, pool.take(blocks_for(6, b))], start_pos=[2 * b, 0]
    )
    subject.assert_close(out[0, 0], subject.reference_logits(b_prompt)[-1], "prefill after a cached prefix")
    subject.assert_close(out[1, 0], subject.reference_logits(c)[-1], "fresh row beside it")


def test_prefill_in_chunks(subject):
    """A prompt prefilled in two calls, the first ending mid-block (vLLM's chunked prefill)."""
    if not subject.capabilities.get(SUPPORTS_CHUNKED_PREFILL):
        pytest.skip("the model does not declare supports_chunked_prefill")
    b = subject.block_size
    (prompt,) = random_prompts([3 * b + 1], seed=5, vocab_size=subject.vocab_size)
    rows = [BlockPool(NUM_BLOCKS, seed=6).take(blocks_for(len(prompt), b))]
    reference = subject.reference_logits(prompt)
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    first = prefill(subject, kv_cache, [prompt], rows, lens=[b + 1])
    second = prefill(subject, kv_cache, [prompt], rows, start_pos=[b + 1])
    subject.assert_close(first[0, 0], reference[b], "first chunk")
    subject.assert_close(second[0, 0], reference[-1], "second chunk")


def test_every_position_logits_for_prompt_logprobs(subject):
    if not subject.capabilities.get(SUPPORTS_PROMPT_LOGPROBS):
        pytest.skip("the model does not declare supports_prompt_logprobs")
    b = subject.block_size
    fresh, resumed = random_prompts([b + 3, 2 * b + 2], seed=11, vocab_size=subject.vocab_size)
    pool = BlockPool(NUM_BLOCKS, seed=12)
    rows = [pool.take(blocks_for(len(fresh), b)), pool.take(blocks_for(len(resumed), b))]
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    prefill(subject, kv_cache, [resumed], rows[1:], lens=[b])
    flat = prefill(subject, kv_cache, [fresh, resumed], rows, start_pos=[0, b], return_all_logits=True)
    assert flat.shape[0] == len(fresh) + len(resumed) - b, flat.shape
    subject.assert_close(flat[: len(fresh)], subject.reference_logits(fresh), "fresh row, every position")
    subject.assert_close(
        flat[len(fresh) :], subject.reference_logits(resumed)[b:], "resumed row, new positions"
    )


def test_a_one_token_row_beside_a_fresh_prompt_for_prefill_takes_decode_rows(subject):
    """What PREFILL_TAKES_DECODE_ROWS lets the runner do: fold a step's decode rows (one token after the
    cached ones) into the prefill of the prompts joining them."""
    if not subject.capabilities.get(PREFILL_TAKES_DECODE_ROWS):
        pytest.skip("the model does not declare prefill_takes_decode_rows")
    b = subject.block_size
    running, fresh = random_prompts([b + 2, b - 3], seed=13, vocab_size=subject.vocab_size)
    pool = BlockPool(NUM_BLOCKS, seed=14)
    rows = [pool.take(blocks_for(len(running), b)), pool.take(blocks_for(len(fresh), b))]
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    prefill(subject, kv_cache, [running], rows[:1], lens=[len(running) - 1])
    out = prefill(subject, kv_cache, [running, fresh], rows, start_pos=[len(running) - 1, 0])
    subject.assert_close(out[0, 0], subject.reference_logits(running)[-1], "one-token row")
    subject.assert_close(out[1, 0], subject.reference_logits(fresh)[-1], "fresh row beside it")


# ---- decode


def test_decode_with_empty_slots(subject):
    """Three requests in scattered slots of a max_batch decode; the others are empty (start_pos -1,
    garbage token, zero page-table row). Request 0's first block is block 0, which is also what the
    empty slots' zero page-table rows point at: a model that writes K/V for an empty slot corrupts it."""
    b, steps, max_batch = subject.block_size, 4, subject.max_batch
    assert max_batch >= 3, "--max-batch must be at least 3"
    slots = [max_batch - 1, 0, max_batch // 2]
    lens = [b + 1, 3 * b + 2, 2 * b - 1]
    seqs = sequences(subject, lens, steps, seed=3)
    pool = BlockPool(NUM_BLOCKS, seed=4, first=0)
    rows = [pool.take(blocks_for(len(s), b)) for s in seqs]
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    prefill(subject, kv_cache, [s[:n] for s, n in zip(seqs, lens, strict=True)], rows)
    references = [subject.reference_logits(s) for s in seqs]
    for step in range(steps):
        active = {
            slot: (int(s[n + step]), n + step, r)
            for slot, s, n, r in zip(slots, seqs, lens, rows, strict=True)
        }
        out = decode(subject, kv_cache, active, seed=100 + step)
        for request, (slot, n) in enumerate(zip(slots, lens, strict=True)):
            subject.assert_close(
                out[slot, 0], references[request][n + step], f"step {step}, request {request}"
            )


def test_empty_decode_slots_leave_the_kv_cache_alone(subject):
    kv_cache = subject.kv_cache(8)
    leaves = torch_leaves(kv_cache)
    if leaves is None:
        pytest.skip("device tensors: checked through its effect in test_decode_with_empty_slots")
    for tensor in leaves:
        tensor.normal_()
    before = [t.clone() for t in leaves]
    decode(subject, kv_cache, {}, seed=1)
    assert all(torch.equal(t, saved) for t, saved in zip(leaves, before, strict=True))


@pytest.mark.parametrize("reset_batch", [False, True], ids=["compacted", "reset_batch"])
def test_requests_may_change_decode_slot(subject, reset_batch):
    """The runner compacts the batch when requests finish, so a request's slot changes between steps;
    with ``reset_batch`` the caller also says the batch changed (a traced model refreshes its inputs)."""
    b, max_batch = subject.block_size, subject.max_batch
    assert max_batch >= 4, "--max-batch must be at least 4"
    lens, steps = [b + 2, 2 * b + 1], 4
    seqs = sequences(subject, lens, steps, seed=21)
    pool = BlockPool(NUM_BLOCKS, seed=22)
    rows = [pool.take(blocks_for(len(s), b)) for s in seqs]
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    prefill(subject, kv_cache, [s[:n] for s, n in zip(seqs, lens, strict=True)], rows)
    references = [subject.reference_logits(s) for s in seqs]
    for step, slots in enumerate([(0, 2), (0, 2), (3, 1), (3, 1)]):
        extra = {"reset_batch": True} if reset_batch and step == 2 else {}
        active = {
            slot: (int(s[n + step]), n + step, r)
            for slot, s, n, r in zip(slots, seqs, lens, rows, strict=True)
        }
        out = decode(subject, kv_cache, active, seed=200 + step, **extra)
        for request, (slot, n) in enumerate(zip(slots, lens, strict=True)):
            subject.assert_close(
                out[slot, 0], references[request][n + step], f"step {step}, request {request}"
            )


def test_every_decode_slot_in_use(subject):
    b, max_batch = subject.block_size, subject.max_batch
    lens = [b + 1 + i for i in range(max_batch)]
    seqs = sequences(subject, lens, 1, seed=31)
    pool = BlockPool(NUM_BLOCKS, seed=32)
    rows = [pool.take(blocks_for(len(s), b)) for s in seqs]
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    prefill(subject, kv_cache, [s[:n] for s, n in zip(seqs, lens, strict=True)], rows)
    active = {slot: (int(s[n]), n, r) for slot, (s, n, r) in enumerate(zip(seqs, lens, rows, strict=True))}
    out = decode(subject, kv_cache, active, seed=5)
    for slot, (s, n) in enumerate(zip(seqs, lens, strict=True)):
        subject.assert_close(out[slot, 0], subject.reference_logits(s)[n], f"slot {slot}")


def test_async_decode_reads_back_what_a_reading_decode_returns(subject):
    """With ``supports_async_decode``: decode_forward(read_from_device=False), read_decode_output(...,
    async_read=True), the device's wait for its events, then process_decode_output_host, as the runner
    does, give the logits a reading decode gives."""
    model = subject.model()
    if not model.model_capabilities.get(SUPPORTS_ASYNC_DECODE, False):
        pytest.skip("the model does not declare supports_async_decode")
    missing = [hook for hook in ASYNC_DECODE_HOOKS if getattr(model, hook, None) is None]
    assert not missing, f"supports_async_decode is declared but {missing} are missing"
    b, max_batch = subject.block_size, subject.max_batch
    lens = [b + 3, 2 * b]
    seqs = sequences(subject, lens, 2, seed=51)
    pool = BlockPool(NUM_BLOCKS, seed=52)
    rows = [pool.take(blocks_for(len(s), b)) for s in seqs]
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    prefill(subject, kv_cache, [s[:n] for s, n in zip(seqs, lens, strict=True)], rows)
    references = [subject.reference_logits(s) for s in seqs]
    slots = [max_batch - 1, 1]
    for step in range(2):
        active = {
            slot: (int(s[n + step]), n + step, r)
            for slot, s, n, r in zip(slots, seqs, lens, rows, strict=True)
        }
        tokens = torch.zeros(max_batch, 1, dtype=torch.int64)
        start_pos = torch.full((max_batch,), -1, dtype=torch.int32)
        table_rows: list[list[int]] = [[] for _ in range(max_batch)]
        for slot, (token, position, blocks) in active.items():
            tokens[slot, 0], start_pos[slot], table_rows[slot] = token, position, blocks
        table = page_table(table_rows, blocks_for(subject.max_seq_len, subject.block_size))
        unread = model.decode_forward(tokens, start_pos, table, kv_cache, read_from_device=False)
        read = model.read_decode_output(unread, async_read=True)
        assert isinstance(read, tuple) and len(read) == 2, "async_read=True must return (host output, events)"
        host, events = read
        subject.device.wait_for_events(events)
        out = model.process_decode_output_host(host, is_tokens=False)
        out = out[0] if isinstance(out, tuple) else out
        assert out.shape[:2] == (max_batch, 1), out.shape
        for request, (slot, n) in enumerate(zip(slots, lens, strict=True)):
            subject.assert_close(
                out[slot, 0], references[request][n + step], f"async step {step}, request {request}"
            )


# ---- optional hooks


def test_optional_hooks_take_what_the_worker_passes(subject):
    model = subject.model()
    if not any(getattr(model, hook, None) is not None for hook in OPTIONAL_HOOKS):
        pytest.skip(f"the model has none of the optional hooks {', '.join(OPTIONAL_HOOKS)}")
    budget = kv_token_budget(
        model,
        model_name=str(subject.checkpoint),
        num_devices=getattr(subject.device, "num_devices", 1),
        max_model_len=subject.max_seq_len,
        max_num_seqs=subject.max_batch,
    )
    assert budget is None or budget >= 1
    kv_cache = subject.kv_cache(NUM_BLOCKS)
    warm_up(
        model,
        kv_cache=kv_cache,
        trace=trace_flags(getattr(subject.device, "trace_mode", "all")),
        max_batch_size=subject.max_batch,
        num_blocks=blocks_for(subject.max_seq_len, subject.block_size),
    )
    # Warm-up must leave the model usable: a prefill afterwards still matches.
    (prompt,) = random_prompts([subject.block_size + 2], seed=41, vocab_size=subject.vocab_size)
    out = prefill(subject, kv_cache, [prompt], [BlockPool(NUM_BLOCKS, seed=42).take(2)])
    subject.assert_close(out[0, 0], subject.reference_logits(prompt)[-1], "prefill after warm-up")
