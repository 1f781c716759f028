"""End to end: ``tt-serve serve smollm2-135m-instruct --backend host`` answers a chat request.

Marked ``server`` (slow: two processes import vLLM, ~30-60 s on 2 cores); deselect with -m "not server".
Skips, saying why, while the platform does not import yet.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

TT_SERVE = str(Path(sys.executable).with_name("tt-serve"))
STARTUP_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _platform_import_error(make_env) -> str | None:
    done = subprocess.run(
        [sys.executable, "-c", "import tt_vllm_plugin.platform, tt_vllm_plugin.worker.worker"],
        env=make_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["(no output)"])[-1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


@pytest.mark.server
def test_serve_default_model_on_host_answers_chat(make_env, tmp_path: Path) -> None:
    why = _platform_import_error(make_env)
    if why is not None:
        pytest.skip(f"tt_vllm_plugin's platform/worker do not import yet: {why}")
    port = _free_port()
    # The user's cache, not a temporary one: the embedded model is converted once and reused.
    env = {k: v for k, v in make_env().items() if k != "TT_VLLM_CACHE"}
    log = (tmp_path / "server.log").open("w+")
    server = subprocess.Popen(
        [
            TT_SERVE,
            "serve",
            "smollm2-135m-instruct",
            "--backend",
            "host",
            "--port",
            str(port),
            "--max-model-len",
            "512",
        ],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while _get(f"http://127.0.0.1:{port}/health") != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"server did not become healthy (status {server.poll()}):\n{log.read()[-6000:]}")
            time.sleep(1)
        body = json.dumps(
            {
                "model": "smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "max_tokens": 16,
                "temperature": 0,
            }
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
        assert answer["model"] == "smollm2-135m-instruct"
        text = answer["choices"][0]["message"]["content"]
        assert text.strip(), answer
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)  # forwarded to vLLM, which shuts down gracefully
        status = server.wait(timeout=120)
        log.seek(0)
        output = log.read()
    assert status == 0, output[-6000:]
    assert "tt-serve: backend host, command line: --backend host" in output
