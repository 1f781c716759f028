"""Shared set-up for tt-serve's tests: two real installed plugin distributions and a way to run tt-serve.

``fake_forge_site``: the test-fixture ``vllm_tt`` (tests/fixtures/fake_forge_plugin) installed with
``pip install --no-deps --target``. ``ours_site``: this project installed the same way (a snapshot of
the current source), so that its position on PYTHONPATH, relative to the fixture's, can be chosen and
discovery order swapped. Both are built once per session (~2 s each).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "fake_forge_plugin"
TT_SERVE = str(Path(sys.executable).with_name("tt-serve"))
# Variables that change tt-serve's or vLLM's behaviour: tests start from none of them.
_SCRUBBED = (
    "VLLM_PLUGINS",
    "VLLM_TARGET_DEVICE",
    "TT_VLLM_DEVICE",
    "TT_SERVE_CONFIG",
    "PYTHONPATH",
    "FAKE_VLLM_TT_FAIL",
    "VLLM_WORKER_MULTIPROC_METHOD",
)


def _pip_target(source: Path, target: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


@pytest.fixture(scope="session")
def fake_forge_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fake-forge")
    source = work / "src"
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    return _pip_target(source, work / "site")


@pytest.fixture(scope="session")
def ours_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("ours")
    source = work / "src"
    (source / "src").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", source)
    readme = REPO / "README.md"
    (source / "README.md").write_text(readme.read_text() if readme.exists() else "")
    shutil.copytree(
        REPO / "src" / "tt_vllm_plugin",
        source / "src" / "tt_vllm_plugin",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return _pip_target(source, work / "site")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TT_SERVE_CACHE (and TT_VLLM_CACHE) for tt-serve runs: placeholders go here, not in the user's cache."""
    return tmp_path_factory.mktemp("tt-vllm-cache")


def clean_env(cache: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["TT_VLLM_CACHE"] = str(cache)
    env["TT_SERVE_CACHE"] = str(cache / "tt-serve")
    env.update(extra or {})
    return env


def run_tt_serve(
    args: Sequence[str], cache: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it (from a neutral directory: see narrowing.py)."""
    return subprocess.run(
        [TT_SERVE, *args],
        env=clean_env(cache, env),
        cwd=cwd or cache,
        capture_output=True,
        text=True,
        timeout=120,
    )


TTServe = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def tt_serve(cache_dir: Path) -> TTServe:
    """``tt_serve(args, env=None, cwd=None)``: run the console script in a clean environment."""

    def run(args: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None):
        return run_tt_serve(args, cache_dir, env, cwd)

    return run


@pytest.fixture(scope="session")
def make_env(cache_dir: Path) -> Callable[..., dict[str, str]]:
    """``make_env(extra=None)``: the clean environment tt_serve runs under, for other subprocesses."""

    def make(extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return clean_env(cache_dir, extra)

    return make


@pytest.fixture(scope="session")
def general_hook_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test fixture that registers only a vllm.general_plugins entry point, installed in a folder."""
    work = tmp_path_factory.mktemp("general-hook")
    source = work / "src"
    shutil.copytree(
        REPO / "tests" / "fixtures" / "general_plugin",
        source,
        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"),
    )
    return _pip_target(source, work / "site")
