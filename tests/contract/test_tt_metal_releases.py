"""The adapter (models/tt_metal*.py) and the runner's tt-metal calls against TEST DOUBLES of two tt-metal
releases' generator classes (tests/contract/tt_metal_doubles.py: real signatures, shims and return
types; no computation). Issue 17 items 1-5 and the "likely" items that concern the generator; the mesh
items are in tests/unit/test_device_mesh.py and tests/unit/test_ttnn_lifecycle.py.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from tests.contract import tt_metal_doubles as doubles
from tt_vllm_plugin.models.optional_hooks import trace_flags, warm_up
from tt_vllm_plugin.models.tt_metal.adapter import adapter_for
from tt_vllm_plugin.models.tt_metal.signatures import accepts, forward_target
from tt_vllm_plugin.options import TTOptions
from tt_vllm_plugin.worker.decode import finish_decode_read, start_decode_read
from tt_vllm_plugin.worker.decode_slots import DecodeSlots
from tt_vllm_plugin.worker.model_runner import TTModelRunner
from tt_vllm_plugin.worker.prefill import single_prefill
from tt_vllm_plugin.worker.step_data import RowOutputs

MAX_BATCH = 8


def device(
    trace_mode: str = "all", data_parallel: int = 1, optimizations: str | None = None
) -> SimpleNamespace:
    """Shaped like device/ttnn.TTNNDevice (``optimizations`` None when the TT option is unset)."""
    return SimpleNamespace(
        mesh="MESH", trace_mode=trace_mode, data_parallel=data_parallel, optimizations=optimizations
    )


def build(generator_cls: type, **kwargs: Any) -> Any:
    return adapter_for(generator_cls).initialize_vllm_model("HF", device(**kwargs), MAX_BATCH, 256)


def calls(model: Any, name: str) -> list[dict[str, Any]]:
    return [arguments for called, arguments in model.generator.calls if called == name]


def sampling(rows: int) -> SimpleNamespace:
    """Stands for the runner's device sampling parameters (the doubles only test them for None)."""
    return SimpleNamespace(rows=rows)


TOKENS, TABLE, PROMPT_LENS = (
    torch.zeros(2, 4, dtype=torch.int64),
    torch.zeros(2, 1, dtype=torch.int32),
    [4, 2],
)
ZEROS = torch.zeros(MAX_BATCH, 1, dtype=torch.int64)  # decode tokens, one per slot


# ------------------------------------------------------------------- item 1: per-device KV cache shape


def runner_kv_cache_shape(kv_heads: int, devices_per_submesh: int, num_blocks: int = 10) -> tuple[int, ...]:
    """TTModelRunner.kv_cache_shape, driven with only what it reads."""
    runner = SimpleNamespace(
        model_config=SimpleNamespace(get_total_num_kv_heads=lambda: kv_heads, get_head_size=lambda: 128),
        block_size=64,
        mesh_device=SimpleNamespace(devices_per_submesh=devices_per_submesh),
    )
    runner.logical_kv_cache_shape = lambda n: TTModelRunner.logical_kv_cache_shape(runner, n)
    return TTModelRunner.kv_cache_shape(runner, num_blocks)


