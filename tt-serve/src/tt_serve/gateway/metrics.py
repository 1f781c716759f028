"""What the console plots: each engine's Prometheus ``/metrics`` reduced to one sample every ~2 s.

An engine's counters only grow (until it is replaced), so rates come from the difference between two
scrapes of the SAME engine; TTFT quantiles come from the difference of the
``vllm:time_to_first_token_seconds`` histogram's cumulative buckets over that interval (the requests
whose first token came in the interval), interpolated within a bucket as Prometheus'
``histogram_quantile`` does. A sample with no new first token has null quantiles.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "vllm:request_success_total"
OUTPUT_TOKENS = "vllm:generation_tokens_total"
TTFT_BUCKET = "vllm:time_to_first_token_seconds_bucket"
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
SERIES = (
    "t",
    "request_rate",
    "output_tokens_per_s",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "kv_cache_usage",
    "running",
    "waiting",
)


@dataclass(frozen=True)
class Snapshot:
    """One scrape of one engine; every value summed over the label sets (one engine serves one model)."""

    t: float
    requests: float
    output_tokens: float
    ttft_buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending
    kv_cache_usage: float | None
    running: float | None
    waiting: float | None


def parse_metrics(text: str, t: float) -> Snapshot:
    sums: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == TTFT_BUCKET:
                bound = float(sample.labels["le"])  # "+Inf" parses to inf
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name in (REQUESTS, OUTPUT_TOKENS, KV_CACHE_USAGE, RUNNING, WAITING):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return Snapshot(
        t=t,
        requests=sums.get(REQUESTS, 0.0),
        output_tokens=sums.get(OUTPUT_TOKENS, 0.0),
        ttft_buckets=tuple(sorted(buckets.items())),
        kv_cache_usage=sums.get(KV_CACHE_USAGE),
        running=sums.get(RUNNING),
        waiting=sums.get(WAITING),
    )


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' estimate of quantile ``q`` from cumulative ``(upper bound, count)`` buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):  # in the open-ended bucket: the best estimate is the last finite bound
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _delta_buckets(
    before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    previous = dict(before)
    return [(bound, max(0.0, count - previous.get(bound, 0.0))) for bound, count in after]


def sample(before: Snapshot | None, after: Snapshot) -> dict[str, float | None]:
    """One point of every series; rates and quantiles need ``before`` (the same engine's last scrape)."""
    point: dict[str, float | None] = {
        "t": after.t,
        "request_rate": None,
        "output_tokens_per_s": None,
        "ttft_p50_ms": None,
        "ttft_p99_ms": None,
        "kv_cache_usage": after.kv_cache_usage,
        "running": after.running,
        "waiting": after.waiting,
    }
    if before is None or after.t <= before.t or after.requests < before.requests:
        return point  # first scrape of this engine, or its counters were reset
    dt = after.t - before.t
    point["request_rate"] = (after.requests - before.requests) / dt
    point["output_tokens_per_s"] = max(0.0, after.output_tokens - before.output_tokens) / dt
    window = _delta_buckets(before.ttft_buckets, after.ttft_buckets)
    for key, q in (("ttft_p50_ms", 0.5), ("ttft_p99_ms", 0.99)):
        value = histogram_quantile(q, window)
        point[key] = None if value is None else value * 1000.0
    return point


class MetricsRing:
    """The last ``size`` samples of one model, across engine swaps."""

    def __init__(self, size: int = 120) -> None:
        self._points: deque[dict[str, float | None]] = deque(maxlen=size)

    def add(self, point: dict[str, float | None]) -> None:
        self._points.append(point)

    def columns(self) -> dict[str, list[float | None]]:
        return {key: [p[key] for p in self._points] for key in SERIES}
