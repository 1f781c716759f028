"""The session gateway seen as an attacker would: what its engines' environments hold, which paths reach
an engine, and the start-up phases an engine went through (its status file, as /admin/api/state shows it).

Engine secrets in arguments and logs are checked where a model with ``--api-key`` is added
(test_gateway_admin.py: test_add_then_remove_a_model, test_failed_engine_start_changes_nothing_and_says_why).
"""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path

import pytest
import requests

from tests.gateway.conftest import GATEWAY_SECRETS, MODEL_A, MODEL_ENV_SECRET, GatewayHandle

pytestmark = [pytest.mark.engine, pytest.mark.server]
TOKENIZE = 'http_requests_total{handler="/tokenize",method="POST",status="2xx"}'
# Each form reached the engine's root /tokenize (200 with tokens) before the gateway forwarded only its
# own list of routes and refused dot segments: the three, and what an attacker tries next.
DOT_FORMS = [
    "/v1/../tokenize",
    "/v1/%2e%2e/tokenize",
    "/v1/%2E%2E/tokenize",
    "/v1/./../tokenize",
    "/v1/%252e%252e/tokenize",
    "/v1/.%2e/tokenize",
    "/v1/..%2ftokenize",
    "/v1/completions/../../tokenize",
]
NOT_SERVED = ["/v1/tokenize", "/v1/responses", "/v1/embeddings", "/v1/chat/completions/batch"]


def _engine(gateway: GatewayHandle, name: str) -> dict:
    state = requests.get(f"{gateway.base_url}/admin/api/state", timeout=10).json()
    return next(m for m in state["models"] if m["name"] == name)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _group(pgid: int) -> list[int]:
    """The live processes of an engine's process group (API server, engine core, helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except ProcessLookupError:
                pass
    return found


def test_engines_get_no_secret_of_the_gateway(gateway: GatewayHandle) -> None:
    engine = _engine(gateway, MODEL_A)
    env = _environ(engine["pid"])  # the API server the gateway started (the engine core inherits it)
    assert "TT_SERVE_ADMIN_TOKEN" not in env
    assert "TT_SERVE_CONFIG" not in env and "TT_SERVE_GATEWAY" not in env
    assert "TT_TEST_DB_PASSWORD" not in env and "TT_TEST_SERVICE_API_KEY" not in env  # secret names
    assert "TT_TEST_SITE_URL" not in env  # [gateway] engine_env_drop
    assert env["TT_TEST_KEPT_TOKEN"] == GATEWAY_SECRETS["TT_TEST_KEPT_TOKEN"]  # [gateway] engine_env_keep
    assert env["TT_TEST_PLAIN"] == "plain-value"
    assert env[MODEL_ENV_SECRET[0]] == MODEL_ENV_SECRET[1]  # the model's own env table is explicit
    assert env["TT_SERVE_BACKEND"] == "host" and env["TT_VLLM_DEVICE"] == "host"
    assert env["TT_SERVE_STATUS_FILE"] == engine["status_path"]
    # No process of the engine (API server, engine core, resource tracker) holds a gateway secret's value.
    leaked = [
        gateway.admin_token,
        GATEWAY_SECRETS["TT_TEST_DB_PASSWORD"],
        GATEWAY_SECRETS["TT_TEST_SITE_URL"],
    ]
    processes = _group(engine["pid"])
    assert engine["pid"] in processes and len(processes) >= 2
    for pid in processes:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        assert not [value for value in leaked if value in raw], pid


def _tokenize_count(gateway: GatewayHandle) -> float:
    """How many POST /tokenize the engine of smol-a has answered (its own Prometheus counter)."""
    port = _engine(gateway, MODEL_A)["port"]
    for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        if line.startswith(TOKENIZE + " "):
            return float(line.split()[-1])
    return 0.0


def _raw_post(gateway: GatewayHandle, path: str) -> tuple[int, dict]:
    """POST ``path`` exactly as written: http.client neither normalises nor re-encodes it."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    body = json.dumps({"model": MODEL_A, "prompt": "Hello tokens"})
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    status, data = response.status, json.loads(response.read())
    connection.close()
    return status, data


