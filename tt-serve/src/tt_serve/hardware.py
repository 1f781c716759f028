"""Tenstorrent hardware detection: a cheap look at device nodes, and what the backend's environment says.

The kernel driver (tt-kmd) creates ``/dev/tenstorrent/<n>``; their presence is a cheap, import-free
hint used during resolution. Whether ttnn is importable is a fact of the backend's Python environment
(the probe reports it). Whether ttnn can actually open a device is only known by importing it there
(slow, and it may grab the device), so that deep probe runs only when asked for (``doctor``).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class HardwareReport:
    device_nodes: tuple[str, ...]
    ttnn_installed: bool | None = None  # None: no environment was asked
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
        parts = [nodes]
        if self.ttnn_installed is not None:
            parts.append("ttnn installed" if self.ttnn_installed else "ttnn not installed")
        if self.ttnn_probe is not None:
            parts.append(self.ttnn_probe[1])
        return "; ".join(parts)

    def with_ttnn(self, installed: bool, probe: tuple[bool, str] | None = None) -> HardwareReport:
        return HardwareReport(self.device_nodes, installed, probe)


def device_nodes(dev_root: str = "/dev") -> tuple[str, ...]:
    base = os.path.join(dev_root, "tenstorrent")
    if os.path.isdir(base):
        found = [os.path.join(base, name) for name in os.listdir(base)]
    else:  # older drivers used /dev/tenstorrent0, /dev/tenstorrent1, ...
        found = glob.glob(base + "*")
    return tuple(sorted(found))


def detect(dev_root: str = "/dev") -> HardwareReport:
    return HardwareReport(device_nodes(dev_root))
