"""Soak: a plugin OpenAI server under steady mixed load for a bounded time; failures, latency and memory.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate 0.5] [--stream-fraction 0.5]
        [--abort-fraction 0.2] [--max-in-flight 24] [--max-rss-growth-mib 300] [--warmup-seconds 60]
        [--sample-seconds 5] [--max-num-seqs 16] [--kv-cache-tokens 16384] [--dtype float32]
        [--out benchmarks/results/soak.json]

Starts vLLM's OpenAI server with the tt plugin on the host device (TT_VLLM_DEVICE=host, 127.0.0.1, a free
port, the embedded SmolLM2-135M), then for --minutes sends requests as a Poisson process of --rate
requests/s: three sizes (short prompt/16 tokens, medium/64, long ~350-token prompt/128), a --stream-fraction
of them streamed, and --abort-fraction of the streams cut after 1-5 chunks by closing the connection. At
most --max-in-flight requests are outstanding (arrivals wait beyond that; the achieved rate is printed).
Every --sample-seconds it samples the RSS of the API server and all its children (the engine core), with
psutil if installed, else /proc. After the last arrival it waits for the requests in flight (at most 5
minutes), checks that /metrics shows no running request and no KV block in use, stops the server, prints a
table and writes JSON to --out (the server log goes to a temporary folder, whose path is printed).

RSS growth is the last sample minus the first one taken after --warmup-seconds (allocator pools and
caches fill during the first minute). Exit status: 0 when every valid request succeeded, the growth is
at most --max-rss-growth-mib and the engine was idle at the end (no running request, KV usage 0, within
30 s); 1 otherwise; 2 when the server did not start. Nothing but this process's
own server is started or stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

SERVED_NAME = "smollm2-135m-instruct"
PARAGRAPH = (
    "The lighthouse keeper wrote in his log every night about the ships that passed, the weather over "
    "the bay, the colour of the sea at dusk and the birds that rested on the gallery rail. "
)
# (name, prompt, max_tokens): mixed sizes, the long prompt about 350 tokens.
SIZES = [
    ("short", "Write one sentence about the sea.", 16),
    ("medium", PARAGRAPH + "Continue the log for tonight:", 64),
    ("long", PARAGRAPH * 9 + "Summarise the log above:", 128),
]


@dataclass
class Tally:
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    aborted: int = 0
    latencies_s: list[float] = field(default_factory=list)
    ttfts_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the first few, to say what went wrong

    def fail(self, message: str) -> None:
        self.failed += 1
        if len(self.errors) < 10:
            self.errors.append(message[:300])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_rss_bytes(pid: int) -> int:
    """RSS of a process and all its descendants (the engine core is a child of the API server)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _proc_tree_rss(pid: int) -> int:
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(
                int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")
            )
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            pass
    return total


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def one_request(client: httpx.AsyncClient, rng: random.Random, args, tally: Tally) -> None:
    _, prompt, max_tokens = rng.choice(SIZES)
    stream = rng.random() < args.stream_fraction
    abort_after = rng.randint(1, 5) if stream and rng.random() < args.abort_fraction else None
    body = {"model": SERVED_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.7}
    tally.sent += 1
    start = time.perf_counter()
    try:
        if not stream:
            response = await client.post("/v1/completions", json=body)
            if response.status_code != 200:
                return tally.fail(f"{response.status_code}: {response.text}")
            if response.json()["usage"]["completion_tokens"] < 1:
                return tally.fail(f"no tokens: {response.text}")
        else:
            chunks, done = 0, False
            async with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
                if response.status_code != 200:
                    return tally.fail(f"{response.status_code}: {(await response.aread()).decode()}")
                async for line in response.aiter_lines():
                    if line == "data: [DONE]":
                        done = True
                    elif line.startswith("data: {"):
                        chunks += 1
                        if chunks == 1:
                            tally.ttfts_s.append(time.perf_counter() - start)
                        if chunks == abort_after:
                            break  # leaving the block closes the connection mid-stream
            if abort_after is not None and not done:
                tally.aborted += 1
                return
            if not done or chunks < 1:
                return tally.fail(f"stream ended without [DONE] after {chunks} chunks")
    except (httpx.HTTPError, json.JSONDecodeError, KeyError) as exc:
        return tally.fail(f"{type(exc).__name__}: {exc}")
    tally.succeeded += 1
    tally.latencies_s.append(time.perf_counter() - start)


