"""The devices ``TT_VLLM_DEVICE`` can name. Its own module, importing nothing of the package, so the
options (which say what each device ignores) and the device layer can both use it without a cycle."""

from __future__ import annotations

from tt_vllm_plugin.pycompat import StrEnum


class DeviceChoice(StrEnum):
    AUTO = "auto"
    HOST = "host"
    TTNN = "ttnn"
