"""What a checkpoint's model takes when this plugin serves it (text; images too), for tt-serve.

tt-serve shows it in a model's entry (the gateway's state API and console). It asks in the backend's own
environment, under the server's variables (``TT_VLLM_DEVICE`` decides the device and so the class), by
calling :func:`model_inputs` through its probe: tt-serve never imports the plugin itself. The answer is
the TT class's own declaration (``contract.takes_images``, ``mm_limits_per_prompt``), so it cannot drift
from what the platform accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tt_vllm_plugin.models import default, registry
from tt_vllm_plugin.models.contract import MM_LIMITS_PER_PROMPT, takes_images


def _architecture(folder: Path) -> str:
    config = folder / "config.json"
    try:
        architectures = json.loads(config.read_text()).get("architectures") or []
    except (OSError, ValueError) as error:
        raise ValueError(f"{config} cannot be read: {error}") from None
    if not architectures:
        raise ValueError(f"{config} names no architectures")
    return str(architectures[0])


def model_inputs(folder: str | None = None) -> dict[str, Any]:
    """``{"architecture", "inputs": ["text"] or ["text", "image"], "max_images_per_prompt"}`` for the model
    in ``folder`` (None: the embedded default model, which may not be converted yet).
    ``max_images_per_prompt`` is the class's limit, None when it sets none (vLLM's default applies)."""
    if folder is None and not (default.default_model_dir() / "config.json").is_file():
        architecture = default.DEFAULT_ARCHITECTURE
    else:
        architecture = _architecture(Path(folder) if folder else default.default_model_dir())
    tt_name = architecture if architecture.startswith("TT") else registry.tt_architecture(architecture)
    model_cls = registry.load_model_class(tt_name)
    if not takes_images(model_cls):
        return {"architecture": architecture, "inputs": ["text"], "max_images_per_prompt": 0}
    limit = (getattr(model_cls, MM_LIMITS_PER_PROMPT, None) or {}).get("image")
    return {
        "architecture": architecture,
        "inputs": ["text", "image"],
        "max_images_per_prompt": None if limit is None else int(limit),
    }
