"""The ``prefill_batching`` TT option: default, validation, and that both devices act on it."""

from __future__ import annotations

import pytest

from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.options import TTOptions, TTOptionsError


def test_prefill_batching_is_on_by_default():
    assert TTOptions.from_mapping(None, "src").prefill_batching is True


@pytest.mark.parametrize("value", [True, False])
def test_prefill_batching_accepts_true_and_false(value):
    options = TTOptions.from_mapping({"prefill_batching": value}, "src")
    assert options.prefill_batching is value
    assert options.given == {"prefill_batching"}


@pytest.mark.parametrize("value", ["off", 0, None])
def test_prefill_batching_refuses_anything_but_a_boolean(value):
    with pytest.raises(TTOptionsError) as error:
        TTOptions.from_mapping({"prefill_batching": value}, "SRC")
    assert str(error.value) == f"TT option 'prefill_batching' in SRC must be true or false, got {value!r}."


@pytest.mark.parametrize("device", [DeviceChoice.HOST, DeviceChoice.TTNN])
def test_prefill_batching_is_honoured_on_every_device(device):
    # The runner, not the device, splits the prefill: no device may report it as ignored.
    assert TTOptions.from_mapping({"prefill_batching": False}, "src").ignored_on(device) == []
