"""Every vLLM generator class tt-metal ships, the Hugging Face architectures each serves, which take
images, and which no vLLM v1 plugin can serve (refused by name, saying why).

The ttnn device serves each class of this inventory the installed tt-metal has (``generators.py`` finds
the generator module in either package layout; classes elsewhere in tt-metal's ``models`` package count
when their module is there). Architectures are mapped to TT names as Tenstorrent's plugin registers them
(``TT`` + the checkpoint's architecture; one class may serve several). Image classes whose images the
adapter knows how to pass (``takes_images``: ``images.py`` has their convention) are served, and their
adapter declares ``supports_multimodal``, which the platform checks before it accepts a multimodal
checkpoint. ``MllamaForConditionalGeneration`` is listed so it can be refused by name with its reason
(``refusal``): vLLM v1 has no Mllama, so neither this plugin nor Tenstorrent's can serve it.

Sources (all public, on GitHub):

- ``PF``: tenstorrent/vllm-tt-plugin ``src/vllm_tt_plugin/platform.py`` @
  01078a07128216ae085a966749974376cea8e721, ``register_tt_models``: the built-in map, TT name -> class.
- ``VC``: tenstorrent/tt-metal ``models/ttt_compat/tt/generator_vllm.py`` @
  3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf: the classes (Llama, Qwen, Mistral, Mistral3, Mllama, Gemma3,
  Exaone4_5, GptOss, and the HybridAttentionForCausalLM base, which serves nothing itself).
- ``V`` / ``V1``: ``models/tt_transformers/tt/generator_vllm.py`` @ 2a43729eb2eb37d76004e978da0af31e33829840 /
  @ 0015d62ba229715e1a2490489c17fce1ed317338: the same classes without Exaone4_5 and the hybrid base.
- ``VR``: vLLM 0.32's ``vllm/model_executor/models/registry.py``, ``_PREVIOUSLY_SUPPORTED_MODELS``:
  ``"MllamaForConditionalGeneration": "0.10.2"`` under "encoder-decoder models except whisper have been
  removed for V0 deprecation" (its models folder has only ``mllama4.py``, Llama 4).
"""

from __future__ import annotations

from dataclasses import dataclass

# The classes' own modules outside the generator module (PF's built-in map names them by full path).
_QWEN25_VL = "models.demos.qwen25_vl.tt.generator_vllm"
_QWEN3_VL = "models.demos.qwen3_vl.tt.generator_vllm"
_GEMMA4 = "models.demos.gemma4.tt.generator_vllm"
_DEEPSEEK_V3 = "models.demos.deepseek_v3.tt.generator_vllm"
_QWEN36 = "models.demos.blackhole.qwen36.tt.qwen36_vllm"


@dataclass(frozen=True)
class GeneratorClass:
    """One tt-metal generator class and what it serves."""

    name: str  # the class name in its module
    architectures: tuple[str, ...]  # Hugging Face architectures it serves (TT name: "TT" + each)
    source: str  # where the mapping is read from
    module: str | None = None  # None: tt-metal's generator module (either layout)
    takes_images: bool = False  # its prefill takes images as ``images.py`` passes them: served
    refusal: str = ""  # why no vLLM v1 plugin can serve it (refused by name with this reason)
    # vLLM knows these checkpoints as multimodal, the class serves their text: vLLM's registry gets the
    # bare names too (as PF does for Gemma 4), so vLLM's config treats the checkpoint as text only.
    bare_names: bool = False


