"""Units of the gateway that need no engine: the [gateway] config section, the admin token check, and
the metrics reduction (fed a real /metrics page captured from a plugin engine behind the gateway)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tt_serve.config import load_config
from tt_serve.errors import ExitCode, ServeError
from tt_serve.gateway.auth import READ_ONLY_MESSAGE, check_admin
from tt_serve.gateway.metrics import (
    SERIES,
    MetricsRing,
    Snapshot,
    histogram_quantile,
    parse_metrics,
    sample,
)
from tt_serve.gateway.settings import ModelSpec, tt_additional_config

DATA = Path(__file__).parent / "data"


def _write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _config_error(path: Path) -> str:
    with pytest.raises(ServeError) as caught:
        load_config(path)
    assert caught.value.code == ExitCode.CONFIG
    return caught.value.message


# ---- config ---------------------------------------------------------------------------------------
def test_gateway_section_parses_with_models_tables_and_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[models."smollm2-135m-instruct"]
vllm_args = ["--max-model-len", "2048"]

[gateway]
port = 9000
drain_timeout_s = 5

[[gateway.models]]
name = "smol-a"
model = "smollm2-135m-instruct"
backend = "host"
vllm_args = ["--max-num-seqs", 8]
tt = { kv_cache_tokens = 8192 }

[[gateway.models]]
name = "org/smol-b"
model = "smollm2-135m-instruct"
vllm_args = { max-num-seqs = 4, enforce-eager = true }
env = { OMP_NUM_THREADS = "2" }
""",
    )
    config = load_config(path)
    assert len(config.models) == 1  # the [models] section is kept as it was
    gateway = config.gateway
    assert gateway is not None
    assert (gateway.host, gateway.port, gateway.drain_timeout_s, gateway.start_timeout_s) == (
        "127.0.0.1",
        9000,
        5.0,
        300.0,
    )
    a, b = gateway.models
    assert a == ModelSpec(
        "smol-a", "smollm2-135m-instruct", "host", ("--max-num-seqs", "8"), {"kv_cache_tokens": 8192}
    )
    assert b.name == "org/smol-b" and b.backend is None
    assert b.engine_args == ("--max-num-seqs", "4", "--enforce-eager")
    assert b.env == {"OMP_NUM_THREADS": "2"}


def test_yaml_gateway_section(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "gateway:\n  models:\n    - name: a\n      model: smollm2-135m-instruct\n      backend: host\n",
        "gateway.yaml",
    )
    config = load_config(path)
    assert config.gateway is not None and config.gateway.models[0].backend == "host"


