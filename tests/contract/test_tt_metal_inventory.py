"""The ttnn device serves every generator class the installed tt-metal has (src/tt_vllm_plugin/models/
tt_metal/inventory.py), under the TT names Tenstorrent's plugin gives them (the image classes among them,
declaring ``supports_multimodal``), and refuses by name, saying why, the class no vLLM v1 plugin can serve
(Mllama). Checked against checkouts written to disk (tests/contract/tt_metal_checkout.py) whose
generator modules hold the class names of the real ones:

- ttt_compat: tenstorrent/tt-metal ``models/ttt_compat/tt/generator_vllm.py`` @
  3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf (Mistral3ForConditionalGeneration, MllamaForConditionalGeneration,
  LlamaForCausalLM, QwenForCausalLM, MistralForCausalLM, Gemma3ForConditionalGeneration,
  Exaone4_5_ForConditionalGeneration, GptOssForCausalLM, and the HybridAttentionForCausalLM base);
- tt_transformers: ``models/tt_transformers/tt/generator_vllm.py`` @ 2a43729eb2eb37d76004e978da0af31e33829840
  (the same without Exaone4_5 and the hybrid base).

The inventory reads only the names, so every name re-exports one test double; nothing is built here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract import tt_metal_doubles as doubles
from tests.contract import tt_metal_image_doubles as image_doubles
from tests.contract.tt_metal_checkout import on_path, write_checkout
from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.models import registry
from tt_vllm_plugin.models.contract import takes_images

DOUBLE = f"{doubles.__name__}:TttCompatLlama"
TT_TRANSFORMERS_CLASSES = (
    "Mistral3ForConditionalGeneration",
    "MllamaForConditionalGeneration",
    "LlamaForCausalLM",
    "QwenForCausalLM",
    "MistralForCausalLM",
    "Gemma3ForConditionalGeneration",
    "GptOssForCausalLM",
)
TTT_COMPAT_CLASSES = (
    *TT_TRANSFORMERS_CLASSES,
    "Exaone4_5_ForConditionalGeneration",
    "HybridAttentionForCausalLM",
)
REFUSED = ["MllamaForConditionalGeneration"]


def double_for(name: str) -> str:
    """The image classes are their own doubles (the adapter knows them by name); the rest re-export one."""
    if hasattr(image_doubles, name):
        return f"{image_doubles.__name__}:{name}"
    return DOUBLE


def checkout(root: Path, layout: str, names: tuple[str, ...], **kwargs) -> Path:
    return write_checkout(root, {layout: {name: double_for(name) for name in names}}, **kwargs)


def test_the_ttt_compat_release_serves_all_its_text_generators(tmp_path: Path) -> None:
    with on_path(checkout(tmp_path, "ttt_compat", TTT_COMPAT_CLASSES)):
        module = "models.ttt_compat.tt.generator_vllm"
        assert registry.implementations(DeviceChoice.TTNN) == {
            "TTLlamaForCausalLM": f"{module}:LlamaForCausalLM",
            "TTQwen2ForCausalLM": f"{module}:QwenForCausalLM",
            "TTQwen3ForCausalLM": f"{module}:QwenForCausalLM",
            "TTMistralForCausalLM": f"{module}:MistralForCausalLM",
            "TTGptOssForCausalLM": f"{module}:GptOssForCausalLM",
            "TTExaone4_5_ForConditionalGeneration": f"{module}:Exaone4_5_ForConditionalGeneration",
            "TTGemma3ForConditionalGeneration": f"{module}:Gemma3ForConditionalGeneration",
            "TTMistral3ForConditionalGeneration": f"{module}:Mistral3ForConditionalGeneration",
        }
        assert registry.refused_architectures(DeviceChoice.TTNN) == REFUSED
        # vLLM knows the checkpoint as multimodal; the class serves its text, so vLLM gets the bare name.
        assert set(registry.resolve(DeviceChoice.TTNN).bare_names) == {"Exaone4_5_ForConditionalGeneration"}


def test_the_tt_transformers_release_serves_its_own(tmp_path: Path) -> None:
    with on_path(checkout(tmp_path, "tt_transformers", TT_TRANSFORMERS_CLASSES)):
        assert registry.supported_architectures(DeviceChoice.TTNN) == [
            "Gemma3ForConditionalGeneration",
            "GptOssForCausalLM",
            "LlamaForCausalLM",
            "Mistral3ForConditionalGeneration",
            "MistralForCausalLM",
            "Qwen2ForCausalLM",
            "Qwen3ForCausalLM",
        ]
        assert registry.refused_architectures(DeviceChoice.TTNN) == REFUSED


def test_mllama_is_refused_saying_why_and_what_to_serve_instead(tmp_path: Path) -> None:
    with on_path(checkout(tmp_path, "ttt_compat", TTT_COMPAT_CLASSES)):
        with pytest.raises(ValueError) as error:
            registry.load_model_class("TTMllamaForConditionalGeneration", DeviceChoice.TTNN)
    assert str(error.value) == (
        "MllamaForConditionalGeneration cannot be served: vLLM v1 has no MllamaForConditionalGeneration "
        "(Llama 3.2 Vision is a cross-attention encoder-decoder model; vLLM removed it after 0.10.2 with "
        "its V0 engine, and tt-metal's generator leaves its processor registration commented out), so "
        "neither this plugin nor Tenstorrent's can serve it "
        "(tt-metal's models.ttt_compat.tt.generator_vllm:MllamaForConditionalGeneration). "
        "Serve a text Llama (LlamaForCausalLM) or an image model the installed tt-metal serves "
        "(Gemma3ForConditionalGeneration, Mistral3ForConditionalGeneration) instead."
    )


def test_vllm_itself_lists_mllama_as_gone() -> None:
    """The refusal's premise, from the installed vLLM: Mllama is among its previously supported models."""
    from vllm.model_executor.models import registry as vllm_models

    assert "MllamaForConditionalGeneration" not in vllm_models._MULTIMODAL_MODELS
    assert vllm_models._PREVIOUSLY_SUPPORTED_MODELS["MllamaForConditionalGeneration"] == "0.10.2"


