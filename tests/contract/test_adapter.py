"""The tt-metal adapter and hooks (models/tt_metal*.py, models/optional_hooks.py) and the registry's
ttnn side, without tt-metal.

``GeneratorDouble`` below is a TEST DOUBLE shaped like tt_transformers' generator classes (``*_text``
methods behind ``(*args, **kwargs)`` shims, as in tt-metal's generator_vllm.py). It records what the
adapter passes; it says nothing about what tt-metal does with it. The adapter's numerics are checked by
the conformance suite (test_contract.py, the ``adapter-`` subject), and against real tt-metal only by
running that suite on hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from tests.contract.tt_metal_checkout import on_path, write_checkout
from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.models import registry
from tt_vllm_plugin.models.device_sampling import DeviceSamplingParams
from tt_vllm_plugin.models.optional_hooks import TraceFlags, kv_token_budget, trace_flags, warm_up
from tt_vllm_plugin.models.tt_metal import adapter as tt_metal_adapter
from tt_vllm_plugin.models.tt_metal import sampling as tt_metal_sampling
from tt_vllm_plugin.models.tt_metal.adapter import adapter_for
from tt_vllm_plugin.models.tt_metal.generators import TTMetalUnavailable
from tt_vllm_plugin.models.tt_metal.sampling import to_tt_metal_sampling_params
from tt_vllm_plugin.models.tt_metal.signatures import call_with_accepted


class GeneratorDouble:
    """TEST DOUBLE of a tt-metal generator class (records calls; computes nothing)."""

    model_capabilities = {"supports_prefix_caching": True}

    def __init__(self, init_args: tuple, init_kwargs: dict) -> None:
        self.init = (init_args, init_kwargs)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sampling_params: list[Any] = []  # what each prefill/decode call got as sampling_params
        self.empty_slots: list[Any] = []  # what each prefill call got as empty_slots

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config,
        mesh_device,
        max_batch_size,
        max_seq_len,
        n_layers=None,
        tt_data_parallel=1,
        optimizations="performance",
    ) -> GeneratorDouble:
        # tt-metal's generator_vllm.py classes name these (no **kwargs); see tt_metal_doubles.py.
        kwargs = {"n_layers": n_layers, "tt_data_parallel": tt_data_parallel, "optimizations": optimizations}
        return cls((hf_config, mesh_device, max_batch_size, max_seq_len), kwargs)

    def prefill_forward(self, *args: Any, **kwargs: Any) -> str:
        return self.prefill_forward_text(*args, **kwargs)

    def prefill_forward_text(
        self,
        tokens,
        page_table=None,
        kv_cache=None,
        prompt_lens=None,
        empty_slots=None,
        enable_trace=True,
        sampling_params=None,
        start_pos=None,
    ) -> str:
        self.calls.append(("prefill", {"enable_trace": enable_trace, "start_pos": start_pos}))
        self.sampling_params.append(sampling_params)
        self.empty_slots.append(empty_slots)
        return "prefill"

    def decode_forward(self, *args: Any, **kwargs: Any) -> str:
        return self.decode_forward_text(*args, **kwargs)

    def decode_forward_text(
        self,
        tokens,
        start_pos,
        page_table=None,
        kv_cache=None,
        enable_trace=True,
        read_from_device=True,
        sampling_params=None,
        reset_batch=False,
    ) -> str:
        self.calls.append(("decode", {"enable_trace": enable_trace, "reset_batch": reset_batch}))
        self.sampling_params.append(sampling_params)
        return "decode"


class OlderGeneratorDouble(GeneratorDouble):
    """TEST DOUBLE of an older generator: no start_pos, no enable_trace in prefill, no reset_batch."""

    model_capabilities: dict[str, bool] = {}

    def prefill_forward_text(
        self, tokens, page_table=None, kv_cache=None, prompt_lens=None, empty_slots=None
    ):
        self.calls.append(("prefill", {}))
        return "prefill"

    def decode_forward_text(
        self,
        tokens,
        start_pos,
        page_table=None,
        kv_cache=None,
        enable_trace=True,
        read_from_device=True,
        sampling_params=None,
    ) -> str:
        self.calls.append(("decode", {"enable_trace": enable_trace}))
        return "decode"

    def get_max_tokens_all_users(self, model_name: str = "", max_model_len: int = 0, max_num_seqs: int = 1):
        return max_model_len * max_num_seqs

    def warmup_model_prefill(self, kv_cache, enable_trace, can_sample_on_device):
        self.calls.append(("warmup_prefill", {"enable_trace": enable_trace, "sample": can_sample_on_device}))

    def warmup_model_decode(self, *, kv_cache, max_batch_size, num_blocks, enable_trace, **kwargs):
        self.calls.append(("warmup_decode", {"enable_trace": enable_trace, "max_batch_size": max_batch_size}))


def ttnn_device(trace_mode: str = "all", data_parallel: int = 1) -> SimpleNamespace:
    """Shaped like device/ttnn.TTNNDevice (the mesh is a plain marker object)."""
    return SimpleNamespace(
        mesh="MESH",
        trace_mode=trace_mode,
        data_parallel=data_parallel,
        optimizations="accuracy",
        num_devices=2,
    )


def build(generator_cls=GeneratorDouble, **device) -> Any:
    return adapter_for(generator_cls).initialize_vllm_model("HF", ttnn_device(**device), 8, 256)


TOKENS, TABLE = torch.zeros(2, 4, dtype=torch.int64), torch.zeros(2, 1, dtype=torch.int32)


@pytest.mark.parametrize(
    ("mode", "flags"),
    [
        ("all", TraceFlags(True, True)),
        ("decode_only", TraceFlags(False, True)),
        ("none", TraceFlags(False, False)),
    ],
)
def test_trace_flags(mode, flags):
    assert trace_flags(mode) == flags


def test_adapter_builds_the_generator_with_the_tt_options_of_the_mesh():
    model = build()
    assert model.generator.init == (
        ("HF", "MESH", 8, 256),
        {"n_layers": None, "tt_data_parallel": 1, "optimizations": "accuracy"},
    )
    assert type(model).model_capabilities == {"supports_prefix_caching": True}
    assert type(model).__name__ == "TTMetalGeneratorDouble" and adapter_for(GeneratorDouble) is type(model)


@pytest.mark.parametrize(
    ("mode", "prefill", "decode"), [("all", True, True), ("decode_only", False, True), ("none", False, False)]
)
def test_trace_mode_reaches_every_call(mode, prefill, decode):
    model = build(trace_mode=mode)
    model.prefill_forward(TOKENS, TABLE, [], torch.tensor([4, 2]), start_pos=torch.tensor([0, 0]))
    model.decode_forward(TOKENS[:, :1], torch.tensor([4, -1]), TABLE, [])
    assert model.generator.calls == [
        ("prefill", {"enable_trace": prefill, "start_pos": None}),  # no cached prefix: start_pos left out
        ("decode", {"enable_trace": decode, "reset_batch": False}),
    ]


def test_cached_prefix_and_reset_batch_are_passed_when_the_generator_takes_them():
    model = build()
    model.prefill_forward(
        TOKENS, TABLE, [], torch.tensor([4, 2]), start_pos=torch.tensor([2, 0], dtype=torch.int32)
    )
    model.decode_forward(TOKENS[:, :1], torch.tensor([4, -1]), TABLE, [], reset_batch=True)
    assert model.generator.calls[0] == ("prefill", {"enable_trace": True, "start_pos": [2, 0]})
    assert model.generator.calls[1] == ("decode", {"enable_trace": True, "reset_batch": True})


def test_an_older_generator_gets_only_what_it_takes():
    model = build(OlderGeneratorDouble, trace_mode="none")
    assert model.prefill_forward(TOKENS, TABLE, [], [4, 2], start_pos=[0, 0]) == "prefill"
    assert model.decode_forward(TOKENS[:, :1], torch.tensor([4, -1]), TABLE, [], reset_batch=True) == "decode"
    assert model.generator.calls == [("prefill", {}), ("decode", {"enable_trace": False})]
    with pytest.raises(
        NotImplementedError, match="OlderGeneratorDouble cannot prefill after a cached prefix"
    ):
        model.prefill_forward(TOKENS, TABLE, [], [4, 2], start_pos=[2, 0])


def test_data_parallel_reaches_the_generator_and_prefill_gets_the_slots():
    model = build(data_parallel=2)
    assert model.generator.init[1]["tt_data_parallel"] == 2
    model.prefill_forward(TOKENS, TABLE, [], [4, 2], start_pos=[0, 0], empty_slots=[5, 1])
    assert model.generator.empty_slots == [[5, 1]]  # tt-metal picks the submesh from the slot


def test_max_num_seqs_must_split_over_data_parallel():
    with pytest.raises(
        ValueError,
        match=r"max_num_seqs=8 does not split evenly over TT option data_parallel=3; use a multiple of 3\.",
    ):
        build(data_parallel=3)


def test_optional_hooks_show_only_when_the_generator_has_them():
    assert getattr(build(), "warmup_model_prefill", None) is None
    assert getattr(build(), "get_max_tokens_all_users", None) is None
    assert getattr(build(OlderGeneratorDouble), "warmup_model_decode", None) is not None
    with pytest.raises(AttributeError):
        _ = build().no_such_attribute


class AsyncReadGeneratorDouble(GeneratorDouble):
    """TEST DOUBLE with tt-metal's current async read: read_decode_output(tt_out, async_read) and
    process_decode_output_host(tt_out, is_tokens)."""

    model_capabilities = {"supports_async_decode": True}

    def read_decode_output(self, tt_out, async_read=False):
        return (f"host {tt_out}", ["event"]) if async_read else f"host {tt_out}"

    def process_decode_output_host(self, tt_out, is_tokens=False):
        return f"processed {tt_out}"


class BlockingReadGeneratorDouble(GeneratorDouble):
    """TEST DOUBLE with an older release's read: read and process in one blocking call."""

    model_capabilities = {"supports_async_decode": True}

    def read_decode_output(self, tt_out, unpadded_batch, is_tokens=False):
        return f"host {tt_out}"