async def sample_rss(pid: int, every_s: float, samples: list[tuple[float, int]], t0: float) -> None:
    while True:
        samples.append((round(time.monotonic() - t0, 1), tree_rss_bytes(pid)))
        await asyncio.sleep(every_s)


async def metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


async def soak(base_url: str, server_pid: int, args) -> dict:
    rng = random.Random(args.seed)
    tally = Tally()
    samples: list[tuple[float, int]] = []
    limits = httpx.Limits(
        max_connections=args.max_in_flight + 4, max_keepalive_connections=args.max_in_flight
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:
        t0 = time.monotonic()
        sampler = asyncio.create_task(sample_rss(server_pid, args.sample_seconds, samples, t0))
        in_flight = asyncio.Semaphore(args.max_in_flight)
        tasks: set[asyncio.Task] = set()

        async def guarded() -> None:
            try:
                await one_request(client, rng, args, tally)
            finally:
                in_flight.release()

        end = t0 + args.minutes * 60
        next_arrival = t0
        while True:
            next_arrival += rng.expovariate(args.rate)
            if next_arrival >= end:
                break
            await asyncio.sleep(max(0.0, next_arrival - time.monotonic()))
            if time.monotonic() >= end:
                break
            try:  # at the in-flight cap, arrivals wait, but never past the end of the run
                await asyncio.wait_for(in_flight.acquire(), timeout=end - time.monotonic())
            except TimeoutError:
                break
            task = asyncio.create_task(guarded())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sending_s = time.monotonic() - t0
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=300)
            for task in pending:
                task.cancel()
                tally.fail("still running 5 minutes after the last arrival")
        # vLLM drops aborted requests at its next step; give it a bounded moment to show an idle engine.
        running = kv_usage = -1.0
        for _ in range(30):
            try:
                running = await metric(client, "vllm:num_requests_running")
                kv_usage = await metric(client, "vllm:kv_cache_usage_perc")
            except httpx.HTTPError:
                running = kv_usage = -1.0  # the server is gone: reported, and the run fails
            if running == 0 and kv_usage == 0:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(args.sample_seconds)  # one last RSS sample with the server idle
        sampler.cancel()
        samples.append((round(time.monotonic() - t0, 1), tree_rss_bytes(server_pid)))

    after_warmup = [rss for t, rss in samples if t >= args.warmup_seconds] or [samples[-1][1]]
    mib = 1024 * 1024
    rss = {
        "start_mib": round(after_warmup[0] / mib, 1),
        "peak_mib": round(max(r for _, r in samples) / mib, 1),
        "end_mib": round(samples[-1][1] / mib, 1),
    }
    rss["growth_mib"] = round(rss["end_mib"] - rss["start_mib"], 1)
    return {
        "tally": tally,
        "sending_s": sending_s,
        "rss": rss,
        "rss_samples": [(t, round(r / mib, 1)) for t, r in samples],
        "idle_after": {"num_requests_running": running, "kv_cache_usage_perc": kv_usage},
    }


