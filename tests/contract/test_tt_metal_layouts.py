"""Both package layouts of tt-metal's vLLM generators, imported from a checkout on disk
(tests/contract/tt_metal_checkout.py): ``models.ttt_compat`` first, then ``models.tt_transformers``; the
generators, ``SamplingParams`` and the errors when neither is there."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.contract import tt_metal_doubles as doubles
from tests.contract.tt_metal_checkout import LAYOUTS, on_path, write_checkout
from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.models import registry
from tt_vllm_plugin.models.device_sampling import DeviceSamplingParams
from tt_vllm_plugin.models.tt_metal import adapter as tt_metal_adapter
from tt_vllm_plugin.models.tt_metal import generators
from tt_vllm_plugin.models.tt_metal import sampling as tt_metal_sampling
from tt_vllm_plugin.models.tt_metal.signatures import accepts, forward_target

DOUBLES = doubles.__name__
TTT_COMPAT = {
    "LlamaForCausalLM": f"{DOUBLES}:TttCompatLlama",
    "QwenForCausalLM": f"{DOUBLES}:TttCompatLlama",
    "MistralForCausalLM": f"{DOUBLES}:TttCompatLlama",
}
TT_TRANSFORMERS = {
    "LlamaForCausalLM": f"{DOUBLES}:CurrentLlama",
    "QwenForCausalLM": f"{DOUBLES}:CurrentLlama",
}


def module_of(target: str) -> str:
    return target.split(":")[0]


@pytest.mark.parametrize(
    ("layout", "classes"), [("ttt_compat", TTT_COMPAT), ("tt_transformers", TT_TRANSFORMERS)]
)
def test_each_layout_alone_serves_its_generators(
    tmp_path: Path, layout: str, classes: dict[str, str]
) -> None:
    with on_path(write_checkout(tmp_path, {layout: classes})):
        targets = registry.implementations(DeviceChoice.TTNN)
        assert set(map(module_of, targets.values())) == {f"models.{layout}.tt.generator_vllm"}
        assert sorted(targets) == sorted(
            f"TT{arch}"
            for arch in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
            if arch in classes or (arch.startswith("Qwen") and "QwenForCausalLM" in classes)
        )
        cls = registry.load_model_class("TTQwen3ForCausalLM", DeviceChoice.TTNN)
        expected = doubles.TttCompatLlama if layout == "ttt_compat" else doubles.CurrentLlama
        assert cls.generator_cls is expected and issubclass(cls, tt_metal_adapter.TTMetalModel)


def test_ttt_compat_wins_when_both_layouts_are_there(tmp_path: Path) -> None:
    with on_path(write_checkout(tmp_path, {"ttt_compat": TTT_COMPAT, "tt_transformers": TT_TRANSFORMERS})):
        assert generators.generator_module().__name__ == "models.ttt_compat.tt.generator_vllm"
        assert registry.load_model_class("TTLlamaForCausalLM", DeviceChoice.TTNN).generator_cls is (
            doubles.TttCompatLlama
        )


def test_without_either_layout_the_error_names_both(tmp_path: Path) -> None:
    with on_path(write_checkout(tmp_path, {})):  # a `models` package, but no generators in it
        with pytest.raises(generators.TTMetalUnavailable) as error:
            registry.load_model_class("TTLlamaForCausalLM", DeviceChoice.TTNN)
    assert str(error.value) == (
        "tt-metal's models are not importable (no module 'models.ttt_compat.tt.generator_vllm' or "
        "'models.tt_transformers.tt.generator_vllm'): put a tt-metal checkout on PYTHONPATH (its root holds "
        "the `models` package) and set TT_METAL_HOME, or set TT_VLLM_DEVICE=host."
    )


def test_a_generator_module_that_fails_to_import_is_named(tmp_path: Path) -> None:
    with on_path(write_checkout(tmp_path, {"ttt_compat": TTT_COMPAT}, broken="ttt_compat")):
        with pytest.raises(generators.TTMetalUnavailable) as error:
            generators.generator_module()
    assert str(error.value).startswith(
        "models.ttt_compat.tt.generator_vllm failed to import (ImportError: cannot import name "
        "MultiModalDataDict from vllm.inputs); tt-metal's vLLM generators are written against a particular "
        "vLLM version"
    )


@pytest.mark.parametrize("where", ["common", *LAYOUTS])
def test_sampling_params_are_found_in_every_place_tt_metal_kept_them(tmp_path: Path, where: str) -> None:
    with on_path(write_checkout(tmp_path, {"ttt_compat": TTT_COMPAT}, sampling_params_in=where)):
        found = tt_metal_sampling.tt_metal_sampling_params_class()
        assert found is not None
        expected_module = (
            "models.common.sampling.sampling_params" if where == "common" else f"models.{where}.tt.generator"
        )
        assert found.__module__ == expected_module
        rows = DeviceSamplingParams.from_lists(
            temperature=[0.0, 0.7], top_k=[0, 5], top_p=[1.0, 0.9], seeds=[1, 2], request_seeds=[None, None]
        )
        assert isinstance(tt_metal_sampling.for_generator(rows), found)


def test_the_ttt_compat_prefill_wrapper_is_followed_to_the_signature_behind_it() -> None:
    """ttt_compat's Generator.prefill_forward_text is ``(self, *args, **kwargs)`` around
    ``_prefill_forward_text_impl``: reading the wrapper would drop start_pos, empty_slots and enable_trace
    (prefix caching refused, sampler state seeded in the wrong slot)."""
    model = tt_metal_adapter.adapter_for(doubles.TttCompatLlama).initialize_vllm_model(
        "HF", _device(), 8, 256
    )
    target = forward_target(model.generator, "prefill_forward")
    assert target.__name__ == "_prefill_forward_text_impl"
    assert all(
        accepts(target, name) for name in ("start_pos", "empty_slots", "enable_trace", "sampling_params")
    )
    model.prefill_forward(
        torch.zeros(2, 4, dtype=torch.int64), torch.zeros(2, 1, dtype=torch.int32), [], [4, 3],
        start_pos=[0, 2], empty_slots=[5, 1],
    )  # fmt: skip
    assert [args for name, args in model.generator.calls if name == "prefill_forward_text"] == [
        {"empty_slots": [5, 1], "enable_trace": True, "sampling_params": None, "start_pos": [0, 2]}
    ]


def _device():
    from types import SimpleNamespace

    return SimpleNamespace(mesh="MESH", trace_mode="all", data_parallel=1, optimizations=None)
