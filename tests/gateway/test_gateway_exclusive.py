"""Swaps on a backend that holds an exclusive device (a Tenstorrent card: one engine opens it at a time),
shown with the host backend configured as exclusive (``[backends.host] exclusive_device = true``).

The old engine drains and stops before the new one starts, never both at once; meanwhile the model's
requests get 503 with Retry-After and the progress (or, with ``hold_requests_s``, wait for the new
engine). Under a bounded concurrent load no request fails except those documented 503s, and a client
that honours Retry-After sees none fail. A failed start brings the previous configuration back.

Two gateways of their own (one model each), stopped at the end of this module.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import requests

from tests.gateway.conftest import TT_SERVE, GatewayHandle, gateway_env, stop_gateway

pytestmark = [pytest.mark.engine, pytest.mark.server]
MODEL = "smol-x"
ARGS = ["--max-num-seqs", "4", "--max-model-len", "1024"]
NEW_ARGS = ["--max-num-seqs", "6", "--max-model-len", "1024"]
LOAD_LIMIT_S = 900
RETRIES = 60  # a client honouring Retry-After gives up after this many 503s for one request
EXCLUSIVE_TOML = """\
[backends.host]
exclusive_device = true

[gateway]
port = {{port}}
drain_timeout_s = 30
start_timeout_s = 600
hold_requests_s = {hold}

[[gateway.models]]
name = "smol-x"
model = "smollm2-135m-instruct"
backend = "host"
vllm_args = ["--max-num-seqs", "4", "--max-model-len", "1024"]
tt = {{{{ kv_cache_tokens = 8192 }}}}
"""


@pytest.fixture(scope="module")
def exclusive_gateway(start_gateway) -> Iterator[GatewayHandle]:
    handle = start_gateway(EXCLUSIVE_TOML.format(hold=0), "exclusive-token")
    yield handle
    stop_gateway(handle)


@pytest.fixture(scope="module")
def holding_gateway(start_gateway) -> Iterator[GatewayHandle]:
    handle = start_gateway(EXCLUSIVE_TOML.format(hold=300), "holding-token")
    yield handle
    stop_gateway(handle)


def _entry(gateway: GatewayHandle) -> dict:
    state = requests.get(f"{gateway.base_url}/admin/api/state", timeout=10).json()
    return next(m for m in state["models"] if m["name"] == MODEL)


def _engine_groups() -> set[int]:
    """Process groups holding an engine of MODEL (an engine's API server and engine core share one);
    not tt-serve's short dry run that prepares the next engine (its command names the model too)."""
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"--dry-run" in argv or b"--served-model-name" not in argv:
                continue
            if argv[argv.index(b"--served-model-name") + 1] == MODEL.encode():
                groups.add(os.getpgid(int(entry.name)))
        except (OSError, IndexError):
            continue
    return groups


@dataclass
class Outcome:
    finished: float  # time.monotonic()
    status: int
    engine: str
    retry_after: str | None
    body: dict | None
    retries: int = 0  # 503s a Retry-After-honouring client waited through before this answer


@dataclass
class Load:
    """CLIENTS threads sending completions until stopped: plain ones record every answer; honouring ones
    wait Retry-After on a 503 and send the same request again."""

    gateway: GatewayHandle
    plain: int
    honouring: int
    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _send(self, client: httpx.Client, i: int) -> Outcome:
        body = {"model": MODEL, "prompt": f"Story {i}: once upon a time", "max_tokens": 8, "temperature": 0}
        response = client.post(f"{self.gateway.base_url}/v1/completions", json=body)
        try:
            data = response.json()
        except ValueError:
            data = None
        return Outcome(
            time.monotonic(),
            response.status_code,
            response.headers.get("x-tt-serve-engine", ""),
            response.headers.get("retry-after"),
            data,
        )

    def _client(self, kind: str, worker: int) -> None:
        deadline = time.monotonic() + LOAD_LIMIT_S
        with httpx.Client(timeout=300) as client:
            i = worker
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    outcome = self._send(client, i)
                    if kind == "honouring":
                        retries = 0
                        while outcome.status == 503 and outcome.retry_after and retries < RETRIES:
                            time.sleep(int(outcome.retry_after))
                            retries += 1
                            outcome = self._send(client, i)
                        outcome.retries = retries
                    self.outcomes.append((kind, outcome))
                except Exception as error:  # a dropped connection is a failure too
                    self.errors.append(f"{kind}: {type(error).__name__}: {error}")
                i += self.plain + self.honouring
                time.sleep(0.2)  # bounded: each client sends at most 5 requests a second

    def __enter__(self) -> Load:
        self.threads = [
            threading.Thread(target=self._client, args=(kind, w))
            for w, kind in enumerate(["plain"] * self.plain + ["honouring"] * self.honouring)
        ]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=LOAD_LIMIT_S)


