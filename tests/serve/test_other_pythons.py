"""tt-serve on the Pythons a Tenstorrent host has: tt-metal's python_env is 3.10 (Ubuntu 22.04) or 3.12
(Ubuntu 24.04). The probe runs inside backend environments of any of them, and the server is started so
that the working directory is never on its path: -P from 3.11, a bootstrap on 3.10, which lacks -P.
These machines' pyenv holds those interpreters; each test says so when one is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tt_serve.environments import Interpreter, probe
from tt_serve.launch import python_command

PYENV = Path.home() / ".pyenv" / "versions"
REPO = Path(__file__).resolve().parents[2]


def _python(minor: str) -> Path:
    found = sorted(PYENV.glob(f"3.{minor}.*/bin/python"))
    if not found:
        pytest.skip(f"no Python 3.{minor} under {PYENV} on this machine")
    return found[-1]


@pytest.mark.parametrize("minor", ["10", "12", "13"])
def test_the_probe_runs_on_python(minor: str) -> None:
    python = _python(minor)
    report = probe(Interpreter(str(python), "test"), distribution="tt-vllm-plugin")
    assert report.python_version.startswith(f"3.{minor}.")
    assert report.distribution is None and report.vllm is None  # a bare interpreter: nothing installed


@pytest.mark.parametrize("minor", ["10", "12"])
def test_the_server_command_keeps_the_working_directory_off_the_path(minor: str, tmp_path: Path) -> None:
    """A module named like the one being run, planted in the working directory, is not what runs."""
    python = _python(minor)
    real = tmp_path / "site"
    real.mkdir()
    (real / "tt_target_module.py").write_text("import sys\nprint('REAL', sys.argv[1:])\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "tt_target_module.py").write_text("print('PLANTED')\n")
    version = (3, int(minor))
    command = python_command(str(python), version, "tt_target_module")
    assert command[1:3] == (["-c", command[2]] if version < (3, 11) else ["-P", "-m"])
    done = subprocess.run(
        [*command, "--port", "1"],
        cwd=work,
        env={"PYTHONPATH": str(real)},
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (0, "REAL ['--port', '1']\n"), done.stderr


def test_tt_serve_installs_and_runs_in_a_python_3_10_environment(tmp_path: Path) -> None:
    """pip install of the tt-serve folder into an empty 3.10 venv is all it needs (tomli backs tomllib)."""
    python = _python("10")
    venv = tmp_path / "venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(REPO / "tt-serve")], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-3000:]
    config = tmp_path / "c.toml"
    config.write_text(f'[backends.host]\npython = "{sys.executable}"\n')
    done = subprocess.run(
        [str(venv / "bin" / "tt-serve"), "backends", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    host = next(b for b in json.loads(done.stdout)["backends"] if b["name"] == "host")
    assert (host["python"], host["installed"], host["trusted"]) == (sys.executable, True, True)
    assert host["vllm_compatible"] is True
