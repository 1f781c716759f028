"""Start-up races: a model removed (or swapped) while its first engine starts leaves no engine running,
and an engine whose port was taken between the gateway's pick and its bind starts on another port.

What a loading model shows meanwhile (issue 18, progress): /health (503 with the phase), its requests
(503, Retry-After and the progress) and ``tt-serve gateway-status``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.gateway.conftest import TT_SERVE, GatewayHandle, gateway_env, stop_gateway
from tt_serve.gateway.engine import free_port
from tt_serve.gateway.manager import Manager
from tt_serve.gateway.settings import GatewaySettings, ModelSpec

pytestmark = [pytest.mark.engine, pytest.mark.server]
ENGINE_PHASES = ("opening_device", "loading_weights", "allocating_kv_cache", "warming_up")
SMALL = {
    "model": "smollm2-135m-instruct",
    "backend": "host",
    "engine_args": ["--max-num-seqs", "2", "--max-model-len", "512"],
    "tt": {"kv_cache_tokens": 4096},
}
INITIAL_TOML = """\
[gateway]
port = {port}
start_timeout_s = 600

[[gateway.models]]
name = "smol-i"
model = "smollm2-135m-instruct"
backend = "host"
vllm_args = ["--max-num-seqs", "2", "--max-model-len", "512"]
tt = {{ kv_cache_tokens = 4096 }}
"""


def _entry(gateway: GatewayHandle, name: str) -> dict | None:
    state = requests.get(f"{gateway.base_url}/admin/api/state", timeout=10).json()
    return next((m for m in state["models"] if m["name"] == name), None)


def _wait_for(gateway: GatewayHandle, name: str, ready, timeout: float = 300) -> dict:
    """Poll the state (every 50 ms) until ``ready(entry)``; the entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = _entry(gateway, name)
        if entry is not None and ready(entry):
            return entry
        time.sleep(0.05)
    raise TimeoutError(f"{name} never reached the awaited state; last: {_entry(gateway, name)}")


