"""The multi-node scenario, run inside a network namespace with only loopback (``unshare -n``): a Ray head
without cards (Serve's controller and proxy, and the gateway beside it) and two nodes with one ``TTNPU``
each (started with TT_VISIBLE_DEVICES 0 and 1), the embedded model on the host backend.

    python -m tests.cluster.scenario WORK_DIR RESULTS_JSON

Records what it saw (status codes, headers, messages, which node and card each replica has) and the
times it measured into RESULTS_JSON; tests/cluster/test_cluster.py asserts on them. Everything it starts
is stopped by pid before it exits, whatever happens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import httpx

from tests.cluster import nodes as N

TOKEN = "cluster-token"
GATEWAY = f"http://127.0.0.1:{N.GATEWAY_PORT}"
SERVE = f"http://127.0.0.1:{N.SERVE_PORT}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"prompt": "The cluster", "max_tokens": 4, "temperature": 0}
ARGS_B2 = ["--max-num-seqs", "6", "--max-model-len", "512"]


def complete(client: httpx.Client, model: str) -> httpx.Response:
    return client.post(f"{GATEWAY}/v1/completions", json={"model": model, **BODY}, timeout=300)


def state(client: httpx.Client) -> dict[str, Any]:
    return client.get(f"{GATEWAY}/admin/api/state", timeout=30).json()


def entry(client: httpx.Client, name: str) -> dict[str, Any] | None:
    return next((m for m in state(client)["models"] if m["name"] == name), None)


def wait_until(what: str, check, timeout: float = 900, every: float = 0.5) -> float:
    """Poll ``check()`` until true; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(every)
    raise TimeoutError(f"{what}: not after {timeout} s")


def where(client: httpx.Client, name: str) -> dict[str, Any]:
    return client.get(f"{SERVE}/m/{name}/_replica", timeout=30).json()


class Clients:
    """``n`` clients sending completions for ``models`` until stopped, honouring 503 + Retry-After (wait
    that long, send again, at most ``retries`` times per request); anything else is a failure."""

    def __init__(self, models: list[str], n: int = 3, retries: int = 200) -> None:
        self.models, self.retries = models, retries
        self.ok = 0
        self.retried: list[int] = []  # the Retry-After values honoured
        self.failures: list[str] = []
        self.replicas: dict[str, int] = {}  # x-tt-serve-replica -> requests it answered
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(n)]

    def _loop(self, worker: int) -> None:
        with httpx.Client() as client:
            i = worker
            while not self._stop.is_set():
                model = self.models[i % len(self.models)]
                i += 1
                for _ in range(self.retries):
                    try:
                        answer = complete(client, model)
                    except httpx.HTTPError as error:
                        self.failures.append(f"{model}: {type(error).__name__}: {error}")
                        break
                    if answer.status_code == 503 and "Retry-After" in answer.headers:
                        self.retried.append(int(answer.headers["Retry-After"]))
                        time.sleep(int(answer.headers["Retry-After"]))
                        continue
                    if answer.status_code == 200:
                        self.ok += 1
                        tag = answer.headers.get("x-tt-serve-replica", "?")
                        self.replicas[tag] = self.replicas.get(tag, 0) + 1
                    else:
                        self.failures.append(f"{model}: HTTP {answer.status_code}: {answer.text[:300]}")
                    break

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=400)

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "retries_honoured": len(self.retried),
            "failures": self.failures,
            "replicas": self.replicas,
        }


