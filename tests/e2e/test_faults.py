"""A model error inside a step (TT_VLLM_FAULT_INJECT): what the client, /health, the log and tt-serve see.

vLLM 0.32 turns an exception in ``execute_model`` into a dead engine: the request in flight gets an
HTTP 500, the API server shuts down (status 0), and the log carries the cause. tt-serve learns of the
engine failure from the plugin (TT_VLLM_ENGINE_FAILURE_FILE) and, with ``--restart on-failure``, starts
a new server, which then serves normally.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.server import free_port, vllm_api_server_command

pytestmark = pytest.mark.server

SERVED_NAME = "smollm2-135m-instruct"
TT_OPTIONS = json.dumps({"tt": {"kv_cache_tokens": 8192}})
SMALL = ("--max-model-len", "512", "--max-num-seqs", "4", "--additional-config", TT_OPTIONS)
STARTUP_S = 420
TT_SERVE = str(Path(sys.executable).with_name("tt-serve"))
# Variables that would change which plugin tt-serve's server picks (tests/conftest.py sets some).
_SCRUBBED = ("VLLM_PLUGINS", "VLLM_TARGET_DEVICE", "TT_VLLM_DEVICE", "TT_SERVE_CONFIG", "PYTHONPATH")


def _health(base_url: str) -> int:
    try:
        return requests.get(f"{base_url}/health", timeout=5).status_code
    except requests.RequestException:
        return 0


def _wait_healthy(base_url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while _health(base_url) != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"not healthy (status {process.poll()}):\n{log.read_text(errors='replace')[-6000:]}")
        time.sleep(1)


def _complete(base_url: str, prompt: str, max_tokens: int) -> requests.Response:
    body = {"model": SERVED_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0}
    return requests.post(f"{base_url}/v1/completions", json=body, timeout=180)


def _wait_for(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-6000:]
            pytest.fail(f"{text!r} not in the log after {timeout} s:\n{tail}")
        time.sleep(0.5)


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def test_fault_fails_the_request_and_the_server_stops_with_the_cause_logged(default_model_path, tmp_path):
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    failure_file = tmp_path / "engine-failure"
    env = {
        **os.environ,
        "VLLM_PLUGINS": "tt",
        "TT_VLLM_DEVICE": "host",
        "TT_VLLM_FAULT_INJECT": "step=3",
        "TT_VLLM_ENGINE_FAILURE_FILE": str(failure_file),
    }
    command = vllm_api_server_command(default_model_path, port, "--served-model-name", SERVED_NAME, *SMALL)
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_healthy(base_url, server, log)
        started = time.monotonic()
        response = _complete(base_url, "The capital of France is", max_tokens=8)  # steps 1..8: dies in 3
        assert response.status_code == 500
        assert response.json()["error"]["message"] == (
            "EngineCore encountered an issue. See stack trace (above) for the root cause."
        )
        assert time.monotonic() - started < 60  # an error, not a hang
        assert _health(base_url) != 200  # 503 while shutting down, then nothing listens
        status = server.wait(timeout=60)  # the API server stops by itself
    finally:
        _stop(server)
    text = log.read_text(errors="replace")
    assert status == 0  # vLLM 0.32's choice; hence the failure file for supervisors
    assert "EngineCore encountered a fatal error." in text
    fault = "InjectedFault: injected fault in model step 3 (TT_VLLM_FAULT_INJECT=step=3,mode=raise)"
    assert fault in text
    assert failure_file.read_text() == fault + "\n"


def test_tt_serve_restarts_a_failed_server_which_then_serves(tmp_path):
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "tt-serve.log"
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["TT_VLLM_FAULT_INJECT"] = "step=2,attempt=1"  # only the first life of the server fails
    command = [
        TT_SERVE,
        "serve",
        SERVED_NAME,
        "--backend",
        "host",
        "--restart",
        "on-failure",
        "--max-restarts",
        "2",
        "--port",
        str(port),
        *SMALL,
    ]
    with open(log, "w") as out:
        tt_serve = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        _wait_healthy(base_url, tt_serve, log)
        assert _complete(base_url, "The capital of France is", max_tokens=4).status_code == 500
        _wait_for(
            log,
            "tt-serve: server exited with status 0 although nobody asked it to stop; restarting in 1 s "
            "(attempt 1 of 2)",
            120,
        )
        _wait_healthy(base_url, tt_serve, log)
        again = _complete(base_url, "The capital of France is", max_tokens=3)
        assert again.status_code == 200
        assert again.json()["choices"][0]["text"] == " Paris.\n"
    finally:
        status = _stop(tt_serve)
    text = log.read_text(errors="replace")
    assert status == 0, text[-6000:]  # stopped by a signal: the server's own status, no restart
    assert (
        "tt-serve: the server's engine failed: InjectedFault: injected fault in model step 2 "
        "(TT_VLLM_FAULT_INJECT=step=2,mode=raise,attempt=1)"
    ) in text
    assert text.count("restarting in") == 1
    assert "giving up" not in text


def _engine_core(api_server_pid: int) -> int:
    """The engine core process vLLM's API server started (its process title is VLLM::EngineCore)."""
    import psutil

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in psutil.Process(api_server_pid).children(recursive=True):
            try:
                if "EngineCore" in child.name() or "EngineCore" in " ".join(child.cmdline()):
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.5)
    raise AssertionError(f"no engine core under the API server {api_server_pid}")


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _api_server(tt_serve_pid: int) -> int:
    import psutil

    (child,) = psutil.Process(tt_serve_pid).children()
    return child.pid


def test_tt_serve_restarts_after_real_sigkills_of_engine_core_and_api_server(tmp_path):
    """What the OOM killer does: SIGKILL the engine core (vLLM's API server then exits 0 and nobody
    reports anything), then SIGKILL the API server itself. Both times tt-serve serves again after its
    back-off with no manual step: any exit it did not ask for is a failure."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "tt-serve.log"
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    command = [TT_SERVE, "serve", SERVED_NAME, "--backend", "host", "--restart", "on-failure"]
    command += ["--max-restarts", "3", "--port", str(port), *SMALL]
    with open(log, "w") as out:
        tt_serve = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        _wait_healthy(base_url, tt_serve, log)
        first_api_server = _api_server(tt_serve.pid)
        os.kill(_engine_core(first_api_server), signal.SIGKILL)
        _wait_for(
            log,
            "tt-serve: server exited with status 0 although nobody asked it to stop; restarting in 1 s "
            "(attempt 1 of 3)",
            120,
        )
        _wait_healthy(base_url, tt_serve, log)
        assert _complete(base_url, "The capital of France is", max_tokens=3).json()["choices"][0]["text"] == (
            " Paris.\n"
        )
        second_api_server = _api_server(tt_serve.pid)
        assert second_api_server != first_api_server
        second_engine_core = _engine_core(second_api_server)
        os.kill(second_api_server, signal.SIGKILL)
        _wait_for(log, "tt-serve: server exited with status 137; restarting in 2 s (attempt 2 of 3)", 60)
        _wait_healthy(base_url, tt_serve, log)
        # The orphaned engine core of the killed API server was swept before the new server started.
        assert not _alive(second_engine_core)
        assert _complete(base_url, "The capital of France is", max_tokens=3).status_code == 200
    finally:
        status = _stop(tt_serve)
    text = log.read_text(errors="replace")
    assert status == 0, text[-6000:]
    # A graceful stop ends quietly: Triton's nanobind leak report is switched off (quiet_exit.py).
    assert "Application shutdown complete." in text and "nanobind: leaked" not in text