# First entry whose class is present wins an architecture.
GENERATOR_CLASSES: tuple[GeneratorClass, ...] = (
    GeneratorClass("LlamaForCausalLM", ("LlamaForCausalLM",), "PF TTLlamaForCausalLM; VC, V, V1"),
    # One Qwen class for Qwen2/2.5 and Qwen3 (PF registers it under both TT names).
    GeneratorClass(
        "QwenForCausalLM", ("Qwen2ForCausalLM", "Qwen3ForCausalLM"), "PF TTQwen2/TTQwen3ForCausalLM; VC"
    ),
    # tt-metal once named its Qwen generator Qwen2ForCausalLM (Qwen2 only): older versions of
    # models/tt_transformers/tt/generator_vllm.py, stored in the search index without a commit.
    GeneratorClass("Qwen2ForCausalLM", ("Qwen2ForCausalLM",), "older tt_transformers generator_vllm.py"),
    GeneratorClass("MistralForCausalLM", ("MistralForCausalLM",), "PF TTMistralForCausalLM; VC, V, V1"),
    # Hybrid sliding/full attention (VC: a HybridAttentionForCausalLM subclass; a plain Generator in V, V1).
    GeneratorClass("GptOssForCausalLM", ("GptOssForCausalLM",), "PF TTGptOssForCausalLM; VC, V, V1"),
    # Text decoder only (its docstring: "Vision inputs are not yet wired through vLLM"); PF has no
    # built-in entry, the docstring names the TT name TTExaone4_5_ForConditionalGeneration.
    GeneratorClass(
        "Exaone4_5_ForConditionalGeneration",
        ("Exaone4_5_ForConditionalGeneration",),
        "VC docstring",
        bare_names=True,
    ),
    # Their prefill takes images (VC: Gemma3 pixel_values, Mistral3 images -> pixel_values/image_sizes:
    # images.py; Mllama images and cross_page_table, which vLLM v1 cannot serve: VC comments out its
    # processor registration, and VR lists Mllama as removed after 0.10.2).
    GeneratorClass(
        "Gemma3ForConditionalGeneration",
        ("Gemma3ForConditionalGeneration",),
        "PF TTGemma3ForConditionalGeneration; VC, V, V1",
        takes_images=True,
    ),
    GeneratorClass(
        "Mistral3ForConditionalGeneration",
        ("Mistral3ForConditionalGeneration",),
        "PF TTMistral3ForConditionalGeneration; VC, V, V1",
        takes_images=True,
    ),
    GeneratorClass(
        "MllamaForConditionalGeneration",
        ("MllamaForConditionalGeneration",),
        "PF TTMllamaForConditionalGeneration; VC, V, V1, VR",
        refusal=(
            "vLLM v1 has no MllamaForConditionalGeneration (Llama 3.2 Vision is a cross-attention "
            "encoder-decoder model; vLLM removed it after 0.10.2 with its V0 engine, and tt-metal's "
            "generator leaves its processor registration commented out), so neither this plugin nor "
            "Tenstorrent's can serve it"
        ),
    ),
    # Elsewhere in tt-metal's models package (PF's built-in map).
    GeneratorClass(
        "Qwen2_5_VLForConditionalGeneration",
        ("Qwen2_5_VLForConditionalGeneration",),
        "PF TTQwen2_5_VLForConditionalGeneration",
        module=_QWEN25_VL,
        takes_images=True,
    ),
    GeneratorClass(
        "Qwen3VLForConditionalGeneration",
        ("Qwen3VLForConditionalGeneration",),
        "PF TTQwen3VLForConditionalGeneration",
        module=_QWEN3_VL,
        takes_images=True,
    ),
    # PF maps all three Gemma 4 checkpoint architectures to one text-only class.
    GeneratorClass(
        "Gemma4ForCausalLM",
        ("Gemma4ForCausalLM", "Gemma4ForConditionalGeneration", "Gemma4UnifiedForConditionalGeneration"),
        "PF Gemma4 aliases",
        module=_GEMMA4,
        bare_names=True,
    ),
    GeneratorClass(
        "DeepseekV3ForCausalLM", ("DeepseekV3ForCausalLM",), "PF TTDeepseekV3ForCausalLM", module=_DEEPSEEK_V3
    ),
    GeneratorClass(
        "Qwen36ForCausalLM",
        ("Qwen3_5ForConditionalGeneration",),
        'PF TTQwen3_5ForConditionalGeneration ("Qwen3.5 - Text")',
        module=_QWEN36,
        bare_names=True,
    ),
)


@dataclass(frozen=True)
class Served:
    """What the classes found serve, Hugging Face architecture -> ``"module:Class"``."""

    text: dict[str, str]
    refused: dict[str, str]  # architectures of classes with a ``refusal``
    bare_names: dict[str, str]  # of ``text``: the architectures vLLM's registry gets under the bare name


def served(present: dict[GeneratorClass, str]) -> Served:
    """Sort the classes found (class -> ``"module:Class"``) by what they serve, the first present class
    winning an architecture."""
    result = Served({}, {}, {})
    for entry in GENERATOR_CLASSES:
        target = present.get(entry)
        if target is None:
            continue
        for arch in entry.architectures:
            if arch in result.text or arch in result.refused:
                continue
            (result.refused if entry.refusal else result.text)[arch] = target
            if entry.bare_names and not entry.refusal:
                result.bare_names[arch] = target
    return result


def refusal_of(arch: str) -> str:
    """Why the class listed for Hugging Face architecture ``arch`` cannot be served ("" when it can)."""
    return next((entry.refusal for entry in GENERATOR_CLASSES if arch in entry.architectures), "")


def image_architectures() -> list[str]:
    """The Hugging Face architectures of the classes that take images, sorted."""
    return sorted({arch for entry in GENERATOR_CLASSES if entry.takes_images for arch in entry.architectures})