def run(work: Path, results: dict[str, Any]) -> None:
    measured = results["measured"]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # /proc/net/dev is this network namespace's (/sys/class/net shows the namespace /sys was mounted in)
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    results["interfaces"] = sorted(line.split(":")[0].strip() for line in lines)
    started = time.monotonic()
    nodes = results["_nodes"]
    nodes["head"] = N.start_and_join(work, "head", True, 0, None, 1)
    nodes["node-1"] = N.start_and_join(work, "node-1", False, 1, "0", 2)
    nodes["node-2"] = N.start_and_join(work, "node-2", False, 1, "1", 3)
    node_ids = {n["id"]: n["resources"].get("TTNPU", 0) for n in N.wait_nodes(3)}
    measured["ray_nodes_up_s"] = round(time.monotonic() - started, 1)
    results["ray_nodes"] = node_ids

    gateway_started = time.monotonic()
    results["_gateway"] = N.start_gateway(work, ["smol-a", "smol-b"], TOKEN)[0]
    client = httpx.Client()
    measured["time_to_place_s"] = round(
        wait_until("a and b serving", lambda: client.get(f"{GATEWAY}/health", timeout=10).status_code == 200),
        1,
    )
    results["gateway_up_to_serving_s"] = round(time.monotonic() - gateway_started, 1)
    results["placed"] = {m: where(client, m) for m in ("smol-a", "smol-b")}
    results["first_answers"] = {m: complete(client, m).status_code for m in ("smol-a", "smol-b")}
    results["models_listed"] = sorted(m["id"] for m in client.get(f"{GATEWAY}/v1/models").json()["data"])

    # A swap under load (rolling redeploy, stop-then-start on b's card).
    with Clients(["smol-a", "smol-b"]) as load:
        time.sleep(3)
        swap = client.post(
            f"{GATEWAY}/admin/api/models/smol-b/swap",
            json={"engine_args": ARGS_B2},
            headers=AUTH,
            timeout=1200,
        )
        time.sleep(3)
    results["swap"] = {"status": swap.status_code, "answer": swap.json().get("swap"), "load": load.summary()}
    measured["swap_downtime_s"] = round((swap.json().get("swap") or {}).get("downtime_s", -1), 1)
    results["placed_after_swap"] = where(client, "smol-b")

    # A third model while no card is free: 503 + Retry-After until a removal frees one.
    added: dict[str, Any] = {}

    def add() -> None:
        body = {
            "name": "smol-c",
            "model": "smollm2-135m-instruct",
            "backend": "host",
            "cards": 1,
            "engine_args": ["--max-num-seqs", "4", "--max-model-len", "512"],
            "tt": {"kv_cache_tokens": 4096},  # as the configured models: a small KV pool on a shared host
        }
        with httpx.Client() as own:
            answer = own.post(f"{GATEWAY}/admin/api/models", json=body, headers=AUTH, timeout=1200)
            added.update(status=answer.status_code, body=answer.json())

    adding = threading.Thread(target=add)
    adding.start()
    wait_until("c listed", lambda: entry(client, "smol-c") is not None, timeout=60)
    time.sleep(8)  # Ray has tried to place it by now
    waiting = complete(client, "smol-c")
    results["c_while_no_card"] = {
        "status": waiting.status_code,
        "retry_after": waiting.headers.get("Retry-After"),
        "message": waiting.json()["error"]["message"],
        "state": entry(client, "smol-c")["state"],
    }
    removed = client.delete(f"{GATEWAY}/admin/api/models/smol-a", headers=AUTH, timeout=300)
    results["a_removed"] = removed.status_code
    measured["time_to_place_after_a_card_frees_s"] = round(
        wait_until("c serving", lambda: (entry(client, "smol-c") or {}).get("state") == "serving"), 1
    )
    adding.join(timeout=600)
    results["c_added"] = added.get("status")
    results["placed_c"] = where(client, "smol-c")

    # Kill the node holding b's replica, by pid: b turns to 503 + Retry-After, c keeps serving.
    b_node = results["placed_after_swap"]["node_id"]
    results["b_node_is"] = None
    victim = None
    for name in ("node-1", "node-2"):
        card = "0" if name == "node-1" else "1"
        if results["placed_after_swap"]["TT_VISIBLE_DEVICES"] == card:
            victim, results["b_node_is"] = name, name
    assert victim is not None, f"b's replica is on no card node: {b_node}"
    killed_at = time.monotonic()
    results["killed_pids"] = len(nodes[victim].kill())
    seen_b: list[int] = []
    seen_c: list[int] = []
    b_503: dict[str, Any] = {}

    def b_is_503() -> bool:
        answer_c = complete(client, "smol-c")
        seen_c.append(answer_c.status_code)
        answer_b = complete(client, "smol-b")
        seen_b.append(answer_b.status_code)
        if answer_b.status_code == 503 and "Retry-After" in answer_b.headers:
            b_503.update(
                retry_after=answer_b.headers["Retry-After"], message=answer_b.json()["error"]["message"]
            )
            return True
        return False

    measured["node_kill_to_503_s"] = round(wait_until("b 503", b_is_503, timeout=300, every=1), 1)
    for _ in range(5):  # b stays 503 (no free card anywhere), c keeps answering
        seen_c.append(complete(client, "smol-c").status_code)
        seen_b.append(complete(client, "smol-b").status_code)
        time.sleep(1)
    results["after_kill"] = {"b": seen_b, "c": seen_c, "b_503": b_503}

    # The node comes back: Ray places b's replica on it again.
    restarted_at = time.monotonic()
    nodes[victim] = N.start_and_join(work, f"{victim}-again", False, 1, "0" if victim == "node-1" else "1", 3)
    wait_until("b serving again", lambda: complete(client, "smol-b").status_code == 200, timeout=900, every=2)
    measured["time_to_recover_after_node_restart_s"] = round(time.monotonic() - restarted_at, 1)
    measured["node_kill_to_serving_again_s"] = round(time.monotonic() - killed_at, 1)

    # Two replicas of one model under load: Ray Serve's router spreads the requests over both.
    client.delete(f"{GATEWAY}/admin/api/models/smol-b", headers=AUTH, timeout=300)
    scaled_at = time.monotonic()
    scaled = client.post(
        f"{GATEWAY}/admin/api/models/smol-c/swap", json={"replicas": 2}, headers=AUTH, timeout=1200
    )
    measured["second_replica_s"] = round(time.monotonic() - scaled_at, 1)
    with Clients(["smol-c"], n=4) as load:
        time.sleep(20)
    results["two_replicas"] = {"status": scaled.status_code, "load": load.summary()}
    results["health"] = client.get(f"{GATEWAY}/health").json()
    results["metrics_models"] = sorted(client.get(f"{GATEWAY}/admin/api/metrics").json()["models"])


def main() -> int:
    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    results: dict[str, Any] = {"measured": {}, "_nodes": {}, "_gateway": None}
    try:
        run(work, results)
        results["completed"] = True
    except Exception:
        results["error"] = traceback.format_exc()
    finally:
        if results["_gateway"] is not None:
            N.stop_gateway(results["_gateway"])
        for node in reversed(list(results["_nodes"].values())):  # the head last
            node.kill()
        results.pop("_gateway")
        results.pop("_nodes")
        out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
