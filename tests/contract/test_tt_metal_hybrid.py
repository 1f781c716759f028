"""The runner's hybrid-attention path against TEST DOUBLES of tt-metal's HybridAttentionForCausalLM and its
GPT-OSS subclass (tests/contract/tt_metal_hybrid_doubles.py, from tenstorrent/tt-metal
models/ttt_compat/tt/generator_vllm.py @ 3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf), driven the way the
engine drives it: the worker takes the KV cache spec from the class, vLLM's own planner groups it and sizes
the pool, the runner allocates it and builds the prefill and decode calls from vLLM's persistent batch.

- As released (every layer a FullAttentionSpec): one KV cache group, one buffer per layer through
  ``allocate_kv_cache_per_layer`` (``tensor_idx`` = layer), no ``page_tables_per_layer``, and the class's
  shim still hands ``start_pos``/``empty_slots``/``enable_trace`` to Generator.
- Restored (SlidingWindowSpec for sliding layers, groups enabled): two groups, a full and a sliding layer
  sharing each buffer, and one page table per layer, each its own group's blocks.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.contract import tt_metal_doubles as doubles
from tests.contract import tt_metal_hybrid_doubles as hybrid
from tests.e2e.random_models import COMMON
from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.compat import kv_cache_planner
from tt_vllm_plugin.models.tt_metal.adapter import adapter_for
from tt_vllm_plugin.worker.batch_update import _new_request_state
from tt_vllm_plugin.worker.decode import run_decode
from tt_vllm_plugin.worker.decode_slots import DecodeLayout
from tt_vllm_plugin.worker.model_runner import TTModelRunner
from tt_vllm_plugin.worker.prefill import single_prefill
from tt_vllm_plugin.worker.step_data import RowOutputs
from tt_vllm_plugin.worker.worker import TTWorker

LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]
BLOCK_SIZE, MAX_SEQS, MAX_LEN, KV_TOKENS = 16, 4, 128, 1024
HEAD_DIM = COMMON["hidden_size"] // COMMON["num_attention_heads"]


@pytest.fixture(scope="module")
def vllm_config(tmp_path_factory):
    """A real VllmConfig on the tt platform for a checkpoint with Gemma/GPT-OSS-style ``layer_types``
    (a sliding Qwen2: an architecture whose config the platform's check takes with sliding layers, where
    transformers' Llama has none)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from vllm.engine.arg_utils import EngineArgs

    folder = tmp_path_factory.mktemp("hybrid")
    config = Qwen2Config(
        **{**COMMON, "num_hidden_layers": 4},
        layer_types=LAYER_TYPES,
        sliding_window=32,
        use_sliding_window=True,
        max_window_layers=4,
    )
    config.architectures = ["Qwen2ForCausalLM"]
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return EngineArgs(
        model=str(folder),
        skip_tokenizer_init=True,
        dtype="float32",
        max_model_len=MAX_LEN,
        max_num_seqs=MAX_SEQS,
        block_size=BLOCK_SIZE,
        additional_config={"tt": {"kv_cache_tokens": KV_TOKENS}},
    ).create_engine_config()


def start(vllm_config, generator_cls: type, data_parallel: int = 1):
    """Worker and runner as the engine starts them (the double's mesh stands for device/ttnn.TTNNDevice),
    through spec, planning and allocation."""
    mesh = SimpleNamespace(
        mesh="MESH", trace_mode="none", data_parallel=data_parallel, optimizations=None,
        devices_per_submesh=1, num_devices=data_parallel,
    )  # fmt: skip
    worker = TTWorker(vllm_config, local_rank=0, rank=0, distributed_init_method="tcp://127.0.0.1:1")
    worker.device_choice = DeviceChoice.TTNN
    runner = worker.model_runner = TTModelRunner(vllm_config, mesh, worker.options)
    hf_config = vllm_config.model_config.hf_config
    runner.tt_model = adapter_for(generator_cls).initialize_vllm_model(hf_config, mesh, MAX_SEQS, MAX_LEN)
    spec = worker.get_kv_cache_spec()
    resolve_layout(vllm_config, worker, spec)
    planner = kv_cache_planner()
    groups = planner.get_kv_cache_groups(vllm_config, dict(spec))
    kv_cache_config = planner.get_kv_cache_config_from_groups(
        vllm_config, groups, worker.determine_available_memory()
    )
    worker.initialize_from_config(kv_cache_config)
    return worker, runner, spec, kv_cache_config


def resolve_layout(vllm_config, worker, spec) -> None:
    """What vLLM 0.32's engine core does before planning (0.25.1 has no layout to resolve)."""
    try:
        from vllm.v1.attention.backends.utils import resolve_kv_cache_layout
    except ImportError:
        return
    if vllm_config.cache_config.kv_cache_layout is None:
        resolve_kv_cache_layout(vllm_config, [worker.get_supported_kv_cache_layouts()], spec.values())


def add_requests(runner, blocks_per_group: list[tuple[list[int], ...]], prompt_len: int = 20) -> None:
    """Requests in the persistent batch, as update_states adds them, each in its decode slot."""
    from vllm import SamplingParams

    for number, block_ids in enumerate(blocks_per_group):
        new = SimpleNamespace(
            req_id=f"r{number}", prompt_token_ids=list(range(1, prompt_len + 1)),
            sampling_params=SamplingParams(temperature=0.0), block_ids=block_ids, num_computed_tokens=0,
        )  # fmt: skip
        state = _new_request_state(new)
        runner.requests[state.req_id] = state
        runner.input_batch.add_request(state)
        runner.decode_slots.assign(state.req_id)


def prefill_and_decode(runner) -> None:
    rows = np.arange(runner.input_batch.num_reqs)
    ctx = runner._step_context()
    single_prefill(ctx, rows, np.full(len(rows), 20), {})
    runner.input_batch.num_computed_tokens_cpu[rows] = 20
    plan = SimpleNamespace(decode_rows=rows, device_sampling=None)
    outputs = RowOutputs.for_step(len(rows), doubles.VOCAB, False)
    run_decode(ctx, plan, outputs, DecodeLayout(), MAX_SEQS, async_read=False)


def generator_calls(runner, name: str) -> list[dict]:
    return [arguments for called, arguments in runner.tt_model.generator.calls if called == name]


# ---- as released: every layer full attention


def test_the_spec_comes_from_the_class_and_is_full_attention_for_every_layer(vllm_config):
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    worker, runner, spec, kv_cache_config = start(vllm_config, hybrid.GptOssForCausalLM)
    assert list(spec) == [f"model.layers.{i}.self_attn" for i in range(4)]
    assert {type(s) for s in spec.values()} == {FullAttentionSpec}
    assert len(kv_cache_config.kv_cache_groups) == 1 and runner.layer_groups is None
    # The pool holds the TT option's budget, counted as vLLM's planner counts it.
    assert kv_cache_config.num_blocks == KV_TOKENS // BLOCK_SIZE
    shape = (KV_TOKENS // BLOCK_SIZE, COMMON["num_key_value_heads"], BLOCK_SIZE, HEAD_DIM)
    assert runner.tt_model.generator.allocations == [[(shape, torch.float32, i) for i in range(4)]]


def test_one_group_sends_no_per_layer_tables_and_the_shim_still_gets_every_argument(vllm_config):
    _, runner, _, _ = start(vllm_config, hybrid.GptOssForCausalLM)
    add_requests(runner, [([1, 2],), ([3, 4],)])
    prefill_and_decode(runner)
    # The class's prefill_forward(self, *args, page_tables_per_layer=None, **kwargs) is followed to
    # Generator._prefill_forward_text_impl: start_pos, empty_slots and enable_trace reach it.
    assert generator_calls(runner, "prefill_forward_text") == [
        {"empty_slots": [0, 1], "enable_trace": False, "sampling_params": None, "start_pos": None}
    ]
    assert generator_calls(runner, "decode_forward")[0]["written_slots"] == [0, 1]
    assert runner.tt_model.generator.stashes == [("prefill", [None]), ("decode", [None])]


def test_a_hook_answering_something_else_is_named(vllm_config):
    from tt_vllm_plugin.worker.kv_cache_layout import kv_cache_spec

    class Wrong(hybrid.GptOssForCausalLM):
        @classmethod
        def get_kv_cache_spec(cls, vllm_config):
            return ["model.layers.0.self_attn"]

    with pytest.raises(TypeError) as error:
        kv_cache_spec(adapter_for(Wrong), vllm_config, dict)
    assert str(error.value) == (
        "TTMetalWrong.get_kv_cache_spec() returned list; the contract wants dict[str, KVCacheSpec] "
        "(layer name -> spec) or None."
    )


def test_prefix_caching_and_chunked_prefill_stay_off_for_the_hybrid_class(vllm_config):
    """tt-metal's hybrid classes declare neither; the platform turns both off (platform.py)."""
    import copy

    from tt_vllm_plugin.platform import _gate_on_capabilities

    config = copy.deepcopy(vllm_config)
    config.cache_config.enable_prefix_caching = config.scheduler_config.enable_chunked_prefill = True
    _gate_on_capabilities(config, adapter_for(hybrid.GptOssForCausalLM))
    assert not config.cache_config.enable_prefix_caching
    assert not config.scheduler_config.enable_chunked_prefill


# ---- restored: sliding-window layers in a group of their own


@pytest.fixture(scope="module")
def restored(vllm_config):
    return start(vllm_config, hybrid.RestoredHybridGptOss)


def test_two_groups_and_a_full_and_a_sliding_layer_share_each_buffer(restored):
    worker, runner, spec, kv_cache_config = restored
    assert len(kv_cache_config.kv_cache_groups) == 2
    groups = runner.layer_groups
    assert [groups[i] == groups[1] for i in range(4)] == [kind == "full_attention" for kind in LAYER_TYPES]
    (allocation,) = runner.tt_model.generator.allocations
    assert [tensor_idx for *_, tensor_idx in allocation] == [0, 0, 2, 2]
    cache = runner.kv_cache[0]  # [submesh][layer][k, v]
    assert cache[0] is cache[1] and cache[2] is cache[3] and cache[0] is not cache[2]
    assert kv_cache_config.num_blocks == KV_TOKENS // BLOCK_SIZE


def test_each_layer_gets_its_own_groups_page_table(restored):
    _, runner, _, _ = restored
    groups = runner.layer_groups
    full, sliding = groups[1], groups[0]
    blocks = [{full: [5, 6], sliding: [7, 8]}, {full: [9, 10], sliding: [11]}]
    add_requests(runner, [tuple(b[g] for g in range(2)) for b in blocks])
    prefill_and_decode(runner)
    model = runner.tt_model.generator.model[0]
    prefill_tables, decode_tables = model.pushed
    width = runner.input_batch.block_table[0].max_num_blocks_per_req
    for tables in (prefill_tables, decode_tables):  # rows 0 and 1; decode slots 0 and 1 here
        assert len(tables) == 4 and {tuple(t.shape) for t in tables} == {(MAX_SEQS, width)}
        for layer, table in enumerate(tables):
            for row, request in enumerate(blocks):
                ids = request[groups[layer]]
                assert table[row, : len(ids)].tolist() == ids and not table[row, len(ids) :].any()
            assert not table[len(blocks) :].any()
    # tt-metal saw the tables stashed on its submesh model during each call, and gone after.
    stashes = runner.tt_model.generator.stashes
    assert [kind for kind, _ in stashes] == ["prefill", "decode"]
    for (_, (seen,)), pushed in zip(stashes, (prefill_tables, decode_tables), strict=True):
        assert len(seen) == 4 and all(a is b for a, b in zip(seen, pushed, strict=True))
    assert not hasattr(model, "_active_page_tables_per_layer")


def test_data_parallel_submeshes_each_get_their_half(vllm_config):
    _, runner, _, _ = start(vllm_config, hybrid.RestoredHybridGptOss, data_parallel=2)
    add_requests(runner, [([1], [2]), ([3], [4])])
    prefill_and_decode(runner)
    first, second = runner.tt_model.generator.model
    decode_first, decode_second = first.pushed[1], second.pushed[1]
    assert [tuple(t.shape) for t in decode_first] == [(MAX_SEQS // 2, decode_first[0].shape[1])] * 4
    assert [t[0, 0].item() for t in decode_first] == [
        [1, 2][g] for g in runner.layer_groups
    ]  # slot 0 on the first submesh
    assert not any(t.any() for t in decode_second)  # no request in slots 2 and 3


def test_a_class_without_per_layer_tables_is_refused_at_start_for_several_groups(vllm_config):
    """A plain generator (LlamaForCausalLM's shim: straight to prefill_forward_text) whose spec still
    makes several groups: nothing on its way takes page_tables_per_layer."""

    class NoTables(hybrid.RestoredHybridGptOss):
        def prefill_forward(self, *args, **kwargs):
            return hybrid.HybridGenerator.prefill_forward_text(self, *args, **kwargs)

    with pytest.raises(NotImplementedError) as error:
        start(vllm_config, NoTables)
    assert str(error.value) == (
        "TTMetalNoTables: vLLM planned 2 KV cache groups (hybrid attention), but its prefill_forward takes "
        "no page_tables_per_layer (one page table per layer, each its group's)."
    )