def test_async_decode_is_kept_only_with_the_current_read_api(caplog):
    model = build(AsyncReadGeneratorDouble)
    assert model.model_capabilities["supports_async_decode"] is True
    assert model.read_decode_output("decode", async_read=True) == ("host decode", ["event"])
    assert model.process_decode_output_host("host decode", is_tokens=True) == "processed host decode"

    with caplog.at_level("WARNING"):
        older = build(BlockingReadGeneratorDouble)
    assert older.model_capabilities["supports_async_decode"] is False
    assert (
        "BlockingReadGeneratorDouble: its read_decode_output takes no async_read (an older tt-metal "
        "release); decoding synchronously." in caplog.text
    )
    # The generator class itself is left as it is.
    assert BlockingReadGeneratorDouble.model_capabilities["supports_async_decode"] is True


def test_kv_budget_and_warm_up_go_through_the_adapter():
    model = build(OlderGeneratorDouble, trace_mode="decode_only")
    budget = kv_token_budget(model, model_name="m", num_devices=2, max_model_len=256, max_num_seqs=8)
    assert budget == 2048
    assert warm_up(model, kv_cache=[], trace=trace_flags("decode_only"), max_batch_size=8, num_blocks=4)
    # Two phases, as Tenstorrent's warmup_model: everything untraced, then what is traced, traced.
    assert model.generator.calls == [
        ("warmup_prefill", {"enable_trace": False, "sample": False}),
        ("warmup_decode", {"enable_trace": False, "max_batch_size": 8}),
        ("warmup_decode", {"enable_trace": True, "max_batch_size": 8}),
    ]
    host_like = object()
    assert kv_token_budget(host_like, model_name="m", num_devices=1, max_model_len=1, max_num_seqs=1) is None
    assert not warm_up(host_like, kv_cache=[], trace=trace_flags("all"), max_batch_size=1, num_blocks=1)


