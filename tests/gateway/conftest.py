"""Fixtures for the tt-serve gateway's tests: ONE real gateway per session, shared by every test file.

For other test files (e.g. test_console_browser.py), the fixtures to use are:

``gateway`` (session scope) -> :class:`GatewayHandle` with ``base_url`` (``http://127.0.0.1:PORT``),
``admin_token`` (str), ``config_path`` (the gateway's TOML file), ``log_path`` and ``log()``. The
gateway is started with ``tt-serve gateway --config FILE --port PORT`` (token from
``TT_SERVE_ADMIN_TOKEN``) and serves two models, both the embedded SmolLM2 on the ``host`` backend
with different engine arguments: ``MODEL_A`` ("smol-a", max_model_len 1024) and ``MODEL_B``
("smol-b", max_model_len 2048). The swap tests change smol-b's engine arguments during the session, so
only rely on smol-b's *name*; smol-a is never swapped or removed.

The session gateway's environment also holds test secrets (:data:`GATEWAY_SECRETS`) and its config
an ``engine_env_drop`` / ``engine_env_keep`` rule and a model ``env`` table, so that
test_gateway_security.py can read what reached an engine's /proc/<pid>/environ.

``start_gateway(template, token, timeout=..., extra_env=None, wait=True)`` starts another gateway from a
TOML template (``{port}`` is filled in); with ``wait=False`` it returns as soon as the gateway answers,
while its engines may still be starting. ``stop_gateway(handle)`` stops one before the session ends.

``read_only_gateway`` (session scope) -> :class:`GatewayHandle` for a gateway with no models and no
admin token (``admin_token`` is None): starts in a second, no engine.

Both gateways listen on 127.0.0.1 only and are stopped (with their engines) at the end of the session.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.e2e.server import free_port

TT_SERVE = str(Path(sys.executable).with_name("tt-serve"))
MODEL_A = "smol-a"
MODEL_B = "smol-b"
MAX_LEN = {MODEL_A: 1024, MODEL_B: 2048}  # the per-engine marker: each engine reports its max_model_len
START_TIMEOUT_S = 900  # two engines on a busy 2-core machine
# Variables that change tt-serve's or vLLM's behaviour: the gateway starts from none of them.
# PYTHONPATH passes: run from a git worktree with PYTHONPATH naming its sources, the gateway and its
# engines run that worktree's code (tt-serve's narrowing puts its own folder first either way).
_SCRUBBED = (
    "VLLM_PLUGINS",
    "VLLM_TARGET_DEVICE",
    "TT_VLLM_DEVICE",
    "TT_SERVE_CONFIG",
    "TT_SERVE_ADMIN_TOKEN",
    "FAKE_VLLM_TT_FAIL",
    "VLLM_WORKER_MULTIPROC_METHOD",
)

# In the session gateway's environment: what must not reach an engine, and what must.
GATEWAY_SECRETS = {
    "TT_TEST_DB_PASSWORD": "pw-must-not-reach-engines",
    "TT_TEST_SERVICE_API_KEY": "key-must-not-reach-engines",
    "TT_TEST_SITE_URL": "http://dropped-by-engine-env-drop",  # not secret-named: dropped by the glob
    "TT_TEST_KEPT_TOKEN": "kept-by-engine-env-keep",
    "TT_TEST_PLAIN": "plain-value",
}
MODEL_ENV_SECRET = ("TT_TEST_MODEL_API_KEY", "named-in-the-model-env-table")

GATEWAY_TOML = """\
[gateway]
host = "127.0.0.1"
port = {port}
drain_timeout_s = 30
start_timeout_s = 600
engine_env_drop = ["TT_TEST_SITE_*"]
engine_env_keep = ["HF_TOKEN", "TT_TEST_KEPT_TOKEN"]

[[gateway.models]]
name = "smol-a"
model = "smollm2-135m-instruct"
backend = "host"
vllm_args = ["--max-num-seqs", "4", "--max-model-len", "1024"]
tt = {{ kv_cache_tokens = 8192 }}
env = {{ TT_TEST_MODEL_API_KEY = "named-in-the-model-env-table" }}

[[gateway.models]]
name = "smol-b"
model = "smollm2-135m-instruct"
backend = "host"
vllm_args = ["--max-num-seqs", "8", "--max-model-len", "2048"]
tt = {{ kv_cache_tokens = 8192 }}
"""

EMPTY_TOML = """\
[gateway]
port = {port}
"""


@dataclass(frozen=True)
class GatewayHandle:
    base_url: str
    admin_token: str | None
    config_path: Path
    log_path: Path
    process: subprocess.Popen

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def auth(self) -> dict[str, str]:
        """The admin header (empty for a read-only gateway)."""
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}


def gateway_env(token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(extra or {})
    if token:
        env["TT_SERVE_ADMIN_TOKEN"] = token
    return env


def stop_gateway(handle: GatewayHandle) -> None:
    _stop(handle.process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM lets the gateway stop its engines; SIGKILL on the group only if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory: pytest.TempPathFactory):
    """``start_gateway(toml_template, token, timeout)`` -> GatewayHandle, healthy; stopped at session end."""
    started: list[subprocess.Popen] = []

    def start(
        template: str,
        token: str | None,
        timeout: float = START_TIMEOUT_S,
        extra_env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> GatewayHandle:
        work = tmp_path_factory.mktemp("gateway")
        port = free_port()
        config = work / "gateway.toml"
        config.write_text(template.format(port=port))
        log_path = work / "gateway.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [TT_SERVE, "gateway", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=gateway_env(token, extra_env),
                cwd=work,
                start_new_session=True,  # its own group: a hung gateway and its engines die together
            )
        started.append(process)
        handle = GatewayHandle(f"http://127.0.0.1:{port}", token, config, log_path, process)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited with {process.returncode}:\n{handle.log()[-6000:]}")
            try:
                health = requests.get(f"{handle.base_url}/health", timeout=5)
                if health.status_code == 200 or not wait:
                    return handle
                if "failed" in health.json()["models"].values():  # an engine could not start: say why now
                    raise RuntimeError(f"a gateway model failed to start:\n{handle.log()[-6000:]}")
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway not healthy after {timeout} s:\n{handle.log()[-6000:]}")
            time.sleep(2)

    yield start
    for process in started:
        _stop(process)


@pytest.fixture(scope="session")
def gateway(start_gateway) -> Iterator[GatewayHandle]:
    yield start_gateway(GATEWAY_TOML, secrets.token_urlsafe(24), extra_env=GATEWAY_SECRETS)


@pytest.fixture(scope="session")
def read_only_gateway(start_gateway) -> Iterator[GatewayHandle]:
    yield start_gateway(EMPTY_TOML, None, timeout=120)
