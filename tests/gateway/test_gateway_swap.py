"""Hot swap under load: `tt-serve swap` changes smol-b's engine arguments while clients keep sending
requests; none fails, and once the swap returns every request is served by the new engine."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest
import requests

from tests.gateway.conftest import MODEL_B, TT_SERVE, GatewayHandle, gateway_env
from tests.gateway.load import ClientLoad

pytestmark = [pytest.mark.engine, pytest.mark.server]
CLIENTS = 3
LOAD_LIMIT_S = 900  # bound on the load loop, whatever happens to the swap
NEW_ARGS = ["--max-num-seqs", "6", "--max-model-len", "1536"]


def _state(gateway: GatewayHandle) -> dict:
    return requests.get(f"{gateway.base_url}/admin/api/state", timeout=10).json()


def _one_request(client: httpx.Client, base_url: str, i: int) -> tuple[int, str, bool]:
    """A completion, streamed on odd turns; (status, engine header, stream ended with [DONE])."""
    body = {"model": MODEL_B, "prompt": f"Story {i}: once upon a time", "max_tokens": 12, "temperature": 0}
    if i % 2:
        with client.stream("POST", f"{base_url}/v1/completions", json={**body, "stream": True}) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
            return (
                response.status_code,
                response.headers.get("x-tt-serve-engine", ""),
                lines[-1:] == ["data: [DONE]"],
            )
    response = client.post(f"{base_url}/v1/completions", json=body)
    ok = response.status_code == 200 and len(response.json()["choices"][0]["text"]) > 0
    return response.status_code, response.headers.get("x-tt-serve-engine", ""), ok


def test_swap_under_load_loses_no_request(gateway: GatewayHandle) -> None:
    before = next(m for m in _state(gateway)["models"] if m["name"] == MODEL_B)
    seen_during_swap: list[dict] = []
    with ClientLoad(
        lambda client, i: _one_request(client, gateway.base_url, i), CLIENTS, LOAD_LIMIT_S
    ) as load:
        time.sleep(3)  # load is running before the swap starts
        swap = subprocess.Popen(
            [TT_SERVE, "swap", MODEL_B, "--gateway", gateway.base_url, "--", *NEW_ARGS],
            env=gateway_env(gateway.admin_token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        poll_deadline = time.monotonic() + LOAD_LIMIT_S
        while swap.poll() is None and time.monotonic() < poll_deadline:
            seen_during_swap.append(_state(gateway))
            time.sleep(2)
        out, err = swap.communicate(timeout=60)
        swapped_at = time.monotonic()
        time.sleep(4)  # a few requests after the swap
    results = [(t, *result) for t, result in load.results]  # (finished at, status, engine, complete)
    assert swap.returncode == 0, f"{out}\n{err}"

    after = next(m for m in _state(gateway)["models"] if m["name"] == MODEL_B)
    assert after["generation"] > before["generation"] and after["pid"] != before["pid"]
    assert after["engine_args"] == NEW_ARGS and after["state"] == "serving"
    assert out.strip().startswith(f"tt-serve: {MODEL_B} now served by generation {after['generation']}")
    with pytest.raises(ProcessLookupError):
        os.kill(before["pid"], 0)  # the old engine was stopped after its drain

    assert load.errors == []
    assert results and all(status == 200 and complete for _, status, _, complete in results), results
    old_engine = f"{MODEL_B}/{before['generation']}/{before['pid']}"
    new_engine = f"{MODEL_B}/{after['generation']}/{after['pid']}"
    engines = [engine for _, _, engine, _ in results]
    assert old_engine in engines and new_engine in engines  # load ran across the switch
    assert set(engines) == {old_engine, new_engine}
    assert all(engine == new_engine for t, _, engine, _ in results if t > swapped_at)
    assert any(t > swapped_at for t, _, _, _ in results)

    # While the replacement started, the old engine kept serving and the swap was visible.
    during = [s for s in seen_during_swap if MODEL_B in s["swaps_in_progress"]]
    assert during, "the swap was never seen in progress"
    assert all(
        next(m for m in s["models"] if m["name"] == MODEL_B)["generation"] == before["generation"]
        for s in during[:1]
    )
    print(
        f"swap under load: {len(results)} requests by {CLIENTS} clients, "
        f"{engines.count(old_engine)} on the old engine, {engines.count(new_engine)} on the new, 0 failed"
    )
    listed = {m["id"]: m for m in requests.get(f"{gateway.base_url}/v1/models", timeout=30).json()["data"]}
    assert listed[MODEL_B]["max_model_len"] == 1536