def test_config_without_gateway_section_has_none(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, '[models.x]\nbackend = "host"\n')).gateway is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "[gateway]\nprot = 1\n",
            "gateway.prot: unknown key; allowed keys here: cards, cluster, device_root, drain_timeout_s, "
            "engine_env_drop, engine_env_keep, hold_requests_s, host, log_dir, max_request_bytes, models, "
            "port, start_timeout_s",
        ),
        ("[gateway]\nport = 0\n", "gateway.port: must be a positive integer, got int 0"),
        (
            '[gateway]\nmax_request_bytes = "32M"\n',
            "gateway.max_request_bytes: must be a positive integer, got str '32M'",
        ),
        (
            "[gateway]\nhold_requests_s = -1\n",
            "gateway.hold_requests_s: must be a number of seconds, 0 or more, got int -1",
        ),
        (
            '[gateway]\nengine_env_keep = "HF_TOKEN"\n',
            "gateway.engine_env_keep: must be a list of variable names or globs, got str",
        ),
        (
            "[gateway]\nengine_env_drop = [1]\n",
            "gateway.engine_env_drop[0]: must be a non-empty string, got int 1",
        ),
        ("[gateway]\nport = 70000\n", "gateway.port: must be a TCP port (1-65535), got 70000"),
        (
            '[gateway]\ndrain_timeout_s = "5"\n',
            "gateway.drain_timeout_s: must be a positive number, got str '5'",
        ),
        ('[[gateway.models]]\nmodel = "m"\n', "gateway.models[0].name: is required"),
        ('[[gateway.models]]\nname = "a"\n', "gateway.models[0].model: is required"),
        (
            '[[gateway.models]]\nname = "a"\nmodel = "m"\nbackend = "gpu"\n',
            "gateway.models[0].backend: 'gpu' is not a known backend. Known backends: host, metal, forge",
        ),
        (
            '[[gateway.models]]\nname = "a"\nmodel = "m"\nflavour = 1\n',
            "gateway.models[0].flavour: unknown key; allowed keys here: backend, cards, env, model, name, "
            "replicas, tt, vllm_args",
        ),
        (
            '[[gateway.models]]\nname = "a"\nmodel = "m"\ncards = -1\n',
            "gateway.models[0].cards: must be a number of cards (0 or more) or a list of distinct card ids, "
            "got -1",
        ),
        (
            '[[gateway.models]]\nname = "a"\nmodel = "m"\ncards = [1, 1]\n',
            "gateway.models[0].cards: must be a number of cards (0 or more) or a list of distinct card ids, "
            "got [1, 1]",
        ),
        (
            '[[gateway.models]]\nname = "a"\nmodel = "m"\ncards = [0, 1]\n'
            '[[gateway.models]]\nname = "b"\nmodel = "m"\ncards = [1]\n',
            "gateway.models[1].cards: card 1 is already given to model 'a': one card serves one engine",
        ),
        (
            '[[gateway.models]]\nname = "a"\nmodel = "m"\nreplicas = 2\n',
            "gateway.models[0].replicas: more than one replica needs cluster mode ([gateway.cluster]); on "
            "one host add another model",
        ),
        ('[gateway]\ncards = "all"\n', "gateway.cards: must be \"auto\" or a list of card ids, got 'all'"),
        (
            '[[gateway.models]]\nname = "a"\nmodel = "m"\n[[gateway.models]]\nname = "a"\nmodel = "n"\n',
            "gateway.models[1].name: 'a' is already used by another model",
        ),
        (
            '[[gateway.models]]\nname = "a b"\nmodel = "m"\n',
            "gateway.models[0].name: must be a model name (letters, digits and . _ : / -, starting with a "
            "letter or digit), got 'a b'",
        ),
        (
            '[[gateway.models]]\nname = "a"\nmodel = "m"\nvllm_args = ["--host", "0.0.0.0"]\n',
            "gateway.models[0].vllm_args: --host is set by the gateway (engines listen on 127.0.0.1 on a "
            "port of their own and are named after the gateway model); remove it from the engine arguments",
        ),
        (
            '[[gateway.models]]\nname = "a"\nmodel = "m"\nvllm_args = ["--port=9"]\n',
            "gateway.models[0].vllm_args: --port is set by the gateway",
        ),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path: Path, body: str, expected: str) -> None:
    path = _write(tmp_path, body)
    message = _config_error(path)
    assert message.startswith(f"{path}: {expected}")


# ---- engine arguments -----------------------------------------------------------------------------
def test_tt_options_merge_into_additional_config_and_the_args_win() -> None:
    assert tt_additional_config(["--max-num-seqs", "4"], {"kv_cache_tokens": 8192}) == [
        "--max-num-seqs",
        "4",
        "--additional-config",
        json.dumps({"tt": {"kv_cache_tokens": 8192}}),
    ]
    merged = tt_additional_config(
        ['--additional-config={"tt": {"kv_cache_tokens": 4096}, "x": 1}', "--seed", "3"],
        {"kv_cache_tokens": 8192, "block_size": 32},
    )
    assert merged[0] == "--additional-config" and merged[2:] == ["--seed", "3"]
    assert json.loads(merged[1]) == {"tt": {"kv_cache_tokens": 4096, "block_size": 32}, "x": 1}
    with pytest.raises(ValueError, match="must be a JSON object"):
        tt_additional_config(["--additional-config", "nope"], {"a": 1})
    assert tt_additional_config(["--seed", "1"], {}) == ["--seed", "1"]


# ---- admin token ----------------------------------------------------------------------------------
def test_token_check() -> None:
    assert check_admin("s3cret", "Bearer s3cret") is None
    assert check_admin("s3cret", "bearer s3cret ") is None
    assert check_admin("s3cret", None).status == 401
    assert check_admin("s3cret", "Basic s3cret").status == 401
    assert check_admin("s3cret", "Bearer ").status == 401
    wrong = check_admin("s3cret", "Bearer s3cre")
    assert (wrong.status, wrong.message) == (403, "wrong admin token")
    assert check_admin("s3cret", "Bearer s3cret-and-more").status == 403
    for header in (None, "Bearer anything"):
        denied = check_admin(None, header)
        assert (denied.status, denied.message) == (403, READ_ONLY_MESSAGE)
    assert check_admin("", "Bearer ").status == 403  # an empty token configures nothing: read-only


