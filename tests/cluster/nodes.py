"""Ray nodes and a cluster-mode gateway on this machine, for the multi-node test (run inside a network
namespace with only loopback: ``unshare -n``). Each node is a ``ray start --block`` process of its own;
stopping a node kills that process and every process below it, by pid (never ``ray stop``, which
stops every Ray process on the machine by name)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVE_BIN = ROOT / ".venv-serve" / "bin"
HOST_PYTHON = ROOT / ".venv" / "bin" / "python"
GCS_PORT = 6379
SERVE_PORT = 8100
GATEWAY_PORT = 8000


def ray_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TT_VISIBLE", "VLLM_", "TT_SERVE"))
    }
    # Ray's memory monitor watches the whole machine's memory: on a machine shared with other work it
    # would kill this cluster's Serve controller for memory others use.
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_DEDUP_LOGS="0", RAY_memory_monitor_refresh_ms="0")
    return env


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Signal ``pid`` and all its descendants (by pid); the pids signalled."""
    pids = descendants(pid)
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    return pids


@dataclass
class Node:
    name: str
    process: subprocess.Popen
    log: Path

    def kill(self) -> list[int]:
        pids = kill_tree(self.process.pid)
        self.process.wait(timeout=30)
        return pids


def start_node(work: Path, name: str, head: bool, ttnpu: int, visible: str | None) -> Node:
    """A Ray node with ``ttnpu`` TTNPU; ``visible``: the TT_VISIBLE_DEVICES it starts with (Ray then
    hands out exactly those card ids on this node)."""
    env = ray_env()
    if visible is not None:
        env["TT_VISIBLE_DEVICES"] = visible
    command = [
        str(SERVE_BIN / "ray"),
        "start",
        "--block",
        "--node-ip-address",
        "127.0.0.1",
        "--resources",
        json.dumps({"TTNPU": ttnpu}) if ttnpu else "{}",
        "--num-cpus",
        "1",
        "--object-store-memory",
        str(200 * 1024 * 1024),  # the replicas pass no objects around
        "--disable-usage-stats",
    ]
    if head:
        command += ["--head", "--port", str(GCS_PORT), "--include-dashboard", "false"]
    else:
        command += ["--address", f"127.0.0.1:{GCS_PORT}"]
    command += ["--temp-dir", str(work / "ray")]  # not /tmp/ray, which other Ray users share
    log = work / f"{name}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return Node(name, process, log)


def live_nodes() -> list[dict]:
    """The cluster's live nodes with their resources (a short-lived Ray driver of its own)."""
    script = (
        f"import json, ray; ray.init(address='127.0.0.1:{GCS_PORT}', log_to_driver=False); "
        "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']} for n in ray.nodes() "
        "if n['Alive']]))"
    )
    done = subprocess.run(
        [str(SERVE_BIN / "python"), "-c", script], capture_output=True, text=True, env=ray_env()
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return []


def start_and_join(work: Path, name: str, head: bool, ttnpu: int, visible: str | None, count: int) -> Node:
    """Start a node and wait until the cluster has ``count`` live nodes; on a loaded machine a raylet
    can miss Ray's fixed 30 s registration window and its ``ray start`` exits: start it again (3 tries)."""
    for attempt in range(3):
        node = start_node(work, name if not attempt else f"{name}-try{attempt + 1}", head, ttnpu, visible)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and node.process.poll() is None:
            if len(live_nodes()) >= count:
                return node
            time.sleep(2)
        node.kill()
    raise TimeoutError(f"Ray node {name} did not join in 3 tries (logs in {work})")


def wait_nodes(count: int, timeout: float = 300) -> list[dict]:
    """Until the cluster has ``count`` live nodes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = live_nodes()
        if len(alive) >= count:
            return alive
        time.sleep(2)
    raise TimeoutError(f"the Ray cluster did not reach {count} live nodes in {timeout} s")


GATEWAY_TOML = """\
[backends.host]
python = "{python}"

[gateway]
port = {port}
start_timeout_s = 900
drain_timeout_s = 10

[gateway.cluster]
address = "127.0.0.1:{gcs}"
serve_port = {serve}
"""

MODEL_TOML = """
[[gateway.models]]
name = "{name}"
model = "smollm2-135m-instruct"
backend = "host"
cards = 1
vllm_args = ["--max-num-seqs", "4", "--max-model-len", "512"]
tt = {{ kv_cache_tokens = 4096 }}
env = {{ OMP_NUM_THREADS = "1" }}
"""


def start_gateway(work: Path, models: list[str], token: str) -> tuple[subprocess.Popen, Path]:
    config = work / "gateway.toml"
    text = GATEWAY_TOML.format(python=HOST_PYTHON, port=GATEWAY_PORT, gcs=GCS_PORT, serve=SERVE_PORT)
    config.write_text(text + "".join(MODEL_TOML.format(name=m) for m in models))
    env = ray_env()
    env["TT_SERVE_ADMIN_TOKEN"] = token
    log = work / "gateway.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(SERVE_BIN / "tt-serve"), "gateway", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
            start_new_session=True,
        )
    return process, log


def stop_gateway(process: subprocess.Popen, timeout: float = 120) -> None:
    """SIGTERM (the gateway deletes its Serve applications), then SIGKILL whatever is left below it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    kill_tree(process.pid)
