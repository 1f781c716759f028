"""Cluster mode on a real multi-node Ray cluster on this machine, in a network namespace with only
loopback (``unshare -n``: Ray otherwise binds the host's address). tests/cluster/scenario.py does it and
records what it saw; this test asserts on that and prints the measured times.

Bounded: the scenario gets SCENARIO_LIMIT_S in all, and stops everything it started by pid.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.cluster.nodes import ROOT, SERVE_BIN

pytestmark = [pytest.mark.engine, pytest.mark.server]
SCENARIO_LIMIT_S = 1800


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def results() -> dict:
    if not (SERVE_BIN / "ray").exists():
        pytest.fail("Ray is not installed in .venv-serve: make setup installs tt-serve[ray] there")
    if not _unshare_works():
        pytest.skip("unshare -n is not permitted here (needs root or user namespaces)")
    # Not under pytest's temporary root: Ray's session files live here for the whole scenario.
    work = Path(tempfile.mkdtemp(prefix="tt-serve-cluster-"))
    out = work / "results.json"
    subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.cluster.scenario", str(work), str(out)],
        cwd=ROOT,
        timeout=SCENARIO_LIMIT_S,
        check=True,
    )
    found = json.loads(out.read_text())
    print("\ncluster scenario, measured:", json.dumps(found["measured"], indent=2))
    for step in ("swap", "two_replicas"):
        if step in found:
            print(f"{step}:", json.dumps(found[step]["load"]))
    if "error" in found:
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in work.glob("*.log"))
        pytest.fail(f"the scenario stopped (kept: {work}):\n{found['error']}\n{logs}")
    shutil.rmtree(work, ignore_errors=True)
    return found


def test_only_loopback(results: dict) -> None:
    assert results["interfaces"] == ["lo"]
    assert sorted(results["ray_nodes"].values()) == [0, 1, 1]  # the head holds no card


def test_two_models_land_on_different_nodes_each_on_its_own_card(results: dict) -> None:
    a, b = results["placed"]["smol-a"], results["placed"]["smol-b"]
    assert a["node_id"] != b["node_id"]
    assert {a["TT_VISIBLE_DEVICES"], b["TT_VISIBLE_DEVICES"]} == {"0", "1"}
    assert results["first_answers"] == {"smol-a": 200, "smol-b": 200}
    assert results["models_listed"] == ["smol-a", "smol-b"]


def test_a_rolling_swap_under_load_fails_no_request(results: dict) -> None:
    swap = results["swap"]
    assert swap["status"] == 200 and swap["answer"]["mode"] == "rolling"
    assert swap["load"]["failures"] == [] and swap["load"]["ok"] > 0
    # stop-then-start on its card: the replacement runs where the old replica ran
    assert (
        results["placed_after_swap"]["TT_VISIBLE_DEVICES"]
        == results["placed"]["smol-b"]["TT_VISIBLE_DEVICES"]
    )


def test_a_third_model_waits_with_503_until_a_card_frees(results: dict) -> None:
    waiting = results["c_while_no_card"]
    assert waiting["status"] == 503 and int(waiting["retry_after"]) >= 1 and waiting["state"] == "starting"
    assert (
        "the model `smol-c` is loading" in waiting["message"] and "1 TTNPU per replica" in waiting["message"]
    )
    assert results["a_removed"] == 200 and results["c_added"] == 201
    assert results["placed_c"]["TT_VISIBLE_DEVICES"] == results["placed"]["smol-a"]["TT_VISIBLE_DEVICES"]


def test_killing_a_node_turns_only_its_model_to_503(results: dict) -> None:
    after = results["after_kill"]
    assert results["killed_pids"] > 1
    assert set(after["c"]) == {200}, after  # the other node's model never stopped serving
    assert after["b"][-5:] == [503] * 5 and int(after["b_503"]["retry_after"]) >= 1
    assert "1 TTNPU per replica" in after["b_503"]["message"]
    assert "time_to_recover_after_node_restart_s" in results["measured"]


def test_two_replicas_share_the_load(results: dict) -> None:
    two = results["two_replicas"]
    assert two["status"] == 200 and two["load"]["failures"] == []
    assert len(two["load"]["replicas"]) == 2 and min(two["load"]["replicas"].values()) > 0, two
    assert results["health"]["status"] == "ok" and results["metrics_models"] == ["smol-c"]
