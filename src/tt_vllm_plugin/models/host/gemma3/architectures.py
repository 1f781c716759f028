"""Gemma 3 text on the host device, one class per Hugging Face architecture (the registry names them,
``models/registry.py``)."""

from __future__ import annotations

from tt_vllm_plugin.models.host.gemma3.model import HostGemma3Model


class TTGemma3ForCausalLM(HostGemma3Model):
    """Gemma 3 text-only checkpoints (``Gemma3ForCausalLM``, ``Gemma3TextConfig``: e.g. gemma-3-1b)."""