def _engine_processes(name: str) -> list[int]:
    """Every live process started for gateway model ``name`` (its engines are named after it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--served-model-name" in argv and argv[argv.index(b"--served-model-name") + 1 :][:1] == [
            name.encode()
        ]:
            found.append(int(entry.name))
    return found


class _Add(threading.Thread):
    """POST /admin/api/models in the background (it returns only once the engine serves or fails)."""

    def __init__(self, gateway: GatewayHandle, name: str) -> None:
        super().__init__()
        self.gateway, self.name = gateway, name
        self.response: requests.Response | None = None

    def run(self) -> None:
        self.response = requests.post(
            f"{self.gateway.base_url}/admin/api/models",
            json={"name": self.name, **SMALL},
            headers=self.gateway.auth(),
            timeout=900,
        )


def _remove(gateway: GatewayHandle, name: str) -> requests.Response:
    return requests.delete(f"{gateway.base_url}/admin/api/models/{name}", headers=gateway.auth(), timeout=300)


def _assert_no_engine_for(name: str, settle_s: float) -> None:
    """None now, and none after the time a start that had not noticed the removal would take to spawn."""
    assert _engine_processes(name) == []
    time.sleep(settle_s)
    assert _engine_processes(name) == []


def test_removing_a_model_while_it_is_resolved_leaves_no_engine(gateway: GatewayHandle) -> None:
    name = "smol-r1"
    adding = _Add(gateway, name)
    adding.start()
    entry = _wait_for(gateway, name, lambda m: m["progress"]["phase"] == "resolving")
    assert entry["state"] == "starting" and entry["pid"] is None
    removed = _remove(gateway, name)
    assert removed.status_code == 200 and removed.json() == {"removed": name}
    adding.join(timeout=300)
    assert adding.response is not None and adding.response.status_code == 409
    assert adding.response.json()["error"]["message"] == (
        f"model {name!r} was removed while its engine was starting"
    )
    assert _entry(gateway, name) is None
    _assert_no_engine_for(name, settle_s=8)  # preparation takes a few seconds; a leaked spawn follows it
    events = requests.get(f"{gateway.base_url}/admin/api/events", timeout=10).json()["events"]
    mine = [e["message"] for e in events if e["model"] == name]
    assert mine[-2:] == ["removing generation 1 while it starts", "generation 1 stopped before it served"]


def test_a_loading_model_shows_its_progress_and_removing_it_stops_its_engine(gateway: GatewayHandle) -> None:
    name = "smol-r2"
    adding = _Add(gateway, name)
    adding.start()
    entry = _wait_for(
        gateway, name, lambda m: m["pid"] is not None and m["progress"]["phase"] in ENGINE_PHASES
    )
    pid = entry["pid"]
    assert _engine_processes(name) == [pid]

    # While it loads: /health is 503 and says how far it is, its requests get 503 + Retry-After + progress,
    # a swap is refused (it would race the start), and gateway-status prints the phase.
    health = requests.get(f"{gateway.base_url}/health", timeout=10)
    assert health.status_code == 503
    loading = health.json()["loading"][name]
    assert loading["generation"] == 1 and loading["phase"] in ("starting", *ENGINE_PHASES, "ready")
    assert [h["phase"] for h in loading["history"]][:2] == ["resolving", "starting"]
    one = requests.get(f"{gateway.base_url}/health/{name}", timeout=10)
    assert one.status_code == 503 and one.json()["loading"]["generation"] == 1
    request = requests.post(
        f"{gateway.base_url}/v1/completions",
        json={"model": name, "prompt": "Hi", "max_tokens": 2},
        timeout=30,
    )
    if request.status_code == 503:  # (a fast start may already be over)
        assert 1 <= int(request.headers["Retry-After"]) <= 30
        body = request.json()
        assert body["error"]["type"] == "ServiceUnavailableError"
        assert body["error"]["message"].startswith(f"the model `{name}` is loading (generation 1: ")
        assert body["error"]["message"].endswith(f"retry after {request.headers['Retry-After']} s")
        assert body["progress"]["generation"] == 1 and body["progress"]["phase"]
    swap = requests.post(
        f"{gateway.base_url}/admin/api/models/{name}/swap",
        json={"engine_args": []},
        headers=gateway.auth(),
        timeout=30,
    )
    assert swap.status_code == 409
    assert swap.json()["error"]["message"] == (
        f"model {name!r} is busy: it is being added; wait until it serves (or fails), or remove it"
    )
    status = subprocess.run(
        [TT_SERVE, "gateway-status", "--gateway", gateway.base_url],
        env=gateway_env(None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = status.stdout.splitlines()
    if _entry(gateway, name)["state"] == "starting":
        row = next(i for i, line in enumerate(lines) if line.split()[:2] == [name, "starting"])
        assert lines[row + 1].startswith("    loading: generation 1: ")
        assert "s since start" in lines[row + 1]

    removed = _remove(gateway, name)
    assert removed.status_code == 200
    adding.join(timeout=300)
    assert adding.response is not None and adding.response.status_code in (409, 201)
    if adding.response.status_code == 201:  # it became ready just before the removal: an ordinary removal
        assert adding.response.json()["pid"] == pid
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the engine's whole process group is gone
    _assert_no_engine_for(name, settle_s=2)


def test_removing_a_configured_model_while_it_starts_leaves_no_engine(start_gateway) -> None:
    """A model of the config file, removed while the gateway's own start of it is under way."""
    handle = start_gateway(INITIAL_TOML, "initial-token", timeout=120, wait=False)
    try:
        entry = _wait_for(handle, "smol-i", lambda m: True)
        assert entry["state"] == "starting"
        removed = _remove(handle, "smol-i")
        assert removed.status_code == 200, removed.text
        assert _entry(handle, "smol-i") is None
        _assert_no_engine_for("smol-i", settle_s=8)
        assert requests.get(f"{handle.base_url}/health", timeout=10).json() == {"status": "ok", "models": {}}
    finally:
        stop_gateway(handle)


def test_a_port_taken_before_the_engine_binds_it_is_picked_again(tmp_path: Path) -> None:
    """The gateway's own Manager, in this process, whose first port pick is a port someone holds."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    taken = held.getsockname()[1]
    picks = [taken]

    def pick() -> int:
        return picks.pop() if picks else free_port()

    async def run() -> tuple[dict, list[str], str]:
        manager = Manager(GatewaySettings(start_timeout_s=600), None, tmp_path, pick_port=pick)
        spec = ModelSpec("smol-p", SMALL["model"], "host", tuple(SMALL["engine_args"]), SMALL["tt"])
        try:
            engine = await manager.add(spec)
            health = await manager.client.get(f"{engine.base_url}/health")
            assert health.status_code == 200
            return engine.as_dict(), [e["message"] for e in manager.events.as_list()], engine.log_tail(10**6)
        finally:
            await manager.close()

    try:
        entry, events, log = asyncio.run(run())
    finally:
        held.close()
    assert entry["state"] == "serving" and entry["port"] != taken
    assert "Address already in use" in log
    retried = (
        f"generation 1: port {taken} was taken before the engine could bind it; starting again on another"
    )
    assert f"{retried} port" in events
    starts = [h for h in entry["progress"]["history"] if h["phase"] == "starting"]
    assert [h["label"] for h in starts] == [
        f"starting the server process (127.0.0.1:{taken})",
        f"starting the server process (127.0.0.1:{entry['port']}; port retry 1)",
    ]