def start_server(args, log_path: Path) -> tuple[subprocess.Popen, str]:
    from tt_vllm_plugin.models.default import default_model_path

    port = free_port()
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(default_model_path()), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", args.dtype,
        "--max-model-len", "1024", "--max-num-seqs", str(args.max_num_seqs),
        "--additional-config", json.dumps({"tt": {"kv_cache_tokens": args.kv_cache_tokens}}),
    ]  # fmt: skip
    env = {**os.environ, "VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "host"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(process: subprocess.Popen, base_url: str, timeout_s: float = 300) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def print_table(summary: dict) -> None:
    t, r = summary["requests"], summary["rss"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.0f} ms"

    rows = [
        ("duration (sending)", f"{summary['sending_s']:.0f} s, offered {summary['rate']} req/s, "
         f"achieved {summary['achieved_rate']:.2f} req/s"),
        ("requests sent", t["sent"]),
        ("succeeded", t["succeeded"]),
        ("failed valid requests", t["failed"]),
        ("aborted by the client", t["aborted"]),
        ("latency p50 / p99", f"{ms(summary['latency_p50_s'])} / {ms(summary['latency_p99_s'])}"),
        ("stream TTFT p50 / p99", f"{ms(summary['ttft_p50_s'])} / {ms(summary['ttft_p99_s'])}"),
        ("RSS start / peak / end", f"{r['start_mib']:,.0f} / {r['peak_mib']:,.0f} / {r['end_mib']:,.0f} MiB"),
        ("RSS growth (bound)", f"{r['growth_mib']:+,.0f} MiB (<= {summary['max_rss_growth_mib']} MiB)"),
        ("idle after the run", f"running {summary['idle_after']['num_requests_running']:.0f}, "
         f"KV usage {summary['idle_after']['kv_cache_usage_perc']:.3f}"),
        ("result", "PASS" if summary["passed"] else "FAIL"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for error in t["errors"]:
        print("  error:", error)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to send requests")
    parser.add_argument("--rate", type=float, default=0.5, help="offered requests per second (Poisson)")
    parser.add_argument("--stream-fraction", type=float, default=0.5)
    parser.add_argument("--abort-fraction", type=float, default=0.2, help="fraction of streams cut short")
    parser.add_argument("--max-in-flight", type=int, default=24, help="outstanding requests at most")
    parser.add_argument("--max-rss-growth-mib", type=float, default=300.0, help="fail above this growth")
    parser.add_argument("--warmup-seconds", type=float, default=60.0, help="RSS start is sampled after it")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--kv-cache-tokens", type=int, default=16384)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/soak.json")
    args = parser.parse_args()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = Path(tempfile.mkdtemp(prefix="soak-")) / "server.log"
    process, base_url = start_server(args, log_path)
    try:
        if not wait_healthy(process, base_url):
            print(f"server did not become healthy; see {log_path}", file=sys.stderr)
            return 2
        print(
            f"server {base_url} (pid {process.pid}, log {log_path}) healthy; soaking {args.minutes} min",
            flush=True,
        )
        result = asyncio.run(soak(base_url, process.pid, args))
    finally:
        stop_server(process)

    tally: Tally = result["tally"]
    summary = {
        "minutes": args.minutes,
        "rate": args.rate,
        "achieved_rate": tally.sent / result["sending_s"],
        "sending_s": result["sending_s"],
        "stream_fraction": args.stream_fraction,
        "abort_fraction": args.abort_fraction,
        "max_in_flight": args.max_in_flight,
        "dtype": args.dtype,
        "requests": {k: v for k, v in asdict(tally).items() if k not in ("latencies_s", "ttfts_s")},
        "latency_p50_s": percentile(tally.latencies_s, 50),
        "latency_p99_s": percentile(tally.latencies_s, 99),
        "latency_mean_s": statistics.fmean(tally.latencies_s) if tally.latencies_s else None,
        "ttft_p50_s": percentile(tally.ttfts_s, 50),
        "ttft_p99_s": percentile(tally.ttfts_s, 99),
        "rss": result["rss"],
        "max_rss_growth_mib": args.max_rss_growth_mib,
        "idle_after": result["idle_after"],
        "rss_samples_mib": result["rss_samples"],
    }
    idle = result["idle_after"]
    summary["passed"] = (
        tally.failed == 0
        and result["rss"]["growth_mib"] <= args.max_rss_growth_mib
        and idle["num_requests_running"] == 0
        and idle["kv_cache_usage_perc"] == 0
    )
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print_table(summary)
    print(f"wrote {out}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
