"""tt-vllm-plugin: the vLLM platform plugin for Tenstorrent hardware (and its host device)."""

from __future__ import annotations


def register() -> str | None:
    """vLLM ``vllm.platform_plugins`` entry point: the platform's qualname, or None to stay inactive."""
    from tt_vllm_plugin.activation import decide_activation
    from tt_vllm_plugin.quiet_exit import install

    install()  # every vLLM process loads the plugin: each exits without Triton's leak report
    return decide_activation()
