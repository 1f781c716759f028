"""Gemma 3 with images on the host device, under its Hugging Face architecture (``models/registry.py``)."""

from __future__ import annotations

from tt_vllm_plugin.models.host.gemma3_mm.model import HostGemma3MMModel


class TTGemma3ForConditionalGeneration(HostGemma3MMModel):
    """Gemma 3 checkpoints with images (``Gemma3ForConditionalGeneration``: gemma-3-4b and up)."""
