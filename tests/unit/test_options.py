"""TT options: every value type (good and bad), both sources, and which options each device ignores."""

from __future__ import annotations

import enum
import logging
import sys
from types import ModuleType, SimpleNamespace

import pytest

from tt_vllm_plugin import options as options_module
from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.options import (
    TTOptions,
    TTOptionsError,
    report_ignored_options,
    tt_options_from_vllm_config,
)

ALL_DEVICE_OPTIONS = {
    "trace_mode": "decode_only",
    "sample_on_device_mode": "all",
    "always_compat_sampling": True,
    "enable_model_warmup": False,
    "dispatch_core_axis": "col",
    "fabric_config": "FABRIC_1D_RING",
    "fabric_reliability_mode": "RELAXED_INIT",
    "trace_region_size": 20_000_000,
    "worker_l1_size": 1_345_000,
    "l1_small_size": 24_576,
    "data_parallel": 2,
    "optimizations": "accuracy",
}
# ttnn 0.81.1's ttnn.FabricConfig members, in its order: the fabric_config names allowed where ttnn is not
# importable, as here (tests/real_ttnn/test_fabric_options.py holds them to the real 0.81.1).
FABRICS = (
    "'DISABLED', 'FABRIC_1D', 'FABRIC_1D_RING', 'FABRIC_1D_NEIGHBOR_EXCHANGE', 'FABRIC_2D', "
    "'FABRIC_2D_TORUS_XY', 'FABRIC_2D_TORUS_X', 'FABRIC_2D_TORUS_Y', 'CUSTOM' "
    "(ttnn 0.81.1's FabricConfig; ttnn is not importable here)"
)


@pytest.mark.parametrize(("name", "value"), [("kv_cache_tokens", 4096), *ALL_DEVICE_OPTIONS.items()])
def test_every_option_accepts_a_valid_value(name, value):
    options = TTOptions.from_mapping({name: value}, "src")
    assert getattr(options, name) == value
    assert options.given == {name}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("kv_cache_tokens", 0, "must be a positive integer, got 0."),
        ("kv_cache_tokens", True, "must be a positive integer, got True."),
        ("kv_cache_tokens", "4096", "must be a positive integer, got '4096'."),
        ("trace_region_size", -1, "must be a positive integer, got -1."),
        ("worker_l1_size", 1.5, "must be a positive integer, got 1.5."),
        ("l1_small_size", 0, "must be a positive integer, got 0."),
        ("data_parallel", None, "must be a positive integer, got None."),
        ("trace_mode", "sometimes", "must be one of 'all', 'decode_only', 'none', got 'sometimes'."),
        ("trace_mode", None, "must be one of 'all', 'decode_only', 'none', got None."),
        ("sample_on_device_mode", "prefill", "must be one of 'all', 'decode_only', got 'prefill'."),
        ("always_compat_sampling", "yes", "must be true or false, got 'yes'."),
        ("enable_model_warmup", 1, "must be true or false, got 1."),
        ("dispatch_core_axis", "ROW", "must be one of 'row', 'col', got 'ROW'."),
        ("optimizations", "fast", "must be one of 'performance', 'accuracy', got 'fast'."),
        ("fabric_config", "FABRIC_3D", f"must be one of {FABRICS}, got 'FABRIC_3D'."),
        ("fabric_config", "fabric_1d", f"must be one of {FABRICS}, got 'fabric_1d'."),
        # Accepted before; ttnn 0.81.1 has no such member, so a card would refuse it only at mesh open.
        ("fabric_config", "FABRIC_2D_DYNAMIC", f"must be one of {FABRICS}, got 'FABRIC_2D_DYNAMIC'."),
        (
            "fabric_reliability_mode",
            "DYNAMIC_RECONFIG",
            "must be one of 'STRICT_INIT', 'RELAXED_INIT', got 'DYNAMIC_RECONFIG'.",
        ),
    ],
)
def test_bad_values_name_key_allowed_values_and_source(name, value, message):
    with pytest.raises(TTOptionsError) as error:
        TTOptions.from_mapping({name: value}, "SRC")
    assert str(error.value) == f"TT option {name!r} in SRC {message}"


def test_with_ttnn_importable_its_fabric_config_members_decide(monkeypatch):
    """Where ttnn imports, any member of its FabricConfig is a fabric_config, as in Tenstorrent's runner
    (worker.py get_fabric_config: ttnn.FabricConfig.__members__), so a newer ttnn's fabrics work without a
    release of ours. A STAND-IN ttnn here (the real one: tests/real_ttnn/test_fabric_options.py): the
    installed FabricConfig is a nanobind enum, a Python enum with __members__, as this one."""
    stand_in = ModuleType("ttnn")
    stand_in.FabricConfig = enum.IntEnum("FabricConfig", ["DISABLED", "FABRIC_1D", "FABRIC_3D_FUTURE"])
    monkeypatch.setitem(sys.modules, "ttnn", stand_in)
    assert (
        TTOptions.from_mapping({"fabric_config": "FABRIC_3D_FUTURE"}, "src").fabric_config
        == "FABRIC_3D_FUTURE"
    )
    with pytest.raises(TTOptionsError) as error:
        TTOptions.from_mapping({"fabric_config": "FABRIC_2D_TORUS_XY"}, "SRC")
    assert str(error.value) == (
        "TT option 'fabric_config' in SRC must be one of 'DISABLED', 'FABRIC_1D', 'FABRIC_3D_FUTURE' "
        "(the installed ttnn's FabricConfig), got 'FABRIC_2D_TORUS_XY'."
    )


