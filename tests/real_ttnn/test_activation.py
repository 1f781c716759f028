"""Detection against the real ttnn 0.81.1: without chips the plugin stays inactive and says why (ttnn's own
"No chips detected in the cluster"); on every system a tt-umd cluster descriptor mocks it activates and
counts the devices ttnn reports. Each system in processes of its own (tests/real_ttnn/systems.py)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

import pytest

from tests.real_ttnn.systems import NEEDS_TTNN, SYSTEMS, probe

pytest.importorskip("ttnn", reason=NEEDS_TTNN)

QUALNAME = "tt_vllm_plugin.platform.TTPlatform"
# ttnn 0.81.1 without chips: get_device_ids(), get_num_devices() and GetNumAvailableDevices() all raise this
# (a C++ backtrace follows it), none returns 0.
NO_CHIPS = (
    "TT_FATAL @ /project/tt_metal/llrt/tt_cluster.cpp:129: num_chips > 0\ninfo:\n"
    "No chips detected in the cluster\nbacktrace:\n"
)
WHY = (
    "ttnn could not count devices (RuntimeError: No chips detected in the cluster "
    "(TT_FATAL @ /project/tt_metal/llrt/tt_cluster.cpp:129))"
)


def test_the_environment_is_ttnn_without_vllm_or_torch():
    assert sys.version_info[:2] == (3, 12)
    assert importlib.metadata.version("ttnn") == "0.81.1"
    assert importlib.util.find_spec("vllm") is None and importlib.util.find_spec("torch") is None


def test_without_chips_ttnn_raises_and_the_plugin_stays_inactive_saying_why():
    report = probe(None)
    for ask in ("device_ids", "get_num_devices", "GetNumAvailableDevices", "cluster_type"):
        answer = report["facts"][ask]
        assert answer["error"] == "RuntimeError" and answer["text"].startswith(NO_CHIPS), (ask, answer)
    activation = report["activation"]
    line = f"tt-vllm-plugin not activating: {WHY}. Set TT_VLLM_DEVICE=host to run on the host device."
    assert activation["unset"] == activation["auto"] == {"register": None, "log": [line]}
    assert activation["availability"] == [False, WHY]
    # TT_VLLM_DEVICE=ttnn: the error check_and_update_config raises, where vLLM lets it reach the user.
    assert activation["ttnn_device"] == (
        f"DeviceSelectionError: TT_VLLM_DEVICE=ttnn but no Tenstorrent device is usable: {WHY}. Install "
        "ttnn and tt-metal on a machine with a Tenstorrent card, or set TT_VLLM_DEVICE=host to run on the "
        "host device."
    )
    assert activation["vllm_or_torch_modules"] == []


@pytest.mark.parametrize("name", SYSTEMS)
def test_each_mocked_system_is_what_ttnn_reports_and_the_plugin_activates(name):
    system, report = SYSTEMS[name], probe(name)
    n = len(system.device_ids)
    assert report["facts"] == {
        "device_ids": list(system.device_ids),
        "get_num_devices": n,
        "GetNumAvailableDevices": n,
        "cluster_type": system.cluster_type,
    }
    activation = report["activation"]
    assert activation["unset"] == activation["auto"] == {"register": QUALNAME, "log": []}
    assert activation["availability"] == [True, f"ttnn reports {n} device(s)"]
    assert activation["ttnn_device"] == "ttnn"
    # register() runs in every vLLM process; on a Tenstorrent host it must not drag vLLM or torch in itself.
    assert activation["vllm_or_torch_modules"] == []
