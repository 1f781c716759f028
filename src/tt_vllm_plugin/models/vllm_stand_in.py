"""The class vLLM's ``ModelRegistry`` holds for every architecture the tt platform serves.

vLLM inspects the class registered for a checkpoint's architecture while it builds its ``ModelConfig``
(text generation or pooling? multimodal? hybrid?), before the platform gets to rewrite the architecture
to its TT name. A TT contract class is not a vLLM model, and vLLM refuses a checkpoint whose
architecture resolves to one: with vLLM 0.32, registering ``LlamaForCausalLM`` to the host Llama class
gave ``This model does not support `--runner generate`.`` That is what a bare-name override
(``TT_MODEL_CLASS_OVERRIDES``) or a TT name in ``--hf-overrides '{"architectures": [...]}'`` needs, so vLLM
is shown this plain text-generation model instead. vLLM never builds it: the TT runner loads the real
class from ``models/registry.py``.
"""

from __future__ import annotations

from typing import Any, NoReturn

import torch
from torch import nn


def _never(what: str) -> NoReturn:
    raise RuntimeError(
        f"TTModelForVllm.{what}: vLLM tried to run the tt platform's stand-in model; the TT runner serves "
        "this architecture (is the tt platform active?)."
    )


class TTModelForVllm(nn.Module):
    """vLLM's view of a TT model: a text-generation model, not multimodal, not hybrid."""

    def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
        _never("__init__")

    def embed_input_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        _never("embed_input_ids")

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        _never("forward")

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        _never("compute_logits")
