"""benchmarks/serve_sweep.py: what each backend's server is started with, and the published comparison.

The sweep itself runs servers (benchmarks/RESULTS.md); here only its pure pieces are checked, in particular
the ttnn backend, which cannot run on these machines (no Tenstorrent card).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tt_vllm_plugin.activation import DeviceChoice

SWEEP = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_sweep.py"


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("serve_sweep", SWEEP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_sweep"] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("serve_sweep", None)


def parse(sweep, monkeypatch, *argv: str):
    monkeypatch.setattr("sys.argv", ["serve_sweep.py", "--model", "/models/m", *argv])
    return sweep.parse_args()


def test_the_ttnn_backend_serves_on_the_ttnn_device_with_the_models_kv_budget(sweep, monkeypatch):
    monkeypatch.setenv("MESH_DEVICE", "N150")
    args = parse(sweep, monkeypatch, "--backends", "ttnn,plugin")
    ttnn, host = sweep.variants(args)
    assert ttnn.env == {"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "ttnn"}
    assert ttnn.description == "tt plugin, ttnn device (MESH_DEVICE=N150)"
    assert "--kv-cache-memory-bytes" not in sweep.server_args(args, ttnn)
    assert "--kv-cache-memory-bytes" in sweep.server_args(args, host)


def test_the_expected_log_lines_are_the_ones_the_platform_writes(sweep):
    from tt_vllm_plugin import platform

    message = "Platform tt (tt-vllm-plugin) active on the %s device; vLLM %s"
    assert f'"{message}"' in Path(platform.__file__).read_text()  # what platform.py logs
    assert (message % (DeviceChoice.HOST.value, "0.32.0")).startswith(sweep.PLUGIN_ACTIVE)
    assert (message % (DeviceChoice.TTNN.value, "0.32.0")).startswith(sweep.PLUGIN_ACTIVE_TTNN)


def test_native_all_cores_is_the_native_platform_reserving_no_core(sweep, monkeypatch):
    args = parse(sweep, monkeypatch, "--backends", "native,native-all-cores")
    native, all_cores = sweep.variants(args)
    assert native.env == {"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "auto"}
    assert all_cores.env == {**native.env, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert (all_cores.name, all_cores.expect_log) == ("native-all-cores", sweep.PLUGIN_INACTIVE)
    assert sweep.server_args(args, native) == sweep.server_args(args, all_cores)


def test_plugin_rates_are_compared_with_each_native_variant(sweep):
    def runs(throughput: float, ttft: float) -> dict:
        return {"runs": [{"offered_rate": "inf", "output_throughput": throughput, "p99_ttft_ms": ttft}]}

    results = {
        "plugin": runs(400.0, 100.0),
        "native": runs(200.0, 200.0),
        "native-all-cores": runs(320.0, 50.0),
    }
    assert sweep.ratio_lines(results)[1:] == ["plugin rate inf: throughput 2.00x, P99 TTFT 0.50x"]
    assert sweep.ratio_lines(results, "native-all-cores")[1:] == [
        "plugin rate inf: throughput 1.25x, P99 TTFT 2.00x"
    ]


def test_an_unknown_backend_is_refused(sweep, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        parse(sweep, monkeypatch, "--backends", "gpu")
    assert (
        "expected a comma-separated list of native, native-all-cores, plugin, ttnn, got 'gpu'"
        in capsys.readouterr().err
    )


def test_ttnn_figures_are_printed_beside_the_published_n150_ones(sweep):
    runs = [
        {"offered_rate": "1", "p99_ttft_ms": 512.3},
        {"offered_rate": "2", "request_throughput": 1.8, "output_throughput": 380.0, "p99_ttft_ms": 2100.0},
        {"offered_rate": "inf", "p99_ttft_ms": 9999.0},
    ]
    lines = sweep.published_lines({"ttnn": {"runs": runs}})
    assert lines[1:] == [
        "rate 1: p99_ttft_ms 512.30 (published 479)",
        "rate 2: request_throughput 1.80 (published 1.78), output_throughput 380.00 (published 376.65), "
        "p99_ttft_ms 2100.00 (published 9569)",
    ]
    assert sweep.published_lines({"plugin": {"runs": runs}}) == []
