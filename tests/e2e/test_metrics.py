"""The plugin's tt_vllm_* metrics in vLLM's own /metrics, next to vLLM's, from a plain vLLM API server.

The runner counts in the engine-core process; /metrics is served by the API-server process. These
tests read what a Prometheus scrape sees and check it against the requests sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import free_port, running_server, vllm_api_server_command

pytestmark = pytest.mark.server

SERVED_NAME = "smollm2-135m-instruct"
KV_TOKENS = 8192
BLOCK_SIZE = 16  # the host device's block size
USABLE_BLOCKS = KV_TOKENS // BLOCK_SIZE - 1  # vLLM keeps one block as its null block
LABELS = {"backend": "host", "device": "host"}
TT_SERIES = (
    "tt_vllm_prefill_model_seconds_count",
    "tt_vllm_decode_model_seconds_count",
    "tt_vllm_decode_wait_seconds_count",  # the host models decode asynchronously
    "tt_vllm_step_host_overhead_seconds_count",
    "tt_vllm_prefill_rows_count",
    "tt_vllm_decode_rows_count",
    "tt_vllm_steps_total",
)


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-tmp")  # TMPDIR of the server: where its metrics directory goes


@pytest.fixture(scope="module")
def server(default_model_path, tmp_path_factory, tmp_dir):
    port = free_port()
    command = vllm_api_server_command(
        default_model_path,
        port,
        "--served-model-name",
        SERVED_NAME,
        "--max-model-len",
        "512",
        "--max-num-seqs",
        "4",
        "--additional-config",
        json.dumps({"tt": {"kv_cache_tokens": KV_TOKENS}}),
    )
    env = {"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "host", "TT_SERVE_BACKEND": "host", "TMPDIR": str(tmp_dir)}
    log_path = tmp_path_factory.mktemp("metrics-server") / "server.log"
    with running_server(command, log_path, port, env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused")


def scrape(server) -> dict[tuple[str, frozenset], float]:
    """Every sample on /metrics, keyed by (name, labels)."""
    response = requests.get(f"{server.base_url}/metrics", timeout=10)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def tt(samples, name: str, **extra: str) -> float:
    return samples[(name, frozenset({**LABELS, **extra}.items()))]


def vllm_gauge(samples, name: str) -> float:
    values = [value for (n, _), value in samples.items() if n == name]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def test_series_exist_with_backend_and_device_labels(server):
    samples = scrape(server)
    for name in TT_SERIES:
        assert tt(samples, name) >= 0
    assert tt(samples, "tt_vllm_sampling_steps_total", sampler="host") >= 0
    assert tt(samples, "tt_vllm_sampling_steps_total", sampler="device") == 0
    assert tt(samples, "tt_vllm_kv_cache_blocks", state="free") == USABLE_BLOCKS
    assert tt(samples, "tt_vllm_kv_cache_blocks", state="used") == 0


def test_counts_match_the_requests_and_vllm_metrics_still_work(server, client):
    before = scrape(server)
    requests_sent, max_tokens = 3, 5
    for i in range(requests_sent):  # one at a time: each step then holds exactly one request
        response = client.completions.create(
            model=SERVED_NAME,
            prompt=f"Count to {i + 3}:",
            max_tokens=max_tokens,
            temperature=0.0,
            extra_body={"ignore_eos": True},
        )
        assert response.usage.completion_tokens == max_tokens
    after = scrape(server)

    def delta(name: str, **extra: str) -> float:
        return tt(after, name, **extra) - tt(before, name, **extra)

    # The first token comes from the prefill step, every other one from its own decode step.
    assert delta("tt_vllm_prefill_rows_sum") == requests_sent
    assert delta("tt_vllm_prefill_model_seconds_count") == requests_sent
    assert delta("tt_vllm_decode_rows_sum") == requests_sent * (max_tokens - 1)
    assert delta("tt_vllm_decode_model_seconds_count") == requests_sent * (max_tokens - 1)
    # The host models declare supports_async_decode: every decode's output is waited for once.
    assert delta("tt_vllm_decode_wait_seconds_count") == requests_sent * (max_tokens - 1)
    steps = requests_sent * max_tokens
    assert delta("tt_vllm_steps_total") == steps
    assert delta("tt_vllm_sampling_steps_total", sampler="host") == steps
    assert delta("tt_vllm_sampling_steps_total", sampler="device") == 0
    assert delta("tt_vllm_step_host_overhead_seconds_count") == steps
    # Plausible times: model calls take real time, the runner's own share per step is small.
    assert delta("tt_vllm_prefill_model_seconds_sum") > 0
    assert delta("tt_vllm_decode_model_seconds_sum") > 0
    assert 0 < delta("tt_vllm_step_host_overhead_seconds_sum") / steps < 0.5
    # Single-row steps land in the first rows bucket (le="1").
    assert delta("tt_vllm_decode_rows_bucket", le="1.0") == requests_sent * (max_tokens - 1)

    # vLLM's own metrics, served by the same endpoint, saw the same requests.
    def vllm_delta(name: str) -> float:  # summed over vLLM's own labels (e.g. finished_reason)
        return sum(v for (n, _), v in after.items() if n == name) - sum(
            v for (n, _), v in before.items() if n == name
        )

    assert vllm_delta("vllm:generation_tokens_total") == requests_sent * max_tokens
    assert vllm_delta("vllm:request_success_total") == requests_sent


def test_kv_blocks_and_running_requests_rise_while_serving_and_return_to_zero(server, client):
    stream = client.completions.create(
        model=SERVED_NAME,
        prompt="Write a long story about a dragon. " * 4,
        max_tokens=120,
        temperature=0.0,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    chunks = iter(stream)
    for _ in range(5):  # the request is running once tokens arrive
        next(chunks)
    busy = scrape(server)
    rest = sum(1 for _ in chunks)  # then let it finish

    used = tt(busy, "tt_vllm_kv_cache_blocks", state="used")
    assert used >= 3  # a prompt of ~40 tokens plus output: at least 3 blocks of 16
    assert used + tt(busy, "tt_vllm_kv_cache_blocks", state="free") == USABLE_BLOCKS
    assert vllm_gauge(busy, "vllm:num_requests_running") == 1
    assert vllm_gauge(busy, "vllm:kv_cache_usage_perc") > 0
    assert rest > 0

    # The engine tells the runner a request finished in the step after its last token: poll briefly.
    for _ in range(40):
        idle = scrape(server)
        if tt(idle, "tt_vllm_kv_cache_blocks", state="used") == 0:
            break
        time.sleep(0.25)
    assert tt(idle, "tt_vllm_kv_cache_blocks", state="used") == 0
    assert tt(idle, "tt_vllm_kv_cache_blocks", state="free") == USABLE_BLOCKS
    assert vllm_gauge(idle, "vllm:num_requests_running") == 0
    assert vllm_gauge(idle, "vllm:kv_cache_usage_perc") == 0


def test_metrics_directory_lives_with_the_server_and_is_removed_after(server, tmp_dir):
    directories = list(tmp_dir.glob("tt-vllm-metrics-*"))
    assert len(directories) == 1, directories
    assert list(directories[0].glob("*.db")), "the engine core wrote no metric files"
    server.process.terminate()  # the module's last test: stop the server here to see its clean-up
    assert server.process.wait(timeout=60) == 0
    assert list(tmp_dir.glob("tt-vllm-metrics-*")) == []
