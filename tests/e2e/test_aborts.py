"""Clients that hang up: streams closed mid-way and requests closed while still queued.

Afterwards vLLM must hold nothing for them (no running request, no KV blocks in use, none of them counted as
finished on /metrics), and the server must serve a batch as fast as before (within noise) and with the same
greedy text. The throughput tolerance is 0.7x the batch measured before the aborts, best of up to three
attempts: the test machine is shared, and a leak (requests still decoding, blocks still held) would slow
every attempt alike.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import httpx
import pytest
import requests

from tests.e2e.conftest import SERVED_NAME
from tests.e2e.server import metric_total

pytestmark = pytest.mark.server

BATCH_PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "List three prime numbers:",
    "The quick brown fox",
    "Explain photosynthesis in one sentence.",
    "What is the tallest mountain?",
    "Write a haiku about the sea.",
    "The best way to learn to code is",
]
BATCH_TOKENS = 32
THROUGHPUT_TOLERANCE = 0.7
ROUNDS = 2  # each: 8 streams cut mid-way (all of max_num_seqs) + 2 requests cut while queued
STREAMS_PER_ROUND = 8
QUEUED_PER_ROUND = 2
TOKENS_BEFORE_HANGUP = 3


def run_batch(base_url: str) -> tuple[list[str], float]:
    """The batch, all at once; returns the texts and output tokens per second of wall time."""

    def one(prompt: str) -> dict:
        body = {
            "model": SERVED_NAME,
            "prompt": prompt,
            "max_tokens": BATCH_TOKENS,
            "temperature": 0.0,
            "ignore_eos": True,
        }
        response = requests.post(f"{base_url}/v1/completions", json=body, timeout=300)
        assert response.status_code == 200, response.text
        return response.json()

    start = time.perf_counter()
    with ThreadPoolExecutor(len(BATCH_PROMPTS)) as pool:
        results = list(pool.map(one, BATCH_PROMPTS))
    elapsed = time.perf_counter() - start
    tokens = sum(r["usage"]["completion_tokens"] for r in results)
    assert tokens == BATCH_TOKENS * len(BATCH_PROMPTS)
    return [r["choices"][0]["text"] for r in results], tokens / elapsed


def long_stream_body(prompt: str) -> dict:
    return {
        "model": SERVED_NAME,
        "prompt": prompt,
        "max_tokens": 300,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": True,
    }


def stream_then_hang_up(
    base_url: str, prompt: str, ready: threading.Barrier, hang_up: threading.Event
) -> int:
    """Read a few streamed tokens, wait for the signal, then close the connection mid-stream."""
    chunks = 0
    with httpx.Client(timeout=120) as client:
        with client.stream("POST", f"{base_url}/v1/completions", json=long_stream_body(prompt)) as response:
            assert response.status_code == 200
            # next() by hand: leaving a for-loop over iter_lines() closes the generator, and httpx then
            # closes the connection at once, before the other streams are under way.
            lines = response.iter_lines()
            while chunks < TOKENS_BEFORE_HANGUP:
                if next(lines).startswith("data: {"):
                    chunks += 1
            ready.wait(timeout=300)
            hang_up.wait(timeout=300)
    # Leaving both blocks with the body unread closes the TCP connection: vLLM sees a disconnect.
    return chunks


def send_raw_stream(base_url: str, prompt: str) -> socket.socket:
    """Send a streaming request on a bare socket, so that the test decides exactly when it hangs up."""
    url = urlparse(base_url)
    payload = json.dumps(long_stream_body(prompt)).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    sock.sendall(head.encode() + payload)
    return sock


def received_so_far(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except BlockingIOError:
        pass
    return data


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def abort_round(base_url: str) -> None:
    ready = threading.Barrier(STREAMS_PER_ROUND + 1)
    hang_up = threading.Event()
    with ThreadPoolExecutor(STREAMS_PER_ROUND) as pool:
        futures = [
            pool.submit(stream_then_hang_up, base_url, f"Story number {i}: once upon a time", ready, hang_up)
            for i in range(STREAMS_PER_ROUND)
        ]
        try:
            ready.wait(timeout=300)  # every stream has its first tokens and holds a batch slot
            # These queue behind the full batch (max_num_seqs=8), so they have no token yet.
            queued = [send_raw_stream(base_url, f"Queued request {i}") for i in range(QUEUED_PER_ROUND)]
            wait_for(
                lambda: metric_total(base_url, "vllm:num_requests_waiting") >= QUEUED_PER_ROUND,
                60,
                "the extra requests to queue",
            )
            for sock in queued:
                assert b"data: {" not in received_so_far(sock), "a queued request already got a token"
                sock.close()
        finally:
            hang_up.set()
        assert [f.result() for f in futures] == [TOKENS_BEFORE_HANGUP] * STREAMS_PER_ROUND


def test_hung_up_requests_free_everything_and_leave_throughput_and_text_unchanged(plugin_server):
    url = plugin_server.base_url
    texts_before, throughput_before = run_batch(url)
    # vLLM counts finished requests by reason but leaves aborted ones out (its abort count stays 0), so
    # "none of them finished" shows as no change in the total.
    finished_before = metric_total(url, "vllm:request_success_total")

    for _ in range(ROUNDS):
        abort_round(url)

    wait_for(
        lambda: (
            metric_total(url, "vllm:num_requests_running") == 0
            and metric_total(url, "vllm:num_requests_waiting") == 0
            and metric_total(url, "vllm:kv_cache_usage_perc") == 0
        ),
        60,
        "no running or waiting request and no KV block in use",
    )
    assert metric_total(url, "vllm:request_success_total") == finished_before, (
        "a hung-up request ran to its end"
    )

    attempts = []
    for _ in range(3):
        texts_after, throughput_after = run_batch(url)
        assert texts_after == texts_before
        attempts.append(throughput_after)
        if throughput_after >= THROUGHPUT_TOLERANCE * throughput_before:
            break
    print(f"batch throughput: {throughput_before:.1f} tok/s before the aborts, after: {attempts}")
    assert max(attempts) >= THROUGHPUT_TOLERANCE * throughput_before, (
        f"{throughput_before:.1f} tok/s before the aborts, {attempts} after"
    )