class GreedyOnlyDouble:
    """TEST DOUBLE: a contract model whose device sampler is greedy only."""

    model_capabilities = {"supports_sample_on_device": True, "max_device_top_k": 0}


@pytest.mark.parametrize(
    ("model", "mode", "expected"),
    [
        (GeneratorDouble((), {}), None, (False, False)),
        (GeneratorDouble((), {}), "all", (True, True)),
        (
            GeneratorDouble((), {}),
            "decode_only",
            (False, False),
        ),  # prefill samples on the device only for "all"
        (GreedyOnlyDouble(), "all", (True, False)),
    ],
)
def test_warm_up_prepares_device_sampling_when_the_runner_may_ask_for_it(model, mode, expected):
    recorded: dict[str, Any] = {}

    def prefill(kv_cache, enable_trace, can_sample_on_device, non_greedy_decoding_on_device):  # generator.py
        recorded.update(can=can_sample_on_device, non_greedy=non_greedy_decoding_on_device)

    model.warmup_model_prefill = prefill
    warm_up(
        model,
        kv_cache=[],
        trace=trace_flags("none"),
        max_batch_size=8,
        num_blocks=4,
        sample_on_device_mode=mode,
    )
    assert (recorded["can"], recorded["non_greedy"]) == expected


def test_a_budget_below_one_token_is_an_error():
    model = SimpleNamespace(get_max_tokens_all_users=lambda **_: 0)
    with pytest.raises(ValueError, match="get_max_tokens_all_users returned 0"):
        kv_token_budget(model, model_name="m", num_devices=1, max_model_len=1, max_num_seqs=1)