def test_image_classes_the_adapter_feeds_are_served_declaring_images(tmp_path: Path) -> None:
    """The platform accepts a multimodal checkpoint only for a class declaring ``supports_multimodal``."""
    from tt_vllm_plugin.models.tt_metal import images, inventory

    with on_path(checkout(tmp_path, "ttt_compat", TTT_COMPAT_CLASSES)):
        gemma3 = registry.load_model_class("TTGemma3ForConditionalGeneration", DeviceChoice.TTNN)
        llama = registry.load_model_class("TTLlamaForCausalLM", DeviceChoice.TTNN)
    assert takes_images(gemma3) and not takes_images(llama)
    # One home for which classes take images: the inventory's flags name the classes images.py feeds.
    assert {entry.name for entry in inventory.GENERATOR_CLASSES if entry.takes_images} == set(
        images.CONVENTIONS
    )


def test_served_classes_load_through_the_adapter(tmp_path: Path) -> None:
    with on_path(checkout(tmp_path, "ttt_compat", TTT_COMPAT_CLASSES)):
        cls = registry.load_model_class("TTExaone4_5_ForConditionalGeneration", DeviceChoice.TTNN)
    assert cls.generator_cls is doubles.TttCompatLlama


def test_classes_elsewhere_in_the_models_package_count_when_their_module_is_there(tmp_path: Path) -> None:
    """Tenstorrent's built-in map names classes outside the generator module (vllm-tt-plugin
    platform.py @ 01078a07128216ae085a966749974376cea8e721): Gemma 4 (three checkpoint architectures, one
    text-only class), Qwen2.5-VL and Qwen3-VL (images)."""
    qwen3_vl = f"{image_doubles.__name__}:Qwen3VLForConditionalGeneration"
    modules = {
        "models.demos.gemma4.tt.generator_vllm": {"Gemma4ForCausalLM": DOUBLE},
        "models.demos.qwen25_vl.tt.generator_vllm": {"Qwen2_5_VLForConditionalGeneration": DOUBLE},
        "models.demos.qwen3_vl.tt.generator_vllm": {"Qwen3VLForConditionalGeneration": qwen3_vl},
    }
    with on_path(checkout(tmp_path, "ttt_compat", ("LlamaForCausalLM",), modules=modules)):
        served = registry.implementations(DeviceChoice.TTNN)
        refused = registry.refused_architectures(DeviceChoice.TTNN)
        bare = registry.resolve(DeviceChoice.TTNN).bare_names
        qwen3_vl_cls = registry.load_model_class("TTQwen3VLForConditionalGeneration", DeviceChoice.TTNN)
    gemma4 = "models.demos.gemma4.tt.generator_vllm:Gemma4ForCausalLM"
    assert served == {
        "TTLlamaForCausalLM": "models.ttt_compat.tt.generator_vllm:LlamaForCausalLM",
        "TTGemma4ForCausalLM": gemma4,
        "TTGemma4ForConditionalGeneration": gemma4,
        "TTGemma4UnifiedForConditionalGeneration": gemma4,
        "TTQwen2_5_VLForConditionalGeneration": (
            "models.demos.qwen25_vl.tt.generator_vllm:Qwen2_5_VLForConditionalGeneration"
        ),
        "TTQwen3VLForConditionalGeneration": (
            "models.demos.qwen3_vl.tt.generator_vllm:Qwen3VLForConditionalGeneration"
        ),
    }
    assert refused == []
    assert takes_images(qwen3_vl_cls) and qwen3_vl_cls.mm_limits_per_prompt == {"image": 1}
    # As Tenstorrent's plugin, the Gemma 4 names go to vLLM's registry bare too (vLLM sees text only).
    assert sorted(bare) == [name.removeprefix("TT") for name in sorted(served) if "Gemma4" in name]


def test_an_override_serves_on_the_ttnn_device_without_tt_metals_own_models(tmp_path, monkeypatch):
    """Without tt-metal's generator module the built-in map is missing; a user's class still serves, and
    an architecture nobody serves says why."""
    from tt_vllm_plugin.models.tt_metal.generators import TTMetalUnavailable

    monkeypatch.setenv("TT_MODEL_CLASS_OVERRIDES", f"LlamaForCausalLM={DOUBLE}")
    with on_path(write_checkout(tmp_path, {})):  # a `models` package without generators
        assert registry.load_model_class("TTLlamaForCausalLM", DeviceChoice.TTNN).generator_cls is (
            doubles.TttCompatLlama
        )
        with pytest.raises(TTMetalUnavailable, match="tt-metal's models are not importable"):
            registry.load_model_class("TTQwen3ForCausalLM", DeviceChoice.TTNN)
