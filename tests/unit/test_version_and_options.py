"""Start-up checks that need no engine: vLLM version range, TT options, device selection."""

from __future__ import annotations

import pytest

from tt_vllm_plugin.activation import DeviceChoice, DeviceSelectionError, requested_device, resolve_device
from tt_vllm_plugin.options import TTOptions, TTOptionsError
from tt_vllm_plugin.version_check import UnsupportedVllmVersion, check_vllm_version, installed_vllm


def test_installed_vllm_is_supported():
    assert check_vllm_version() == installed_vllm().version


@pytest.mark.parametrize("version", ["0.32.0", "0.32.0+cpu", "0.32.3"])
def test_supported_versions_pass(version):
    assert check_vllm_version(version) == version


@pytest.mark.parametrize("version", ["0.31.2", "0.33.0", "1.0.0"])
def test_unsupported_version_names_both_versions(version):
    with pytest.raises(UnsupportedVllmVersion) as error:
        check_vllm_version(version)
    assert str(error.value).startswith(
        f"tt-vllm-plugin supports vLLM <0.33,>=0.32.0 but vLLM {version} is installed."
    )


def test_options_defaults_and_values():
    assert TTOptions.from_mapping(None, "test").kv_cache_tokens is None
    options = TTOptions.from_mapping({"kv_cache_tokens": 4096, "trace_mode": "decode_only"}, "test")
    assert (options.kv_cache_tokens, options.trace_mode) == (4096, "decode_only")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kv_cache_token": 1}, "Unknown TT option(s) 'kv_cache_token' in src. Known options: "),
        ({"kv_cache_tokens": 0}, "TT option 'kv_cache_tokens' in src must be a positive integer, got 0."),
        (
            {"trace_mode": "sometimes"},
            "TT option 'trace_mode' in src must be one of 'all', 'decode_only', 'none', got 'sometimes'.",
        ),
        (
            {"always_compat_sampling": "yes"},
            "TT option 'always_compat_sampling' in src must be true or false",
        ),
    ],
)
def test_bad_options_are_named(values, message):
    with pytest.raises(TTOptionsError) as error:
        TTOptions.from_mapping(values, "src")
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("raw", "choice"), [("", "auto"), ("auto", "auto"), ("HOST", "host"), ("ttnn", "ttnn")]
)
def test_requested_device(monkeypatch, raw, choice):
    monkeypatch.setenv("TT_VLLM_DEVICE", raw)
    assert requested_device() is DeviceChoice(choice)


def test_misspelt_device_is_named(monkeypatch):
    monkeypatch.setenv("TT_VLLM_DEVICE", "gpu")
    with pytest.raises(
        DeviceSelectionError, match=r"TT_VLLM_DEVICE='gpu' is not a device; use one of: auto, host"
    ):
        requested_device()


def test_ttnn_without_hardware_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TT_VLLM_DEVICE", "ttnn")
    with pytest.raises(DeviceSelectionError) as error:
        resolve_device()
    assert str(error.value).startswith(
        "TT_VLLM_DEVICE=ttnn but no Tenstorrent device is usable: ttnn is not importable "
        "(ModuleNotFoundError: No module named 'ttnn'). Install ttnn"
    )
    assert "set TT_VLLM_DEVICE=host" in str(error.value)
