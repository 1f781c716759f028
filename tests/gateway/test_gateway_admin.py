"""The admin API of a real gateway: token checks, read-only mode, add/remove, failed swaps change nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.gateway.conftest import MODEL_A, MODEL_B, TT_SERVE, GatewayHandle, gateway_env
from tt_serve.gateway.auth import READ_ONLY_MESSAGE

pytestmark = [pytest.mark.engine, pytest.mark.server]
WRITES = [
    ("POST", "/admin/api/models", {"name": "x", "model": "smollm2-135m-instruct"}),
    ("DELETE", f"/admin/api/models/{MODEL_A}", None),
    ("POST", f"/admin/api/models/{MODEL_A}/swap", {"engine_args": []}),
]


def _state(gateway: GatewayHandle) -> dict:
    return requests.get(f"{gateway.base_url}/admin/api/state", timeout=10).json()


def _model(gateway: GatewayHandle, name: str) -> dict:
    return next(m for m in _state(gateway)["models"] if m["name"] == name)


def _complete(gateway: GatewayHandle, name: str, api_key: str | None = None) -> requests.Response:
    body = {"model": name, "prompt": "Hello", "max_tokens": 4, "temperature": 0}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return requests.post(f"{gateway.base_url}/v1/completions", json=body, headers=headers, timeout=300)


def _shown_anywhere(gateway: GatewayHandle, secret: str) -> list[str]:
    """Where ``secret`` shows: the read API (with and without the admin token), the events, the
    gateway's own log, and tt-serve gateway-status."""
    found = []
    for label, headers in (("state", {}), ("state with the token", gateway.auth())):
        text = requests.get(f"{gateway.base_url}/admin/api/state", headers=headers, timeout=10).text
        if secret in text:
            found.append(label)
    if secret in requests.get(f"{gateway.base_url}/admin/api/events", timeout=10).text:
        found.append("events")
    if secret in gateway.log():
        found.append("gateway log")
    status = subprocess.run(
        [TT_SERVE, "gateway-status", "--gateway", gateway.base_url, "--json"],
        env=gateway_env(gateway.admin_token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if secret in status.stdout + status.stderr:
        found.append("gateway-status")
    return found


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_admin_writes_need_the_token(gateway: GatewayHandle, method: str, path: str, body: dict) -> None:
    url = gateway.base_url + path
    missing = requests.request(method, url, json=body, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "AuthenticationError"
    wrong = requests.request(method, url, json=body, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert wrong.status_code == 403
    assert wrong.json()["error"]["message"] == "wrong admin token"


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_read_only_gateway_refuses_writes(
    read_only_gateway: GatewayHandle, method: str, path: str, body: dict
) -> None:
    for headers in ({}, {"Authorization": "Bearer anything"}):
        response = requests.request(
            method, read_only_gateway.base_url + path, json=body, headers=headers, timeout=10
        )
        assert response.status_code == 403
        assert response.json()["error"]["message"] == READ_ONLY_MESSAGE
    assert _state(read_only_gateway) == {
        "read_only": True,
        "log_tails_shown": False,
        "models": [],
        "swaps_in_progress": [],
        "cards": [],  # this machine has no Tenstorrent card
    }


def test_state_describes_each_engine(gateway: GatewayHandle) -> None:
    state = _state(gateway)
    assert state["read_only"] is False and state["swaps_in_progress"] == []
    a = next(m for m in state["models"] if m["name"] == MODEL_A)
    assert a["model"] == "smollm2-135m-instruct" and a["backend"] == "host"
    assert a["engine_args"] == ["--max-num-seqs", "4", "--max-model-len", "1024"]
    assert (a["state"], a["healthy"], a["last_error"]) == ("serving", True, None)
    assert isinstance(a["pid"], int) and isinstance(a["port"], int) and a["generation"] >= 1
    os.kill(a["pid"], 0)  # a live process of ours
    assert a["port"] != _model(gateway, MODEL_B)["port"]


def test_backends_and_events(gateway: GatewayHandle) -> None:
    backends = requests.get(f"{gateway.base_url}/admin/api/backends", timeout=120).json()
    host = next(b for b in backends["backends"] if b["name"] == "host")
    assert host["installed"] is True and host["distribution"] == "tt-vllm-plugin"
    assert host["vllm"]["version"].startswith("0.32")  # in the host backend's own environment
    events = requests.get(f"{gateway.base_url}/admin/api/events", timeout=10).json()["events"]
    assert any(e["model"] == MODEL_A and e["message"].startswith("generation 1 serving") for e in events)


def test_failed_swap_to_an_uninstalled_backend_changes_nothing(gateway: GatewayHandle) -> None:
    before = _model(gateway, MODEL_A)
    response = requests.post(
        f"{gateway.base_url}/admin/api/models/{MODEL_A}/swap",
        json={"backend": "forge"},
        headers=gateway.auth(),
        timeout=120,
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(
        "Plugin 'forge' (distribution vllm_tt) is not installed in the Python environment of "
    )
    assert _model(gateway, MODEL_A) == before
    assert (
        _complete(gateway, MODEL_A).headers["x-tt-serve-engine"]
        == f"{MODEL_A}/{before['generation']}/{before['pid']}"
    )


def test_swap_command_reports_a_refused_swap(gateway: GatewayHandle) -> None:
    before = _model(gateway, MODEL_A)
    swap = subprocess.run(
        [TT_SERVE, "swap", MODEL_A, "--backend", "forge", "--gateway", gateway.base_url],
        env=gateway_env(gateway.admin_token),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert swap.returncode == 1
    assert swap.stderr.splitlines()[-1].startswith(
        "tt-serve: error: swap refused by the gateway (HTTP 422): Plugin 'forge' (distribution vllm_tt) is "
        "not installed in the Python environment of "
    )
    wrong = subprocess.run(
        [TT_SERVE, "swap", MODEL_A, "--backend", "host", "--gateway", gateway.base_url, "--admin-token", "x"],
        env=gateway_env(None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 1
    assert (
        wrong.stderr.splitlines()[-1]
        == "tt-serve: error: swap refused by the gateway (HTTP 403): wrong admin token"
    )
    assert _model(gateway, MODEL_A) == before


def test_failed_engine_start_changes_nothing_and_says_why(gateway: GatewayHandle) -> None:
    """A replacement whose vLLM server exits at start (a context longer than the model's): 502, its log;
    its secret argument is shown nowhere, not even in the admin's error."""
    before = _model(gateway, MODEL_A)
    secret = "sk-failed-swap-" + os.urandom(6).hex()
    response = requests.post(
        f"{gateway.base_url}/admin/api/models/{MODEL_A}/swap",
        json={"engine_args": ["--max-num-seqs", "4", "--max-model-len", "100000", "--api-key", secret]},
        headers=gateway.auth(),
        timeout=600,
    )
    assert response.status_code == 502, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("the engine exited with status ")
    assert "before it was healthy (log: " in message
    assert "100000" in message  # the tail of the engine's log names the bad value
    assert secret not in response.text
    assert _shown_anywhere(gateway, secret) == []
    after = _model(gateway, MODEL_A)
    assert after == before
    assert _complete(gateway, MODEL_A).status_code == 200
    events = requests.get(f"{gateway.base_url}/admin/api/events", timeout=10).json()["events"]
    assert events[-1]["level"] == "error" and events[-1]["model"] == MODEL_A
    assert "keeps serving" in events[-1]["message"]


def test_bad_admin_requests(gateway: GatewayHandle) -> None:
    auth = gateway.auth()
    base = gateway.base_url
    taken = requests.post(
        f"{base}/admin/api/models", json={"name": MODEL_A, "model": "m"}, headers=auth, timeout=10
    )
    assert taken.status_code == 409
    unknown = requests.post(
        f"{base}/admin/api/models/nope/swap", json={"engine_args": []}, headers=auth, timeout=10
    )
    assert unknown.status_code == 404
    assert requests.delete(f"{base}/admin/api/models/nope", headers=auth, timeout=10).status_code == 404
    host = requests.post(
        f"{base}/admin/api/models/{MODEL_A}/swap",
        json={"engine_args": ["--host", "0.0.0.0"]},
        headers=auth,
        timeout=10,
    )
    assert host.status_code == 422
    assert host.json()["error"]["message"].startswith("--host is set by the gateway")
    key = requests.post(
        f"{base}/admin/api/models/{MODEL_A}/swap", json={"args": []}, headers=auth, timeout=10
    )
    assert key.status_code == 422


def test_add_then_remove_a_model(gateway: GatewayHandle) -> None:
    """A model added with a secret engine argument (vLLM's --api-key): it serves, the key is never shown,
    and the engine checks it itself (the gateway passes the client's Authorization through)."""
    auth = gateway.auth()
    key = "sk-engine-" + os.urandom(6).hex()
    spec = {
        "name": "smol-c",
        "model": "smollm2-135m-instruct",
        "backend": "host",
        "engine_args": ["--max-num-seqs", "2", "--max-model-len", "512", "--api-key", key],
        "tt": {"kv_cache_tokens": 4096},
    }
    added = requests.post(f"{gateway.base_url}/admin/api/models", json=spec, headers=auth, timeout=900)
    assert added.status_code == 201, added.text
    entry = added.json()
    assert (entry["name"], entry["state"], entry["backend"], entry["generation"]) == (
        "smol-c",
        "serving",
        "host",
        1,
    )
    assert entry["engine_args"] == ["--max-num-seqs", "2", "--max-model-len", "512", "--api-key", "***"]
    assert key not in added.text
    listed = requests.get(
        f"{gateway.base_url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30
    ).json()["data"]
    assert {m["id"]: m.get("max_model_len") for m in listed}["smol-c"] == 512
    assert _complete(gateway, "smol-c", api_key=key).status_code == 200
    assert _complete(gateway, "smol-c").status_code == 401  # the engine's own check, passed through
    assert _shown_anywhere(gateway, key) == []
    # A swap that sends the shown "***" back keeps the real key; one with nothing to keep is refused.
    refused = requests.post(
        f"{gateway.base_url}/admin/api/models/smol-c/swap",
        json={"engine_args": ["--hf-token", "***"]},
        headers=auth,
        timeout=30,
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["message"] == (
        "--hf-token is given as '***' (the redacted value) but the model's current engine arguments have "
        "no value to keep for it; give the real value"
    )

    # An engine that dies is reported (state, /health, requests), and removing it cleans up its group.
    os.kill(entry["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _model(gateway, "smol-c")["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.5)
    dead = _model(gateway, "smol-c")
    assert dead["state"] == "failed" and dead["healthy"] is False
    assert dead["last_error"] == f"the engine exited with status -9 (log: {entry['log_path']})"
    assert dead["log_tail"] is None  # the end of an engine's log: only with the admin token
    with_token = next(
        m
        for m in requests.get(f"{gateway.base_url}/admin/api/state", headers=auth, timeout=10).json()[
            "models"
        ]
        if m["name"] == "smol-c"
    )
    assert "Application startup complete" in with_token["log_tail"]
    assert key not in with_token["log_tail"]
    health = requests.get(f"{gateway.base_url}/health", timeout=10)
    assert health.status_code == 503
    assert health.json() == {
        "status": "degraded",
        "models": {MODEL_A: "serving", MODEL_B: "serving", "smol-c": "failed"},
    }
    # Per model, for a load balancer routing by model: the others stay in rotation.
    one = requests.get(f"{gateway.base_url}/health/smol-c", timeout=10)
    assert (one.status_code, one.json()) == (503, {"model": "smol-c", "status": "failed"})
    other = requests.get(f"{gateway.base_url}/health/{MODEL_A}", timeout=10)
    assert (other.status_code, other.json()) == (200, {"model": MODEL_A, "status": "ok"})
    unknown = requests.get(f"{gateway.base_url}/health/no-such-model", timeout=10)
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"model": "no-such-model", "status": "unknown model"},
    )
    refused = _complete(gateway, "smol-c")
    assert refused.status_code == 503
    assert refused.json()["error"]["message"] == (
        f"the model `smol-c` is failed: the engine exited with status -9 (log: {entry['log_path']})"
    )
    assert _shown_anywhere(gateway, key) == []

    removed = requests.delete(f"{gateway.base_url}/admin/api/models/smol-c", headers=auth, timeout=300)
    assert removed.status_code == 200
    assert "smol-c" not in {m["name"] for m in _state(gateway)["models"]}
    assert _complete(gateway, "smol-c").status_code == 404
    with pytest.raises(ProcessLookupError):
        os.killpg(entry["pid"], 0)  # the engine's whole process group (API server, engine core) is gone
    assert requests.get(f"{gateway.base_url}/health", timeout=10).status_code == 200


def test_gateway_status_command(gateway: GatewayHandle) -> None:
    run = [TT_SERVE, "gateway-status", "--gateway", gateway.base_url]
    shown = subprocess.run(
        [*run, "--json"], env=gateway_env(None), capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert [m["name"] for m in json.loads(shown.stdout)["models"]] == [
        m["name"] for m in _state(gateway)["models"]
    ]
    table = subprocess.run(run, env=gateway_env(None), capture_output=True, text=True, timeout=60)
    assert table.stdout.splitlines()[0] == f"gateway {gateway.base_url} (admin enabled)"
    assert any(line.split()[:2] == [MODEL_A, "serving"] for line in table.stdout.splitlines())


def test_console_files_are_served(read_only_gateway: GatewayHandle) -> None:
    base = read_only_gateway.base_url
    page = requests.get(f"{base}/ui", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    static = Path(__file__).resolve().parents[2] / "tt-serve/src/tt_serve/gateway/static"
    assert page.text == (static / "index.html").read_text()
    script = requests.get(f"{base}/ui/static/console.js", timeout=10)
    assert script.status_code == 200 and script.text == (static / "console.js").read_text()
    assert requests.get(f"{base}/ui/static/nope.js", timeout=10).status_code == 404
    assert requests.get(f"{base}/", allow_redirects=False, timeout=10).headers["location"] == "/ui"