# ---- metrics --------------------------------------------------------------------------------------
def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 0.0), (0.5, 10.0), (1.0, 20.0), (math.inf, 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.5)  # rank 10: the top of (0.1, 0.5]
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.3)  # rank 5: half way through (0.1, 0.5]
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * 9.8 / 10)
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 4.0)]) == 0.1  # open bucket: last finite bound


def test_parse_real_engine_metrics() -> None:
    """``engine_metrics_*.txt``: /metrics of a plugin engine (host backend) behind the gateway, captured
    before and after 3 completions of 16 tokens (the capture is described in data/README)."""
    before = parse_metrics((DATA / "engine_metrics_before.txt").read_text(), t=100.0)
    after = parse_metrics((DATA / "engine_metrics_after.txt").read_text(), t=102.0)
    assert after.requests - before.requests == 3
    assert after.output_tokens - before.output_tokens == 48
    assert after.ttft_buckets[-1][0] == math.inf
    assert after.ttft_buckets[-1][1] - before.ttft_buckets[-1][1] == 3
    assert after.kv_cache_usage is not None and 0.0 <= after.kv_cache_usage <= 1.0
    assert (after.running, after.waiting) == (0.0, 0.0)

    point = sample(before, after)
    assert set(point) == set(SERIES)
    assert point["t"] == 102.0
    assert point["request_rate"] == pytest.approx(1.5)
    assert point["output_tokens_per_s"] == pytest.approx(24.0)
    p50, p99 = point["ttft_p50_ms"], point["ttft_p99_ms"]
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    # The quantiles come from the interval's observations only: the bucket deltas.
    window = [(b, c - dict(before.ttft_buckets).get(b, 0.0)) for b, c in after.ttft_buckets]
    assert p99 == pytest.approx(histogram_quantile(0.99, window) * 1000)


def test_first_sample_and_counter_reset_have_no_rates() -> None:
    snap = Snapshot(10.0, 5.0, 50.0, ((1.0, 5.0), (math.inf, 5.0)), 0.25, 1.0, 2.0)
    first = sample(None, snap)
    assert first["request_rate"] is None and first["ttft_p50_ms"] is None
    assert (first["kv_cache_usage"], first["running"], first["waiting"]) == (0.25, 1.0, 2.0)
    reset = Snapshot(12.0, 1.0, 10.0, ((1.0, 1.0), (math.inf, 1.0)), 0.0, 0.0, 0.0)
    assert sample(snap, reset)["request_rate"] is None
    idle = sample(snap, Snapshot(12.0, 5.0, 50.0, snap.ttft_buckets, 0.0, 0.0, 0.0))
    assert idle["request_rate"] == 0.0 and idle["ttft_p50_ms"] is None  # no first token in the window


def test_ring_keeps_the_last_samples_as_columns() -> None:
    ring = MetricsRing(size=3)
    for i in range(5):
        ring.add({key: float(i) for key in SERIES})
    columns = ring.columns()
    assert set(columns) == set(SERIES)
    assert columns["t"] == [2.0, 3.0, 4.0]


# ---- tt-serve swap / gateway-status, without a gateway ---------------------------------------------
def test_swap_cli_needs_something_to_swap(capsys: pytest.CaptureFixture[str]) -> None:
    from tt_serve.cli import main

    assert main(["swap", "smol-a", "--gateway", "http://127.0.0.1:9"]) == ExitCode.USAGE
    assert capsys.readouterr().err.strip() == (
        "tt-serve: error: nothing to swap: give --backend, --model and/or -- engine arguments"
    )


def test_swap_cli_says_when_the_gateway_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.e2e.server import free_port
    from tt_serve.cli import main

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["swap", "smol-a", "--gateway", url, "--", "--max-num-seqs", "2"]) == ExitCode.PROBLEMS
    err = capsys.readouterr().err
    assert f"tt-serve: error: cannot reach the gateway at {url}: " in err
    assert main(["gateway-status", "--gateway", url]) == ExitCode.PROBLEMS


def test_other_commands_still_refuse_a_tail(capsys: pytest.CaptureFixture[str]) -> None:
    from tt_serve.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["backends", "--", "--x"])
    assert caught.value.code == 2
    assert "unrecognized arguments: --x" in capsys.readouterr().err
