"""The host's Tenstorrent cards, as the kernel driver shows them, and what a mesh name implies.

What ``TT_VISIBLE_DEVICES`` indexes (tenstorrent/tt-umd 3ed9cb6, ``device/pcie/pci_device.cpp``
``PCIDevice::enumerate_devices`` and ``docs/TT_VISIBLE_DEVICES.md``): **PCIe devices**, not chips. An
integer is a position in the list of ``/dev/tenstorrent/<n>`` nodes sorted by PCI address (BDF), counted
from 0 among the nodes this process can see (since tt-umd 0.9.3, PR #2057; before it, the ``<n>`` of the
node); a BDF (``0000:02:00.0``) or a prefix of one also works. A chip reached only through another (the
second chip of an N300, chips 4-7 of a T3K) has no node and comes with its PCIe chip. So an N300 is one
card, a T3K (four N300) four cards and eight chips, a 6U Galaxy 32 cards (every chip is on PCIe).

The kernel driver (tenstorrent/tt-kmd 4af7192, ``chardev.c``, ``wormhole.c``, ``telemetry.c``) names the
node ``tenstorrent/<n>`` in device class ``tenstorrent``, so sysfs has
``/sys/class/tenstorrent/tenstorrent!<n>/`` with ``device`` (a link to the PCI device: its name is the BDF)
and the board's ``tt_card_type`` (``n150``, ``n300``, ``p150a``, ...) and ``tt_serial``. Read from sysfs
without opening the device: a probe that opened the card (ttnn) would take it from a running engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

VISIBLE_DEVICES = "TT_VISIBLE_DEVICES"  # read by tt-umd (so tt-metal and ttnn) and set by Ray per worker
MESH_DEVICE = "MESH_DEVICE"  # read by tt-metal's models and by the plugins to shape the mesh

# Cards (PCIe devices) each mesh name of tt-metal / vllm-tt-plugin (utils/dp_discovery.py
# _MESH_GRID_PRESETS) implies. P300 and P300x2 are left out on purpose: a P300 board has two chips and the
# host reaches one or both over PCIe depending on the board (tt-umd's blackhole_P300_first_mmio,
# _second_mmio, _both_mmio cluster descriptors), so its card count is the operator's to say (``cards = N``).
MESH_CARDS = {
    "N150": 1,
    "N300": 1,
    "P100": 1,
    "P150": 1,
    "P150x2": 2,
    "N150x4": 4,
    "P150x4": 4,
    "T3K": 4,
    "P150x8": 8,
    "TG": 32,
    "BH-Galaxy": 32,
}
# The mesh name for a set of boards (tt_card_type, letter suffix dropped), to tell tt-metal's models what
# they run on when the model names no MESH_DEVICE itself.
_MESH_FOR_BOARDS = {
    ("n150", 1): "N150",
    ("n300", 1): "N300",
    ("p100", 1): "P100",
    ("p150", 1): "P150",
    ("p150", 2): "P150x2",
    ("n150", 4): "N150x4",
    ("p150", 4): "P150x4",
    ("n300", 4): "T3K",
    ("p150", 8): "P150x8",
}


@dataclass(frozen=True)
class Card:
    """One card: ``id`` is what goes into TT_VISIBLE_DEVICES (its place in PCI-address order)."""

    id: int
    node: str  # /dev/tenstorrent/<n>
    pci_address: str | None = None  # the BDF, from sysfs
    board: str | None = None  # tt_card_type, from sysfs

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "node": self.node, "pci_address": self.pci_address, "board": self.board}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def discover(root: str | os.PathLike[str] = "/") -> tuple[Card, ...]:
    """The cards under ``root`` (``/``: the real host; tests give a folder holding ``dev/tenstorrent/<n>``
    and optionally ``sys/class/tenstorrent/tenstorrent!<n>/``), numbered as tt-umd numbers them."""
    base = Path(root)
    nodes = base / "dev" / "tenstorrent"
    try:
        numbers = sorted(int(name) for name in os.listdir(nodes) if name.isdigit())
    except OSError:
        return ()
    found = []
    for number in numbers:
        sysfs = base / "sys" / "class" / "tenstorrent" / f"tenstorrent!{number}"
        try:
            address: str | None = os.path.basename(os.path.realpath(sysfs / "device"))
            if not (sysfs / "device").exists():
                address = None
        except OSError:
            address = None
        found.append((address, number, _read(sysfs / "tt_card_type")))
    # tt-umd sorts by BDF; nodes without a known address keep their number order, after the others.
    found.sort(key=lambda item: (item[0] is None, item[0] or "", item[1]))
    return tuple(
        Card(index, f"/dev/tenstorrent/{number}", address, board)
        for index, (address, number, board) in enumerate(found)
    )


def configured(ids: Iterable[int], discovered: Sequence[Card]) -> tuple[Card, ...]:
    """The cards of a configured list of ids: what discovery knows of each, or a bare card."""
    known = {card.id: card for card in discovered}
    return tuple(known.get(i, Card(i, f"/dev/tenstorrent/{i}")) for i in sorted(set(ids)))


def cards_for_mesh(mesh: str | None) -> int | None:
    """How many cards a MESH_DEVICE value implies; None when it implies no count (unset, "(r, c)", P300)."""
    return MESH_CARDS.get(mesh.strip()) if mesh else None


def mesh_for(cards: Sequence[Card]) -> str | None:
    """The mesh name of these cards when they are all one known board type, else None."""
    boards = {card.board.rstrip("abc") if card.board else None for card in cards}
    if len(boards) != 1 or None in boards:
        return None
    return _MESH_FOR_BOARDS.get((boards.pop(), len(cards)))  # type: ignore[arg-type]


def visible_devices(cards: Sequence[Card]) -> str:
    return ",".join(str(card.id) for card in sorted(cards, key=lambda c: c.id))