def _watch_engines(stop: threading.Event, seen: list[set[int]]) -> None:
    while not stop.is_set():
        seen.append(_engine_groups())
        time.sleep(0.2)


def test_exclusive_swap_stops_then_starts_and_loses_no_request(exclusive_gateway: GatewayHandle) -> None:
    gateway = exclusive_gateway
    before = _entry(gateway)
    assert before["exclusive_device"] is True and before["state"] == "serving"
    seen: list[set[int]] = []
    watching = threading.Event()
    watcher = threading.Thread(target=_watch_engines, args=(watching, seen))
    watcher.start()
    try:
        with Load(gateway, plain=2, honouring=2) as load:
            time.sleep(3)  # load runs before the swap
            swap = subprocess.run(
                [TT_SERVE, "swap", MODEL, "--gateway", gateway.base_url, "--", *NEW_ARGS],
                env=gateway_env(gateway.admin_token),
                capture_output=True,
                text=True,
                timeout=LOAD_LIMIT_S,
            )
            swapped_at = time.monotonic()
            time.sleep(4)  # a few requests after the swap
    finally:
        watching.set()
        watcher.join()
    assert swap.returncode == 0, swap.stderr

    after = _entry(gateway)
    assert after["generation"] == before["generation"] + 1 and after["engine_args"] == NEW_ARGS
    assert after["state"] == "serving"
    with pytest.raises(ProcessLookupError):
        os.killpg(before["pid"], 0)
    # Never two engines of the model at once (sampled every 0.2 s through the swap).
    assert max(len(groups) for groups in seen) == 1
    assert {before["pid"], after["pid"]} <= set().union(*seen)

    # The swap's own account: stop-then-start, and how long the model had no serving engine.
    line = swap.stdout.strip()
    assert line.startswith(f"tt-serve: {MODEL} now served by generation {after['generation']} ")
    assert "; stop-then-start (exclusive device): " in line and line.endswith(" s without a serving engine")
    downtime = float(line.rsplit(": ", 1)[1].split(" s ")[0])
    events = requests.get(f"{gateway.base_url}/admin/api/events", timeout=10).json()["events"]
    mine = [e for e in events if e["model"] == MODEL and e["t"] >= time.time() - LOAD_LIMIT_S]
    messages = [e["message"] for e in mine]
    stopping = next(i for i, m in enumerate(messages) if m.startswith("swap (exclusive device): stopping"))
    stopped = messages.index(f"generation {before['generation']} stopped", stopping)
    starting = next(
        i for i, m in enumerate(messages) if m.startswith(f"generation {after['generation']}: backend host")
    )
    assert stopping < stopped < starting  # the old engine was gone before the new one was started

    assert load.errors == []
    answers = [o for _, o in load.outcomes]
    unavailable = [o for o in answers if o.status == 503]
    assert all(o.status in (200, 503) for o in answers), [(o.status, o.body) for o in answers]
    assert unavailable, "no request saw the model loading: the swap had no downtime to show"
    for o in unavailable:  # the documented 503: Retry-After and a body that says the model is loading
        assert o.retry_after is not None and 1 <= int(o.retry_after) <= 30
        assert o.body["error"]["type"] == "ServiceUnavailableError"
        assert o.body["error"]["message"].startswith(f"the model `{MODEL}` is loading (generation ")
        assert o.body["progress"]["generation"] == after["generation"]
    waited = [o.body["progress"] for o in unavailable if "waiting_for" in o.body["progress"]]
    phases = {o.body["progress"]["phase"] for o in unavailable}
    honoured = [o for kind, o in load.outcomes if kind == "honouring"]
    assert honoured and all(o.status == 200 for o in honoured)  # honouring Retry-After: none failed
    assert any(o.retries > 0 for o in honoured)
    old_engine = f"{MODEL}/{before['generation']}/{before['pid']}"
    new_engine = f"{MODEL}/{after['generation']}/{after['pid']}"
    assert {o.engine for o in answers if o.status == 200} == {old_engine, new_engine}
    assert all(o.engine == new_engine for o in answers if o.finished > swapped_at and o.status == 200)

    ok_times = sorted(o.finished for o in answers if o.status == 200)
    client_gap = max(b - a for a, b in zip(ok_times, ok_times[1:], strict=False))
    print(
        f"\nexclusive swap: {downtime:.1f} s without a serving engine (gateway), longest gap between two "
        f"answered requests {client_gap:.1f} s (clients); {len(answers)} answers, {len(unavailable)} of "
        f"them 503 + Retry-After (phases seen: {sorted(p for p in phases if p)}; {len(waited)} while the old "
        f"engine drained); {len(honoured)} requests from clients honouring Retry-After, all 200; the new "
        f"engine's phases (s since the swap began): "
        + ", ".join(f"{h['phase']} {h['at_s']}" for h in after["progress"]["history"])
    )
    assert 0 < downtime < client_gap + 5


