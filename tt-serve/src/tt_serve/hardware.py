"""Tenstorrent hardware detection: a cheap look at device nodes, and an optional probe through ttnn.

The kernel driver (tt-kmd) creates ``/dev/tenstorrent/<n>``; their presence is a cheap, import-free
hint used during resolution. Whether ttnn can actually open a device is only known by importing ttnn
(slow, and it may grab the device), so that probe runs only when asked for (``deep``): in ``doctor``
and when the ``metal`` backend is about to be launched.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class HardwareReport:
    device_nodes: tuple[str, ...]
    ttnn_installed: bool
    # Only filled by a deep probe: (usable, reason) from ttnn.
    ttnn_probe: tuple[bool, str] | None = None

    @property
    def present(self) -> bool:
        if self.ttnn_probe is not None and self.ttnn_probe[0]:
            return True
        return bool(self.device_nodes)

    def describe(self) -> str:
        if self.device_nodes:
            nodes = f"device nodes {', '.join(self.device_nodes)}"
        else:
            nodes = "no /dev/tenstorrent* device nodes"
        parts = [nodes, "ttnn installed" if self.ttnn_installed else "ttnn not installed"]
        if self.ttnn_probe is not None:
            parts.append(self.ttnn_probe[1])
        return "; ".join(parts)


def device_nodes(dev_root: str = "/dev") -> tuple[str, ...]:
    base = os.path.join(dev_root, "tenstorrent")
    if os.path.isdir(base):
        found = [os.path.join(base, name) for name in os.listdir(base)]
    else:  # older drivers used /dev/tenstorrent0, /dev/tenstorrent1, ...
        found = glob.glob(base + "*")
    return tuple(sorted(found))


def detect(deep: bool = False, dev_root: str = "/dev") -> HardwareReport:
    nodes = device_nodes(dev_root)
    ttnn_installed = importlib.util.find_spec("ttnn") is not None
    probe = None
    if deep and ttnn_installed:
        from tt_vllm_plugin.device.ttnn import ttnn_availability

        probe = ttnn_availability()
    return HardwareReport(nodes, ttnn_installed, probe)