def test_call_with_accepted_names_what_it_cannot_supply():
    def hook(kv_cache, enable_trace, something_new):
        pass

    with pytest.raises(TypeError, match=r"needs argument\(s\) we do not have: \['something_new'\]"):
        call_with_accepted(hook, {"kv_cache": [], "enable_trace": True})


# ---- the registry on the ttnn device


def test_ttnn_without_tt_metal_says_what_to_install():
    with pytest.raises(TTMetalUnavailable, match="tt-metal's models are not importable"):
        registry.load_model_class("TTLlamaForCausalLM", DeviceChoice.TTNN)


@pytest.fixture
def tt_metal_module(tmp_path):
    """A tt-metal checkout in the tt_transformers layout whose generator_vllm has a Llama class and an
    older release's Qwen2 class (tests/contract/tt_metal_checkout.py)."""
    here = GeneratorDouble.__module__  # as pytest imported this file, so the classes stay the same objects
    classes = {
        "LlamaForCausalLM": f"{here}:GeneratorDouble",
        "Qwen2ForCausalLM": f"{here}:OlderGeneratorDouble",
    }
    with on_path(write_checkout(tmp_path, {"tt_transformers": classes})):
        yield


def test_ttnn_device_uses_the_generators_that_are_there(tt_metal_module):
    targets = registry.implementations(DeviceChoice.TTNN)
    assert targets == {
        "TTLlamaForCausalLM": "models.tt_transformers.tt.generator_vllm:LlamaForCausalLM",
        "TTQwen2ForCausalLM": "models.tt_transformers.tt.generator_vllm:Qwen2ForCausalLM",
    }
    cls = registry.load_model_class("TTQwen2ForCausalLM", DeviceChoice.TTNN)
    assert cls.generator_cls is OlderGeneratorDouble and issubclass(cls, tt_metal_adapter.TTMetalModel)
    # The host device keeps its own classes.
    assert (
        registry.load_model_class("TTQwen2ForCausalLM", DeviceChoice.HOST).__module__
        == "tt_vllm_plugin.models.host.llama.architectures"
    )


def test_ttnn_device_names_what_the_installed_tt_metal_lacks(tt_metal_module):
    with pytest.raises(ValueError) as error:
        registry.load_model_class("TTMistralForCausalLM", DeviceChoice.TTNN)
    assert str(error.value) == (
        "Architecture 'MistralForCausalLM' has no TT implementation in the installed tt-metal. "
        "Supported architectures: LlamaForCausalLM, Qwen2ForCausalLM."
    )


def test_default_device_follows_tt_vllm_device(monkeypatch):
    monkeypatch.setenv("TT_VLLM_DEVICE", "host")
    assert registry.current_device() is DeviceChoice.HOST
    monkeypatch.setenv("TT_VLLM_DEVICE", "ttnn")  # no hardware here: cannot resolve, so the host device
    assert registry.current_device() is DeviceChoice.HOST


# ---- on-device sampling: the runner's parameters as tt-metal's SamplingParams


