"""Gemma 3's image encoder on the host: the SigLIP vision tower and the multimodal projector.

Both are transformers' own modules (``SiglipVisionModel`` from ``config.vision_config``,
``Gemma3MultiModalProjector``: average pooling to ``mm_tokens_per_image`` tokens, Gemma RMSNorm, projection
to the text width), loaded from the checkpoint: nothing of them needs the paged KV cache, so there is
nothing to write anew. As transformers' ``Gemma3Model.get_image_features``: the tower's
``last_hidden_state`` (its pooling head, when the checkpoint has one, is not used) goes through the
projector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tt_vllm_plugin.models.host.checkpoint import load_tensors, safetensors_locations
from tt_vllm_plugin.models.host.gemma3_mm.weights import Gemma3MMNaming

_UNUSED = "head."  # SigLIP's attention-pooling head: Gemma 3 reads the last hidden state


class Gemma3Vision:
    """``features(pixel_values)``: (images, mm_tokens_per_image, text hidden) for (images, 3, S, S)."""

    def __init__(self, tower: torch.nn.Module, projector: torch.nn.Module, tokens_per_image: int) -> None:
        self.tower = tower
        self.projector = projector
        self.tokens_per_image = tokens_per_image

    @classmethod
    def load(
        cls, config: Any, folder: Path, naming: Gemma3MMNaming, dtype: torch.dtype, device: torch.device
    ) -> Gemma3Vision:
        from transformers import AutoModel
        from transformers.models.gemma3.modeling_gemma3 import Gemma3MultiModalProjector

        tower = AutoModel.from_config(config.vision_config)
        projector = Gemma3MultiModalProjector(config)
        present = set(safetensors_locations(folder))
        for module, prefix in ((tower, naming.vision), (projector, naming.projector)):
            wanted = [
                key
                for key in module.state_dict()
                if not (module is tower and key.startswith(_UNUSED) and prefix + key not in present)
            ]
            tensors = load_tensors(folder, [prefix + key for key in wanted], dtype, device)
            # Every tensor the tower uses is required (load_tensors names any that is missing); only an
            # absent pooling head stays as built.
            module.load_state_dict({key: tensors[prefix + key] for key in wanted}, strict=False)
            module.to(device=device, dtype=dtype).eval()
        return cls(tower, projector, int(config.mm_tokens_per_image))

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            pixel_values = pixel_values.to(self.projector.mm_input_projection_weight.device)
            hidden = self.tower(pixel_values=pixel_values, return_dict=True).last_hidden_state
            return self.projector(hidden)