def test_only_the_openai_routes_reach_an_engine(gateway: GatewayHandle) -> None:
    before = _tokenize_count(gateway)
    for path in DOT_FORMS:
        status, data = _raw_post(gateway, path)
        assert status == 400, (path, data)
        assert data["error"]["message"] == (
            f"the path {path!r} has a dot segment ('.' or '..', possibly percent-encoded); the gateway "
            "serves POST /v1/chat/completions, POST /v1/completions and GET /v1/models"
        )
    for path in NOT_SERVED:
        status, data = _raw_post(gateway, path)
        assert status == 404, (path, data)
        assert data["error"]["message"] == (
            f"POST {path} is not served by this gateway; it serves POST /v1/chat/completions, "
            "POST /v1/completions and GET /v1/models"
        )
    assert _raw_post(gateway, "/tokenize")[0] == 404
    assert _raw_post(gateway, "/v1/completions")[0] == 200  # the served route still works
    assert _tokenize_count(gateway) == before  # nothing reached the engine's /tokenize

    # The counter does count: the same request sent to the engine itself is seen.
    port = _engine(gateway, MODEL_A)["port"]
    direct = requests.post(
        f"http://127.0.0.1:{port}/tokenize", json={"model": MODEL_A, "prompt": "x"}, timeout=30
    )
    assert direct.status_code == 200 and direct.json()["tokens"]
    assert _tokenize_count(gateway) == before + 1


def test_admin_routes_refuse_dot_segments_too(gateway: GatewayHandle) -> None:
    response = requests.delete(
        f"{gateway.base_url}/admin/api/models/x/%2e%2e/{MODEL_A}", headers=gateway.auth(), timeout=10
    )
    assert response.status_code == 400
    assert _engine(gateway, MODEL_A)["state"] == "serving"


def test_engine_start_up_phases_come_from_its_status_file(gateway: GatewayHandle) -> None:
    """What the engine really went through: tt-serve's phases, then the plugin worker's, then ready."""
    engine = _engine(gateway, MODEL_A)
    progress = engine["progress"]
    assert [h["phase"] for h in progress["history"]] == [
        "resolving",
        "starting",
        "opening_device",
        "loading_weights",
        "allocating_kv_cache",
        "warming_up",
        "ready",
    ]
    assert progress["phase"] == "ready" and progress["label"] == "ready"
    at = [h["at_s"] for h in progress["history"]]
    assert at == sorted(at) and progress["elapsed_s"] >= at[-1] > 0
    lines = [json.loads(line) for line in Path(engine["status_path"]).read_text().splitlines()]
    assert [line["phase"] for line in lines] == [h["phase"] for h in progress["history"]]
    assert Path(engine["status_path"]).parent == Path(engine["log_path"]).parent  # beside its log


def test_an_admin_body_over_the_request_limit_is_413_and_the_gateway_keeps_serving(
    gateway: GatewayHandle,
) -> None:
    """The admin API reads its bodies with the same bound as the OpenAI routes (gateway.max_request_bytes,
    32 MiB by default): one byte over is refused before the JSON is parsed, and nothing is added."""
    limit = 32 * 2**20
    refused = requests.post(
        f"{gateway.base_url}/admin/api/models",
        data=b" " * (limit + 1),
        headers={"Authorization": f"Bearer {gateway.admin_token}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["message"] == (
        f"the request body is larger than this gateway's limit of {limit} bytes (32 MiB): send less (fewer "
        "or smaller images), or raise gateway.max_request_bytes in the gateway's config file"
    )
    state = requests.get(f"{gateway.base_url}/admin/api/state", timeout=10)
    assert state.status_code == 200
    assert MODEL_A in [m["name"] for m in state.json()["models"]]