def test_failed_exclusive_swap_restarts_the_previous_configuration(exclusive_gateway: GatewayHandle) -> None:
    gateway = exclusive_gateway
    before = _entry(gateway)
    response = requests.post(
        f"{gateway.base_url}/admin/api/models/{MODEL}/swap",
        json={"engine_args": ["--max-num-seqs", "4", "--max-model-len", "100000"]},
        headers=gateway.auth(),
        timeout=LOAD_LIMIT_S,
    )
    assert response.status_code == 502, response.text
    message = response.json()["error"]["message"]
    restored = before["generation"] + 2  # the failed replacement took one generation
    assert message.startswith("the engine exited with status ")
    assert message.endswith(
        f"The swap was undone: the previous configuration serves again as generation {restored}."
    )
    after = _entry(gateway)
    assert (after["state"], after["generation"], after["engine_args"]) == (
        "serving",
        restored,
        before["engine_args"],
    )
    completion = requests.post(
        f"{gateway.base_url}/v1/completions",
        json={"model": MODEL, "prompt": "Hi", "max_tokens": 4},
        timeout=300,
    )
    assert completion.status_code == 200
    assert completion.headers["x-tt-serve-engine"] == f"{MODEL}/{restored}/{after['pid']}"
    events = [e for e in requests.get(f"{gateway.base_url}/admin/api/events", timeout=10).json()["events"]]
    messages = [e["message"] for e in events if e["model"] == MODEL]
    assert any(
        m.startswith("swap failed (the engine exited with status ")
        and m.endswith(f"restarting the previous configuration as generation {restored}")
        for m in messages
    )
    assert messages[-1] == f"swap undone: the previous configuration serves again as generation {restored}"


def test_holding_requests_instead_of_503(holding_gateway: GatewayHandle) -> None:
    """With hold_requests_s, the requests that come while the new engine loads wait for it: all 200."""
    gateway = holding_gateway
    before = _entry(gateway)
    with Load(gateway, plain=3, honouring=0) as load:
        time.sleep(3)
        response = requests.post(
            f"{gateway.base_url}/admin/api/models/{MODEL}/swap",
            json={"engine_args": NEW_ARGS},
            headers=gateway.auth(),
            timeout=LOAD_LIMIT_S,
        )
        time.sleep(4)
    assert response.status_code == 200, response.text
    swap = response.json()["swap"]
    assert swap["mode"] == "stop-then-start" and swap["downtime_s"] > 0
    assert load.errors == []
    answers = [o for _, o in load.outcomes]
    assert answers and all(o.status == 200 for o in answers), [(o.status, o.body) for o in answers]
    new_engine = f"{MODEL}/{before['generation'] + 1}/{_entry(gateway)['pid']}"
    assert sum(o.engine == new_engine for o in answers) >= 3  # the held requests were answered by it
    print(
        f"\nhold_requests_s: swap with {swap['downtime_s']:.1f} s downtime; {len(answers)} requests, all 200"
    )
