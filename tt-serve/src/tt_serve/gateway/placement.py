"""Which cards each model's engine gets: one card never serves two engines.

A model's need (:func:`card_need`) is, first that decides: its ``cards`` (a count, or explicit ids); the
count its ``MESH_DEVICE`` implies (``cards.MESH_CARDS``); one card for a backend that needs Tenstorrent
hardware; none otherwise (the host backend: nothing changes). The pool (:class:`CardPool`) hands cards
to models, lowest free ids first; a card held by another model is refused with 409 naming the holder.
The cards stay the model's across its engine generations: a swap restarts on the same cards
(stop-then-start), takes more only if they are free at that moment (else the swap is refused and the
old engine keeps serving), and gives back those it no longer needs once the old engine has stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tt_serve.gateway.cards import (
    MESH_DEVICE,
    VISIBLE_DEVICES,
    Card,
    cards_for_mesh,
    mesh_for,
    visible_devices,
)
from tt_serve.gateway.errors import GatewayError
from tt_serve.gateway.settings import ModelSpec

WAIT_POLL_S = 0.5


@dataclass(frozen=True)
class CardNeed:
    count: int
    ids: tuple[int, ...] | None  # explicit ids, or None: any free cards
    why: str  # what decided it, for messages

    def describe(self) -> str:
        if self.ids is not None:
            return f"card{'s' if len(self.ids) != 1 else ''} {_ids(self.ids)} ({self.why})"
        return f"{self.count} card{'s' if self.count != 1 else ''} ({self.why})"


class PlacementError(GatewayError):
    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(status, message, "ConflictError" if status == 409 else "BadRequestError")


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)


def card_need(spec: ModelSpec, env: Mapping[str, str], needs_hardware: bool) -> CardNeed:
    """How many (or which) cards ``spec`` needs; ``env`` is the engine's (the model's ``env`` and what
    its config entry sets), ``needs_hardware`` whether its backend needs Tenstorrent hardware."""
    mesh = env.get(MESH_DEVICE)
    implied = cards_for_mesh(mesh)
    if isinstance(spec.cards, tuple):
        ids = tuple(sorted(set(spec.cards)))
        if implied is not None and implied != len(ids):
            raise PlacementError(f"MESH_DEVICE={mesh} needs {implied} card(s), but cards = {list(ids)}", 422)
        return CardNeed(len(ids), ids, "cards = [" + _ids(ids) + "]")
    if isinstance(spec.cards, int):
        if implied is not None and implied != spec.cards:
            raise PlacementError(f"MESH_DEVICE={mesh} needs {implied} card(s), but cards = {spec.cards}", 422)
        return CardNeed(spec.cards, None, f"cards = {spec.cards}")
    if implied is not None:
        return CardNeed(implied, None, f"MESH_DEVICE={mesh}")
    if needs_hardware:
        return CardNeed(1, None, "its backend needs a Tenstorrent card")
    return CardNeed(0, None, "its backend needs no card")


class CardPool:
    """The host's cards and who holds each (by model name)."""

    def __init__(self, cards: Sequence[Card]) -> None:
        self.cards = {card.id: card for card in cards}
        self.holders: dict[int, str] = {}

    def held_by(self, name: str) -> tuple[Card, ...]:
        return tuple(self.cards[i] for i in sorted(self.holders) if self.holders[i] == name)

    def free(self) -> list[int]:
        return [i for i in sorted(self.cards) if i not in self.holders]

    def _holders_text(self, ids: Sequence[int]) -> str:
        return "; ".join(f"card {i} is held by model `{self.holders[i]}`" for i in ids if i in self.holders)

    def _pick(self, name: str, need: CardNeed) -> list[int]:
        """The ids ``name`` would get for ``need`` (its own cards first), or PlacementError."""
        if need.count == 0:
            return []
        if not self.cards:
            raise PlacementError(
                f"model `{name}` needs {need.describe()}, and this gateway knows no card (no "
                "/dev/tenstorrent/* nodes; or set [gateway] cards)",
                422,
            )
        own = [i for i in sorted(self.holders) if self.holders[i] == name]
        if need.ids is not None:
            unknown = [i for i in need.ids if i not in self.cards]
            if unknown:
                raise PlacementError(
                    f"model `{name}` asks for card {_ids(unknown)}, which this host does not have (its "
                    f"cards: {_ids(sorted(self.cards))})",
                    422,
                )
            taken = [i for i in need.ids if self.holders.get(i, name) != name]
            if taken:
                raise PlacementError(
                    f"model `{name}` asks for {need.describe()}: {self._holders_text(taken)}"
                )
            return list(need.ids)
        if need.count > len(self.cards):
            raise PlacementError(
                f"model `{name}` needs {need.describe()}; this host has {len(self.cards)}", 422
            )
        picked = (own + self.free())[: need.count]
        if len(picked) < need.count:
            others = [i for i in sorted(self.holders) if self.holders[i] != name]
            free = self.free()
            raise PlacementError(
                f"model `{name}` needs {need.describe()}"
                + (f", holds {_ids(own)}" if own else "")
                + f" and {len(free)} other{'s are' if len(free) != 1 else ' is'} free"
                + (f" ({_ids(free)})" if free else "")
                + f": {self._holders_text(others)}"
            )
        return sorted(picked)

    def claim(self, name: str, need: CardNeed) -> tuple[Card, ...]:
        """Give ``name`` the cards of ``need`` now (keeping those it holds that still fit), or raise
        PlacementError (409 naming each holder; 422 for cards the host does not have)."""
        ids = self._pick(name, need)
        for i in ids:
            self.holders[i] = name
        return tuple(self.cards[i] for i in ids)

    async def wait_claim(
        self, name: str, need: CardNeed, waiting: Callable[[str | None], None]
    ) -> tuple[Card, ...]:
        """Claim, waiting while the cards are held by other models (``waiting(why)`` says why; None once
        claimed); a 422 (cards the host lacks) is raised at once."""
        while True:
            try:
                cards = self.claim(name, need)
            except PlacementError as error:
                if error.status != 409:
                    raise
                waiting(f"a free card: {error.message}")
                await asyncio.sleep(WAIT_POLL_S)
                continue
            waiting(None)
            return cards

    def release(self, name: str, keep: Sequence[int] = ()) -> list[int]:
        """Give back ``name``'s cards except ``keep``; the ids given back."""
        freed = [i for i, holder in self.holders.items() if holder == name and i not in keep]
        for i in freed:
            del self.holders[i]
        return sorted(freed)

    def as_list(self) -> list[dict[str, object]]:
        return [{**card.as_dict(), "holder": self.holders.get(i)} for i, card in sorted(self.cards.items())]


def card_env(cards: Sequence[Card], engine_env: Mapping[str, str]) -> dict[str, str]:
    """The variables an engine on ``cards`` gets: TT_VISIBLE_DEVICES (tt-umd opens only those), and
    MESH_DEVICE when the model sets none and the boards name a mesh (tt-metal's models read it)."""
    if not cards:
        return {}
    env = {VISIBLE_DEVICES: visible_devices(cards)}
    mesh = mesh_for(cards)
    if MESH_DEVICE not in engine_env and mesh is not None:
        env[MESH_DEVICE] = mesh
    return env
