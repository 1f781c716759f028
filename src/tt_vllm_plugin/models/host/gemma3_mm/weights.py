"""Where a Gemma 3 multimodal checkpoint keeps its parts.

Several namings are in the field: the original checkpoints (e.g. google/gemma-3-4b-it:
``language_model.model.``, ``vision_tower.vision_model.``, ``multi_modal_projector.``,
``language_model.lm_head.``), those saved by transformers 4.52 to 4.x (``model.language_model.``,
``model.vision_tower.vision_model.``, ``model.multi_modal_projector.``, ``lm_head.``: vLLM's
``gemma3_mm.py`` ``hf_to_vllm_mapper`` maps them), and transformers 5's (the original prefixes again, with
the SigLIP tower's own ``vision_model.`` level gone: ``vision_tower.embeddings...``). Each part's prefix is
read off the checkpoint's tensor names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tt_vllm_plugin.models.host.checkpoint import safetensors_locations

_TEXT = ("language_model.model.", "model.language_model.")
_VISION = (
    "vision_tower.vision_model.",
    "vision_tower.",
    "model.vision_tower.vision_model.",
    "model.vision_tower.",
)
_PROJECTOR = ("multi_modal_projector.", "model.multi_modal_projector.")
_LM_HEAD = ("language_model.lm_head.weight", "lm_head.weight")


@dataclass(frozen=True)
class Gemma3MMNaming:
    text: str  # prefix of the text model's tensors (``<text>layers.0...``)
    vision: str  # prefix of the SigLIP tower's tensors (``<vision>embeddings...``)
    projector: str  # prefix of the multimodal projector's tensors
    lm_head: str  # name of the LM head's weight (absent when tied to the embedding)

    @classmethod
    def of(cls, folder: Path) -> Gemma3MMNaming:
        names = set(safetensors_locations(folder))

        def prefix(candidates: Sequence[str], probe: str, part: str) -> str:
            found = [candidate for candidate in candidates if candidate + probe in names]
            if not found:
                looked = ", ".join(candidate + probe for candidate in candidates)
                raise ValueError(f"Checkpoint in '{folder}' has no Gemma 3 {part} (looked for {looked}).")
            return found[0]

        return cls(
            text=prefix(_TEXT, "embed_tokens.weight", "text model"),
            vision=prefix(_VISION, "embeddings.patch_embedding.weight", "vision tower"),
            projector=prefix(_PROJECTOR, "mm_input_projection_weight", "multimodal projector"),
            lm_head=next((name for name in _LM_HEAD if name in names), _LM_HEAD[-1]),
        )