def test_unknown_keys_are_listed_with_the_known_ones():
    with pytest.raises(TTOptionsError) as error:
        TTOptions.from_mapping({"trace": "all", "fabric": "x"}, "SRC")
    text = str(error.value)
    assert text.startswith("Unknown TT option(s) 'fabric', 'trace' in SRC. Known options: ")
    assert "fabric_config" in text and "kv_cache_tokens" in text and "given" not in text


def _vllm_config(additional=None, override=None):
    model_config = SimpleNamespace() if override is None else SimpleNamespace(override_tt_config=override)
    return SimpleNamespace(additional_config=additional, model_config=model_config)


def test_options_come_from_additional_config():
    options = tt_options_from_vllm_config(_vllm_config({"tt": {"trace_mode": "none"}, "other": 1}))
    assert options.trace_mode == "none"
    assert tt_options_from_vllm_config(_vllm_config(None)) == TTOptions()


def test_bad_value_in_additional_config_names_that_source():
    with pytest.raises(TTOptionsError, match=r"in --additional-config \"tt\" must be a positive integer"):
        tt_options_from_vllm_config(_vllm_config({"tt": {"data_parallel": 0}}))
    with pytest.raises(TTOptionsError, match=r'--additional-config "tt" must be a JSON object, got 3'):
        tt_options_from_vllm_config(_vllm_config({"tt": 3}))


def test_vllm_has_no_override_tt_config():
    """Why the older fork's source is optional: the installed vLLM's model config has no such field."""
    from vllm.config import ModelConfig

    fields = getattr(ModelConfig, "__dataclass_fields__", {})
    assert "model" in fields and "override_tt_config" not in fields


def test_override_tt_config_is_read_where_a_vllm_still_passes_it():
    options = tt_options_from_vllm_config(_vllm_config(override={"trace_mode": "decode_only"}))
    assert options.trace_mode == "decode_only"
    with pytest.raises(TTOptionsError, match="TT option 'trace_mode' in override_tt_config must be one of"):
        tt_options_from_vllm_config(_vllm_config(override={"trace_mode": "x"}))


def test_both_sources_merge_and_disagreements_are_refused():
    both = tt_options_from_vllm_config(
        _vllm_config(
            {"tt": {"trace_mode": "none", "data_parallel": 2}}, {"data_parallel": 2, "l1_small_size": 8}
        )
    )
    assert (both.trace_mode, both.data_parallel, both.l1_small_size) == ("none", 2, 8)
    with pytest.raises(TTOptionsError) as error:
        tt_options_from_vllm_config(_vllm_config({"tt": {"data_parallel": 2}}, {"data_parallel": 4}))
    assert str(error.value) == (
        'TT option(s) set differently in --additional-config "tt" and override_tt_config '
        "(data_parallel: 2 vs 4); set each option in one place."
    )


def test_host_ignores_every_device_option_but_the_kv_budget_and_sampling():
    options = TTOptions.from_mapping({"kv_cache_tokens": 64, **ALL_DEVICE_OPTIONS}, "src")
    sampling = ["always_compat_sampling", "sample_on_device_mode"]
    # Both devices sample on the model's device when asked; the host has no trace, mesh or fabric.
    assert options.ignored_on(DeviceChoice.HOST) == sorted(set(ALL_DEVICE_OPTIONS) - set(sampling))
    assert options.ignored_on(DeviceChoice.TTNN) == []
    assert TTOptions.from_mapping({"kv_cache_tokens": 64}, "src").ignored_on(DeviceChoice.HOST) == []


def test_an_option_set_to_its_default_still_counts_as_set():
    assert TTOptions.from_mapping({"trace_mode": "all"}, "src").ignored_on(DeviceChoice.HOST) == [
        "trace_mode"
    ]


def test_ignored_options_are_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(options_module, "_reported", set())
    logger = logging.getLogger("tt_vllm_plugin.options")
    monkeypatch.setattr(logger, "propagate", True)  # the plugin's loggers normally write to stderr only
    options = TTOptions.from_mapping({"trace_mode": "none", "fabric_config": "FABRIC_1D"}, "src")
    with caplog.at_level(logging.WARNING, logger="tt_vllm_plugin.options"):
        assert report_ignored_options(options, DeviceChoice.HOST) == ["fabric_config", "trace_mode"]
        report_ignored_options(options, DeviceChoice.HOST)
        assert report_ignored_options(TTOptions(), DeviceChoice.HOST) == []
    lines = [r.getMessage() for r in caplog.records if "no effect" in r.getMessage()]
    assert lines == [
        "TT option(s) fabric_config, trace_mode have no effect on the host device and are ignored."
    ]
