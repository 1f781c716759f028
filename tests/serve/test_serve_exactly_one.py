"""Exactly one plugin activates, whatever the discovery order of two distributions that both register ``tt``.

Two real installed distributions register the ``vllm.platform_plugins`` entry point ``tt``: this
project (tt-vllm-plugin) and the test fixture standing in for tt-xla's ``vllm_tt``. Their order on
PYTHONPATH sets vLLM's discovery order. Plain vLLM silently keeps the last one discovered (so the test
is real: the order matters). Under tt-serve's environment, taken from ``serve --dry-run --json`` (exactly
what ``serve`` launches), vLLM's own platform resolution picks the chosen backend in both orders, and so
does a child started through vLLM's multiprocessing context with spawn, as the engine core can be.
One subprocess per (order, mechanism), all started at once (~8 s of vLLM import each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = str(Path(__file__).with_name("platform_probe.py"))
OURS = {
    "tt": "tt_vllm_plugin:register",
    "platform": "tt_vllm_plugin.platform.TTPlatform",
    "device_name": "tt",
}
FAKE = {
    "tt": "vllm_tt:register",
    "platform": "vllm_tt.platform.FakeForgePlatform",
    "device_name": "fake-forge-test-fixture",
}
FORGE_SIM = """
[backends.forge-sim]
distribution = "vllm_tt"
hardware = "none"
vllm = ">=0.32,<0.33"
"""
ORDERS = ("ours-first", "fake-first")
# (order, mechanism) -> what vLLM must activate. Plain vLLM: the last discovered wins.
EXPECTED = {
    ("ours-first", "plain"): FAKE,
    ("fake-first", "plain"): OURS,
    ("ours-first", "host"): OURS,
    ("fake-first", "host"): OURS,
    ("ours-first", "forge-sim"): FAKE,
    ("fake-first", "forge-sim"): FAKE,
}
# Where plain vLLM would pick the other plugin, also check a spawned child (as the engine core starts).
SPAWNED = {("ours-first", "host"), ("fake-first", "forge-sim")}


@pytest.fixture(scope="module")
def probes(
    ours_site: Path, fake_forge_site: Path, tmp_path_factory: pytest.TempPathFactory, tt_serve, make_env
) -> dict[tuple[str, str], dict]:
    config = tmp_path_factory.mktemp("exactly-one") / "forge-sim.toml"
    config.write_text(FORGE_SIM)
    paths = {"ours-first": [ours_site, fake_forge_site], "fake-first": [fake_forge_site, ours_site]}
    running = {}
    for order, mechanism in EXPECTED:
        pythonpath = os.pathsep.join(map(str, paths[order]))
        if mechanism == "plain":
            env = make_env({"PYTHONPATH": pythonpath, "TT_VLLM_DEVICE": "host"})
        else:
            args = ["serve", "--dry-run", "--json", "smollm2-135m-instruct", "--backend", mechanism]
            if mechanism == "forge-sim":
                args += ["--config", str(config)]
            extra = {"PYTHONPATH": pythonpath}
            if (order, mechanism) == ("fake-first", "forge-sim"):
                extra["VLLM_PLUGINS"] = "tt"  # documented vLLM behaviour keeps working under tt-serve
            done = tt_serve(args, env=extra)
            assert done.returncode == 0, done.stderr
            plan = json.loads(done.stdout)
            env = make_env({**extra, **plan["env"]})
        spawn = (order, mechanism) in SPAWNED
        if spawn:
            env["VLLM_WORKER_MULTIPROC_METHOD"] = "spawn"
        running[(order, mechanism)] = subprocess.Popen(
            [sys.executable, PROBE, *(["--spawn"] if spawn else [])],
            env=env,
            cwd=str(config.parent),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for case, process in running.items():
        out, err = process.communicate(timeout=600)
        line = next((x for x in out.splitlines() if x.startswith("PROBE ")), None)
        assert process.returncode == 0 and line, f"{case}: {err[-3000:]}"
        results[case] = json.loads(line[len("PROBE ") :])
    return results


def _picked(result: dict) -> dict:
    return {key: result[key] for key in ("tt", "platform", "device_name")}


@pytest.mark.parametrize("order", ORDERS)
def test_plain_vllm_keeps_the_last_discovered(probes: dict, order: str) -> None:
    assert _picked(probes[(order, "plain")]["main"]) == EXPECTED[(order, "plain")]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("backend", ["host", "forge-sim"])
def test_tt_serve_activates_the_chosen_plugin_in_any_order(probes: dict, order: str, backend: str) -> None:
    result = probes[(order, backend)]
    assert _picked(result["main"]) == EXPECTED[(order, backend)]
    assert result["main"]["plugins"] == ["tt"]


@pytest.mark.parametrize("case", sorted(SPAWNED))
def test_spawned_processes_see_the_same_single_plugin(probes: dict, case: tuple[str, str]) -> None:
    result = probes[case]
    assert result["child_method"] == "spawn"
    assert _picked(result["child"]) == EXPECTED[case]
    # The order really matters here: plain vLLM would have picked the other plugin.
    assert EXPECTED[case] != EXPECTED[(case[0], "plain")]
