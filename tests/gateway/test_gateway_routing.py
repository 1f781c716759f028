"""The OpenAI front of a real gateway: routing by ``model``, unbuffered streaming, /v1/models, /health."""

from __future__ import annotations

import time

import httpx
import pytest
import requests

from tests.gateway.conftest import MAX_LEN, MODEL_A, MODEL_B, GatewayHandle

pytestmark = [pytest.mark.engine, pytest.mark.server]
PROMPT = "The capital of France is"


def _engines(gateway: GatewayHandle) -> dict[str, dict]:
    state = requests.get(f"{gateway.base_url}/admin/api/state", timeout=10).json()
    return {m["name"]: m for m in state["models"]}


def _stable(entry: dict) -> dict:
    """A /v1/models entry without what vLLM makes up per request (creation time, permission ids)."""
    return {k: v for k, v in entry.items() if k not in ("created", "permission")}


def test_models_are_aggregated_from_the_engines(gateway: GatewayHandle) -> None:
    listed = requests.get(f"{gateway.base_url}/v1/models", timeout=30).json()
    by_id = {m["id"]: m for m in listed["data"]}
    assert {MODEL_A, MODEL_B} <= set(by_id)
    engines = _engines(gateway)
    for name in (MODEL_A, MODEL_B):
        # The entry is the engine's own: the same as asking that engine directly, on its own port.
        direct = requests.get(f"http://127.0.0.1:{engines[name]['port']}/v1/models", timeout=30).json()
        assert [_stable(m) for m in direct["data"]] == [_stable(by_id[name])]
    assert by_id[MODEL_A]["max_model_len"] == MAX_LEN[MODEL_A]


def test_requests_go_to_the_engine_of_their_model(gateway: GatewayHandle) -> None:
    engines = _engines(gateway)
    for name in (MODEL_A, MODEL_B):
        body = {"model": name, "prompt": PROMPT, "max_tokens": 8, "temperature": 0}
        via = requests.post(f"{gateway.base_url}/v1/completions", json=body, timeout=300)
        assert via.status_code == 200, via.text
        assert (
            via.headers["x-tt-serve-engine"] == f"{name}/{engines[name]['generation']}/{engines[name]['pid']}"
        )
        direct = requests.post(
            f"http://127.0.0.1:{engines[name]['port']}/v1/completions", json=body, timeout=300
        )
        assert via.json()["model"] == name
        assert via.json()["choices"][0]["text"] == direct.json()["choices"][0]["text"]  # greedy: identical
    # The engines differ in max_model_len: 1100 tokens fit smol-b's context but not smol-a's.
    long_body = {"prompt": PROMPT, "max_tokens": 1100, "temperature": 0}
    refused = requests.post(
        f"{gateway.base_url}/v1/completions", json={**long_body, "model": MODEL_A}, timeout=60
    )
    assert refused.status_code == 400
    assert "1024" in refused.json()["error"]["message"]  # smol-a's engine names its own limit


def test_chat_streaming_arrives_incrementally(gateway: GatewayHandle) -> None:
    body = {
        "model": MODEL_A,
        "messages": [{"role": "user", "content": "Count from one to twenty in words."}],
        "max_tokens": 40,
        "temperature": 0,
        "stream": True,
    }
    arrivals: list[tuple[float, str]] = []
    start = time.monotonic()
    with httpx.stream("POST", f"{gateway.base_url}/v1/chat/completions", json=body, timeout=300) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - start, line))
    assert arrivals[-1][1] == "data: [DONE]"
    times = [t for t, _ in arrivals]
    assert len(arrivals) >= 10
    assert len(set(round(t, 3) for t in times)) >= 5  # not one burst
    # The first token reached the client long before the last: nothing buffered the stream.
    assert times[0] < times[-1] - 0.5 * (times[-1] - times[0]) and times[-1] - times[0] > 0.3


def test_unknown_model_is_an_openai_404(gateway: GatewayHandle) -> None:
    response = requests.post(
        f"{gateway.base_url}/v1/completions", json={"model": "nope", "prompt": "x"}, timeout=10
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("NotFoundError", 404)
    assert error["message"].startswith("The model `nope` does not exist. Models served here: ")
    assert MODEL_A in error["message"]
    missing = requests.post(f"{gateway.base_url}/v1/completions", json={"prompt": "x"}, timeout=10)
    assert missing.status_code == 400


def test_health_reports_every_model(gateway: GatewayHandle) -> None:
    response = requests.get(f"{gateway.base_url}/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["models"][MODEL_A] == "serving" and body["models"][MODEL_B] == "serving"


def test_metrics_are_sampled_from_the_engines(gateway: GatewayHandle) -> None:
    """After the requests above, the sampler has seen output tokens on smol-a (bounded wait)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        series = requests.get(f"{gateway.base_url}/admin/api/metrics", timeout=10).json()["models"][MODEL_A]
        if len(series["t"]) >= 2:
            break
        time.sleep(1)
    assert len(series["t"]) >= 2
    assert all(0.0 <= u <= 1.0 for u in series["kv_cache_usage"] if u is not None)
    assert series["t"] == sorted(series["t"])
    assert any(v is not None for v in series["request_rate"])


def test_a_client_that_leaves_mid_stream_releases_its_engine(gateway: GatewayHandle) -> None:
    """The in-flight count (what a swap's drain waits for) goes back to zero when a client hangs up."""
    body = {"model": MODEL_A, "prompt": PROMPT, "max_tokens": 200, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{gateway.base_url}/v1/completions", json=body, timeout=300) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        assert _engines(gateway)[MODEL_A]["inflight"] == 1
    deadline = time.monotonic() + 30
    while _engines(gateway)[MODEL_A]["inflight"] != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _engines(gateway)[MODEL_A]["inflight"] == 0