@pytest.mark.parametrize("release", sorted(doubles.RELEASES))
@pytest.mark.parametrize(
    ("system", "devices", "data_parallel", "kv_heads", "per_device"),
    [
        ("N150", 1, 1, 8, 8),
        ("N300", 2, 1, 8, 4),
        ("T3K", 8, 1, 8, 1),
        ("T3K", 8, 2, 8, 2),  # two submeshes of four devices
        ("T3K", 8, 1, 4, 1),  # more devices than heads: one head each (replicated)
        ("TG", 32, 1, 8, 1),
        ("TG", 32, 4, 8, 1),  # four submeshes of eight devices
        ("TG", 32, 8, 8, 2),  # eight submeshes of four devices
    ],
)
def test_kv_cache_is_allocated_per_device(release, system, devices, data_parallel, kv_heads, per_device):
    shape = runner_kv_cache_shape(kv_heads, devices // data_parallel)
    assert shape == (10, per_device, 64, 128), system
    if data_parallel > 1 and release == "older":  # no empty_slots: refused at start (test below)
        with pytest.raises(ValueError, match="takes no empty_slots"):
            build(doubles.RELEASES[release], data_parallel=data_parallel)
        return
    model = build(doubles.RELEASES[release], data_parallel=data_parallel)
    cache = model.allocate_kv_cache(shape, torch.bfloat16, 2)
    # tt-metal's allocate_vllm_kv_cache: the given shape on every device, [submesh][layer][k, v].
    assert len(cache) == data_parallel and all(len(layers) == 2 for layers in cache)
    assert {tuple(t.shape) for layers in cache for kv in layers for t in kv} == {shape}


def test_vllm_spec_keeps_the_models_kv_heads():
    runner = SimpleNamespace(
        model_config=SimpleNamespace(get_total_num_kv_heads=lambda: 8, get_head_size=lambda: 128),
        block_size=64,
    )
    assert TTModelRunner.logical_kv_cache_shape(runner, 1) == (1, 8, 64, 128)


# ------------------------------------------------------- item 2: (tokens, log_probs) from device sampling


def test_prefill_with_device_sampling_returns_the_tokens_of_the_tuple():
    model = build(doubles.CurrentLlama)
    out = model.prefill_forward(
        TOKENS, TABLE, [], PROMPT_LENS, sampling_params=sampling(2), empty_slots=[3, 5]
    )
    # Generator.prefill_forward_text returns (output_tokens, log_probs); the runner gets the tokens,
    # and its "out.reshape(-1)[: len(rows)]" reads them in row order.
    assert isinstance(out, torch.Tensor)
    assert out.reshape(-1)[:2].tolist() == [doubles.TOKEN_BASE + 3, doubles.TOKEN_BASE + 5]
    logits = model.prefill_forward(TOKENS, TABLE, [], PROMPT_LENS, empty_slots=[3, 5])
    assert logits.shape == (2, 1, doubles.VOCAB)  # without sampling: logits, no tuple


def test_synchronous_decode_with_device_sampling_returns_the_tokens_of_the_tuple():
    model = build(doubles.CurrentLlama)
    start_pos = torch.tensor([4, 7] + [-1] * (MAX_BATCH - 2))
    out = model.decode_forward(ZEROS, start_pos, TABLE, [], sampling_params=sampling(8))
    assert isinstance(out, torch.Tensor) and out.reshape(-1)[:2].tolist() == [1000, 1001]


def test_async_decode_reads_the_tokens_of_process_decode_output_host():
    """The runner's async path (read_decode_output, then process_decode_output_host), as it calls it."""
    model = build(doubles.CurrentLlama, data_parallel=2)
    assert type(model).model_capabilities["supports_async_decode"]
    start_pos = torch.tensor([4, -1, -1, -1, 9, -1, -1, -1])
    device_out = model.decode_forward(
        ZEROS, start_pos, TABLE, [], read_from_device=False, sampling_params=sampling(8)
    )
    assert isinstance(device_out, list)  # unread: the device output, unchanged
    # Rows 0 and 1 were decoded in slots 0 and 4 (slot 4 is on the second submesh).
    read = start_decode_read(model, device_out, np.array([0, 1]), np.array([0, 4]))
    sampled = torch.zeros(2, dtype=torch.int64)
    finish_decode_read(
        model,
        SimpleNamespace(wait_for_events=lambda events: None),
        read,
        RowOutputs(sampled, sampled_on_device=True),
        SimpleNamespace(model_wait=contextlib.nullcontext),
    )
    assert sampled.tolist() == [1000, 1004]


def test_sample_on_device_mode_all_end_to_end_through_the_adapter():
    """Warm-up, prefill and decode of one request sampled on the device throughout (mode "all")."""
    model = build(doubles.CurrentLlama)
    warm_up(
        model,
        kv_cache=[],
        trace=trace_flags("all"),
        max_batch_size=MAX_BATCH,
        num_blocks=4,
        sample_on_device_mode="all",
    )
    slots = DecodeSlots(MAX_BATCH)
    slot = slots.assign("a")
    first = model.prefill_forward(
        TOKENS[:1], TABLE[:1], [], [4], sampling_params=sampling(1), empty_slots=[slot]
    )
    start_pos = torch.full((MAX_BATCH,), -1)
    start_pos[slot] = 4
    following = model.decode_forward(
        ZEROS, start_pos, TABLE, [], sampling_params=sampling(8), reset_batch=True
    )
    assert first.reshape(-1)[0] == following.reshape(-1)[slot] == doubles.TOKEN_BASE + slot
    assert [c["can_sample_on_device"] for c in calls(model, "warmup_model_prefill")] == [True, True]
    assert calls(model, "decode_forward")[-1]["reset_batch"] is True


# ------------------------------------------------------------- item 3: empty_slots with data_parallel 1


def runner_prefill(model: Any, slots: DecodeSlots, req_ids: list[str], rows: list[int], extra: dict) -> Any:
    """The runner's prefill call (worker/prefill.py single_prefill), driven with only what it reads."""
    batch = SimpleNamespace(
        req_ids=req_ids,
        prefill_inputs=lambda rows, ends: SimpleNamespace(
            tokens=TOKENS[: len(rows)],
            page_table=TABLE[: len(rows)],
            prompt_lens=PROMPT_LENS[: len(rows)],
            start_pos=torch.zeros(len(rows), dtype=torch.int32),
        ),
    )
    ctx = SimpleNamespace(
        model=model,
        batch=batch,
        slots=slots,
        kv_cache=[],
        layer_groups=None,
        takes_images=False,
        rope_deltas=None,
    )
    return single_prefill(ctx, np.array(rows), np.array([4] * len(rows)), extra)


def test_runner_sends_empty_slots_with_data_parallel_one_and_the_seed_lands_in_the_decode_slot():
    model = build(doubles.CurrentLlama)
    slots = DecodeSlots(MAX_BATCH)
    for req_id in ("a", "b", "c"):
        slots.assign(req_id)
    slots.release(["b"])  # slot 1 is free again; "d" takes it, while it sits in persistent-batch row 0
    slots.assign("d")
    out = runner_prefill(model, slots, ["d", "c"], [0], {"sampling_params": sampling(1)})
    assert calls(model, "prefill_forward_text")[-1]["empty_slots"] == [1]
    # tt-metal's _apply_prefill_sampling_state seeds empty_slots; without them range(1) -> slot 0, "a"'s.
    assert model.generator.seeded_slots == [1]
    assert out.reshape(-1).tolist() == [doubles.TOKEN_BASE + 1]


def test_a_release_without_empty_slots_is_fine_on_one_submesh_and_refused_on_more():
    model = build(doubles.OlderLlama)
    model.prefill_forward(TOKENS, TABLE, [], PROMPT_LENS, empty_slots=[0, 1])
    assert calls(model, "prefill_forward_text") == [{}]
    with pytest.raises(ValueError) as refused:  # at start, before any request
        build(doubles.OlderLlama, data_parallel=2)
    assert str(refused.value) == (
        "OlderLlama's prefill takes no empty_slots in the installed tt-metal, so its rows cannot go to a "
        "data-parallel submesh: set TT option data_parallel=1 for this model (it is 2)."
    )


# ------------------------------------------------------- item 4: initialize_vllm_model's own signature


@pytest.mark.parametrize(
    ("generator_cls", "options", "expected"),
    [
        (doubles.CurrentLlama, {}, {"n_layers": None, "tt_data_parallel": 1, "optimizations": None}),
        (doubles.CurrentLlama, {"optimizations": "accuracy"}, {"optimizations": "accuracy"}),
        (doubles.AssertsNoOptimizations, {}, {"optimizations": None}),  # its assert passes
        (doubles.OlderLlama, {}, {"n_layers": None, "tt_data_parallel": 1}),
        (doubles.CurrentLlama, {"data_parallel": 2}, {"tt_data_parallel": 2}),
    ],
)
def test_initialize_vllm_model_gets_only_what_its_signature_takes(generator_cls, options, expected):
    generator = build(generator_cls, **options).generator
    assert expected.items() <= generator.init.items()
    if generator_cls is doubles.OlderLlama:
        assert "optimizations" not in generator.init


def test_an_option_a_release_cannot_take_is_refused_not_dropped():
    with pytest.raises(TypeError, match="takes no optimizations"):
        build(doubles.OlderLlama, optimizations="accuracy")
    with pytest.raises(TypeError, match="takes no tt_data_parallel"):

        class NoDataParallel(doubles.OlderLlama):
            @classmethod
            def initialize_vllm_model(cls, hf_config, mesh_device, max_batch_size, max_seq_len=131072):
                raise AssertionError("not reached")

        build(NoDataParallel, data_parallel=2)


def test_tt_metal_defaults_pass_n_layers_only_when_set():
    model_cls = adapter_for(doubles.VisionOnlyInit)  # no n_layers in its signature
    model = model_cls.initialize_vllm_model("HF", device(), MAX_BATCH, 256)
    assert model.generator.init == {"n_layers": None, "tt_data_parallel": 1}
    with pytest.raises(TypeError, match="takes no n_layers"):
        model_cls.initialize_vllm_model("HF", "bare mesh", MAX_BATCH, 256, n_layers=2)


# ---------------------------------------------------------------------------- item 5: fabric_config


def test_fabric_2d_dynamic_is_refused():
    with pytest.raises(ValueError, match="fabric_config"):
        TTOptions.from_mapping({"fabric_config": "FABRIC_2D_DYNAMIC"}, "test")
    assert (
        TTOptions.from_mapping({"fabric_config": "FABRIC_2D_TORUS_XY"}, "test").fabric_config
        == "FABRIC_2D_TORUS_XY"
    )


# ---------------------------------------------------------------------------------- "likely" items


def test_decode_signature_probe_follows_the_shim_to_the_real_method():
    current, older = build(doubles.CurrentLlama).generator, build(doubles.OlderLlama).generator
    # Current: LlamaForCausalLM.decode_forward -> super().decode_forward (Generator.decode_forward).
    assert forward_target(current, "decode_forward") is doubles.CurrentGenerator.decode_forward
    # Older: -> super().decode_forward_text. Prefill always -> prefill_forward_text (not the vision one).
    assert forward_target(older, "decode_forward") is doubles.OlderGenerator.decode_forward_text
    assert forward_target(current, "prefill_forward") is doubles.CurrentGenerator.prefill_forward_text
    model = build(doubles.CurrentLlama)
    model.decode_forward(ZEROS, torch.zeros(MAX_BATCH), TABLE, [], reset_batch=True)
    assert calls(model, "decode_forward")[-1]["reset_batch"] is True
    old = build(doubles.OlderLlama)
    old.decode_forward(ZEROS, torch.zeros(MAX_BATCH), TABLE, [], reset_batch=True)
    assert calls(old, "decode_forward_text")  # no reset_batch sent: it takes none


def test_var_keyword_does_not_mean_accepts_everything():
    # prefill_forward_text's **kwargs go on to prepare_inputs_prefill, which takes no such names.
    assert not accepts(doubles.CurrentGenerator.prefill_forward_text, "reset_batch")
    assert accepts(doubles.CurrentGenerator.prefill_forward_text, "empty_slots")
    model = build(doubles.CurrentLlama)
    # A cached prefix on the older release: refused, not sent into **kwargs.
    with pytest.raises(NotImplementedError, match="no start_pos"):
        build(doubles.OlderLlama).prefill_forward(TOKENS, TABLE, [], PROMPT_LENS, start_pos=[2, 0])
    model.prefill_forward(TOKENS, TABLE, [], PROMPT_LENS, start_pos=[2, 0], empty_slots=[0, 1])
    assert calls(model, "prefill_forward_text")[-1]["start_pos"] == [2, 0]


@pytest.mark.parametrize(
    ("trace_mode", "expected"),
    [
        ("all", [("p", False), ("d", False), ("p", True), ("d", True)]),
        ("decode_only", [("p", False), ("d", False), ("d", True)]),
        ("none", [("p", False), ("d", False)]),
    ],
)
@pytest.mark.parametrize("release", ["ttt_compat", "current"])  # the older release has no warm-up hooks
def test_warm_up_runs_untraced_then_captures_traces(release, trace_mode, expected):
    model = build(doubles.RELEASES[release], trace_mode=trace_mode)
    warm_up(model, kv_cache=[], trace=trace_flags(trace_mode), max_batch_size=MAX_BATCH, num_blocks=4)
    # Generator.warmup_model_prefill returns at once when already_warmed_up_prefill: the flag is cleared
    # between the phases, as Tenstorrent's warmup_model does, so the traced prefill warm-up runs.
    seen = [(name[len("warmup_model_")], a["enable_trace"]) for name, a in model.generator.calls]
    assert seen == expected


@pytest.mark.parametrize(
    ("mode", "prefill", "decode"),
    [(None, False, False), ("decode_only", False, True), ("all", True, True)],
)
@pytest.mark.parametrize(
    "generator_cls", [doubles.CurrentLlama, doubles.NewestWarmupLlama, doubles.TttCompatLlama]
)
def test_prefill_warm_up_samples_on_the_device_only_for_mode_all(generator_cls, mode, prefill, decode):
    model = build(generator_cls, trace_mode="none")
    warm_up(
        model,
        kv_cache=[],
        trace=trace_flags("none"),
        max_batch_size=MAX_BATCH,
        num_blocks=4,
        sample_on_device_mode=mode,
    )
    assert [c["can_sample_on_device"] for c in calls(model, "warmup_model_prefill")] == [prefill]
    assert [c["can_sample_on_device"] for c in calls(model, "warmup_model_decode")] == [decode]
    if generator_cls is doubles.NewestWarmupLlama:
        assert calls(model, "warmup_model_decode")[0]["greedy_only"] is False
    if generator_cls is doubles.TttCompatLlama:  # its prefill warm-up takes greedy_only (default False)
        assert calls(model, "warmup_model_prefill")[0]["greedy_only"] is False


def test_a_greedy_only_model_warms_up_only_greedy_prefill_sampling():
    """A model whose device sampler is greedy only (max_device_top_k 0) is told so where its prefill
    warm-up has ``greedy_only`` (ttt_compat), so it does not sweep random sampling parameters."""

    class GreedyOnly(doubles.TttCompatLlama):
        model_capabilities = {**doubles.TttCompatLlama.model_capabilities, "max_device_top_k": 0}

    model = build(GreedyOnly, trace_mode="none")
    warm_up(model, kv_cache=[], trace=trace_flags("none"), max_batch_size=MAX_BATCH, num_blocks=4,
            sample_on_device_mode="all")  # fmt: skip
    assert calls(model, "warmup_model_prefill") == [
        {"enable_trace": False, "can_sample_on_device": True, "greedy_only": True}
    ]


def test_decode_holes_between_live_slots_are_skipped_and_state_stays_with_its_slot():
    """Our decode keeps each request in its slot, with -1 holes between live slots; Tenstorrent packs
    rows and moves sampler state with slot_remap. tt-metal skips each -1 user wherever it sits, and a
    request's sampler state is seeded in its slot at prefill, so fixed slots need no remap."""
    model = build(doubles.CurrentLlama)
    slots = DecodeSlots(MAX_BATCH)
    for req_id in "abc":
        slots.assign(req_id)
    slots.release(["b"])  # "b" finishes: a hole at slot 1 between "a" and "c"
    live = slots.of(["a", "c"])
    start_pos = torch.full((MAX_BATCH,), -1)
    start_pos[torch.from_numpy(live)] = torch.tensor([5, 6])
    out = model.decode_forward(ZEROS, start_pos, TABLE, [], sampling_params=sampling(8))
    assert calls(model, "decode_forward")[-1]["written_slots"] == [0, 2]  # the hole writes no KV
    sampled = torch.zeros(2, dtype=torch.int64)
    RowOutputs(sampled, sampled_on_device=True).put_decode(np.array([0, 1]), live, out)
    assert sampled.tolist() == [doubles.TOKEN_BASE + 0, doubles.TOKEN_BASE + 2]  # each row from its slot
    # A new request fills the hole and is seeded there: slot 1, not the prefill row's 0.
    slots.assign("d")
    runner_prefill(model, slots, ["d"], [0], {"sampling_params": sampling(1)})
    assert model.generator.seeded_slots == [1]