@dataclass(frozen=True)
class SamplingParamsStandIn:
    """STAND-IN with the fields of tt-metal's models/common/sampling/sampling_params.py SamplingParams
    (read from its source; not imported: tt-metal is not installed here)."""

    temperature: float | list[float]
    top_k: int | list[int]
    top_p: float | list[float]
    presence_penalty: float | list[float] = 0.0
    frequency_penalty: float | list[float] = 0.0
    repetition_penalty: float | list[float] = 1.0
    seed: int | list[int] | None = None
    enable_log_probs: bool | list[bool] = False


@dataclass(frozen=True)
class SeedlessSamplingParamsStandIn:
    """STAND-IN for vLLM-fork era TTSamplingParams: temperature, top_k, top_p only."""

    temperature: float | list[float]
    top_k: int | list[int]
    top_p: float | list[float]


# Row 0 greedy (top-k/top-p of a greedy request do not matter), row 1 seeded top-k/top-p, row 2 a
# temperature-only request with a top-k cut of 32.
# Row 1's request has seed 7; the per-step seeds (11, 12, 13) are what host models sample with.
ROWS = DeviceSamplingParams.from_lists(
    temperature=[0.0, 0.7, 1.3],
    top_k=[0, 5, 32],
    top_p=[0.5, 0.9, 1.0],
    seeds=[11, 12, 13],
    request_seeds=[None, 7, None],
)


def test_rows_become_tt_metal_lists_with_its_greedy_convention():
    params = to_tt_metal_sampling_params(ROWS, SamplingParamsStandIn)
    assert params.temperature == pytest.approx([0.0, 0.7, 1.3])
    assert params.top_k == [1, 5, 32]
    assert params.top_p == pytest.approx([1.0, 0.9, 1.0])
    # tt-metal gets each request's own seed (its SeedManager seeds the slot at prefill), None unseeded.
    assert params.seed == [None, 7, None]
    assert (params.presence_penalty, params.repetition_penalty, params.enable_log_probs) == (0.0, 1.0, False)


def test_a_class_without_seeds_gets_no_seeds():
    params = to_tt_metal_sampling_params(ROWS, SeedlessSamplingParamsStandIn)
    assert (params.top_k, params.top_p[0]) == ([1, 5, 32], 1.0)


def test_a_class_without_the_core_fields_is_refused_by_name():
    @dataclass(frozen=True)
    class Unknown:
        temp: float
        k: int

    with pytest.raises(TypeError) as error:
        to_tt_metal_sampling_params(ROWS, Unknown)
    assert "has no field(s) ['temperature', 'top_k', 'top_p']" in str(error.value)
    assert "unset sample_on_device_mode" in str(error.value)


def test_the_adapter_hands_the_generator_tt_metals_sampling_params(monkeypatch):
    monkeypatch.setattr(tt_metal_sampling, "tt_metal_sampling_params_class", lambda: SamplingParamsStandIn)
    model = build()
    model.prefill_forward(TOKENS, TABLE, [], [4, 2], sampling_params=ROWS.select(slice(0, 2)))
    model.decode_forward(
        TOKENS[:, :1], torch.tensor([4, 2]), TABLE, [], sampling_params=ROWS.select(slice(1, 3))
    )
    model.decode_forward(TOKENS[:, :1], torch.tensor([4, 2]), TABLE, [])
    prefill, decode, host_sampled = model.generator.sampling_params
    assert isinstance(prefill, SamplingParamsStandIn) and prefill.top_k == [1, 5]
    assert isinstance(decode, SamplingParamsStandIn) and decode.seed == [7, None]
    assert host_sampled is None  # a step vLLM's sampler samples passes no sampling parameters


def test_without_tt_metal_the_runners_parameters_pass_unchanged():
    # Here tt-metal is not importable: a generator wrapped for the conformance suite (a host model)
    # takes DeviceSamplingParams itself.
    assert tt_metal_sampling.tt_metal_sampling_params_class() is None
    model = build()
    model.decode_forward(TOKENS[:, :1], torch.tensor([4, 2]), TABLE, [], sampling_params=ROWS)
    assert model.generator.sampling_params == [ROWS]
