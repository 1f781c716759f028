"""Whether the platform activates, and on which device, from ``TT_VLLM_DEVICE``.

vLLM swallows exceptions raised in a platform plugin's ``register()``, so this module never raises
there: when the user asked for something that cannot work (``ttnn`` without hardware, a misspelt
device), the platform still activates and ``TTPlatform.check_and_update_config`` raises the error,
where vLLM lets it reach the user.
"""

from __future__ import annotations

import os

from tt_vllm_plugin import envs
from tt_vllm_plugin.device.choice import DeviceChoice
from tt_vllm_plugin.log import get_logger

DEVICE_ENV = envs.TT_VLLM_DEVICE.name
PLATFORM_QUALNAME = "tt_vllm_plugin.platform.TTPlatform"

logger = get_logger(__name__)


class DeviceSelectionError(RuntimeError):
    pass


def requested_device() -> DeviceChoice:
    """The device asked for in ``TT_VLLM_DEVICE`` (unset or empty: auto)."""
    raw = envs.TT_VLLM_DEVICE.get().lower()
    try:
        return DeviceChoice(raw)
    except ValueError:
        allowed = ", ".join(choice.value for choice in DeviceChoice)
        raise DeviceSelectionError(
            f"{DEVICE_ENV}={os.environ.get(DEVICE_ENV)!r} is not a device; use one of: {allowed}."
        ) from None


def resolve_device() -> DeviceChoice:
    """The device the platform runs on (host or ttnn); raises when the request cannot be met."""
    from tt_vllm_plugin.device.ttnn import ttnn_availability

    choice = requested_device()
    if choice is DeviceChoice.HOST:
        return choice
    available, why = ttnn_availability()
    if available:
        return DeviceChoice.TTNN
    if choice is DeviceChoice.TTNN:
        raise DeviceSelectionError(
            f"{DEVICE_ENV}=ttnn but no Tenstorrent device is usable: {why}. Install ttnn and tt-metal on a "
            f"machine with a Tenstorrent card, or set {DEVICE_ENV}=host to run on the host device."
        )
    raise DeviceSelectionError(f"no Tenstorrent device is usable: {why}")


def decide_activation() -> str | None:
    """Body of ``register()``: the platform qualname, or None (with one log line saying why)."""
    try:
        choice = requested_device()
    except DeviceSelectionError:
        return PLATFORM_QUALNAME  # activate so that check_and_update_config can report the mistake
    if choice is not DeviceChoice.AUTO:
        return PLATFORM_QUALNAME
    from tt_vllm_plugin.device.ttnn import ttnn_availability

    available, why = ttnn_availability()
    if available:
        return PLATFORM_QUALNAME
    logger.info("tt-vllm-plugin not activating: %s. Set %s=host to run on the host device.", why, DEVICE_ENV)
    return None
