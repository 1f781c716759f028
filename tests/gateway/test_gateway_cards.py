"""Cards as a resource on one host, without engines: discovery from fake device nodes and sysfs entries
laid out as tt-kmd lays them out, numbered as tt-umd numbers TT_VISIBLE_DEVICES (PCI address order),
mesh names and the count they imply, and the card pool's rules (one card, one model; 409 naming the
holder; a swap keeps the model's cards and takes more only when free)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tt_serve.gateway.cards import Card, cards_for_mesh, configured, discover, mesh_for
from tt_serve.gateway.placement import CardNeed, CardPool, PlacementError, card_env, card_need
from tt_serve.gateway.settings import ModelSpec


def fake_host(
    root: Path, cards: dict[int, tuple[str | None, str | None]], extra: tuple[str, ...] = ()
) -> Path:
    """``cards``: /dev/tenstorrent/<n> -> (PCI address, tt_card_type); None leaves the sysfs entry out."""
    (root / "dev" / "tenstorrent").mkdir(parents=True)
    for number, (address, board) in cards.items():
        (root / "dev" / "tenstorrent" / str(number)).touch()  # a regular file stands in for the node
        if address is None:
            continue
        pci = root / "sys" / "devices" / "pci0000:00" / address
        pci.mkdir(parents=True)
        entry = root / "sys" / "class" / "tenstorrent" / f"tenstorrent!{number}"
        entry.mkdir(parents=True)
        (entry / "device").symlink_to(pci)
        if board is not None:
            (entry / "tt_card_type").write_text(board + "\n")
    for name in extra:
        (root / "dev" / "tenstorrent" / name).mkdir()
    return root


def test_cards_are_numbered_in_pci_address_order_as_tt_umd_does(tmp_path: Path) -> None:
    root = fake_host(
        tmp_path,
        {0: ("0000:05:00.0", "n300"), 1: ("0000:02:00.0", "n300"), 2: ("0000:03:00.0", "p150a")},
        extra=("by-id",),  # not a device node: tt-umd skips non-numeric names (Ray's count does not)
    )
    assert discover(root) == (
        Card(0, "/dev/tenstorrent/1", "0000:02:00.0", "n300"),
        Card(1, "/dev/tenstorrent/2", "0000:03:00.0", "p150a"),
        Card(2, "/dev/tenstorrent/0", "0000:05:00.0", "n300"),
    )


def test_without_sysfs_cards_keep_the_node_order(tmp_path: Path) -> None:
    root = fake_host(tmp_path, {3: (None, None), 1: (None, None)})
    assert [(c.id, c.node, c.board) for c in discover(root)] == [
        (0, "/dev/tenstorrent/1", None),
        (1, "/dev/tenstorrent/3", None),
    ]


def test_no_device_nodes_no_cards(tmp_path: Path) -> None:
    assert discover(tmp_path) == ()
    assert [c.id for c in configured([2, 0], ())] == [0, 2]  # a configured list stands on its own


@pytest.mark.parametrize(
    ("mesh", "count"),
    [
        ("N150", 1),
        ("N300", 1),
        ("T3K", 4),
        ("N150x4", 4),
        ("P150x8", 8),
        ("TG", 32),
        ("P300", None),
        ("(1, 2)", None),
        (None, None),
    ],
)
def test_a_mesh_name_implies_a_number_of_cards_not_chips(mesh: str | None, count: int | None) -> None:
    assert cards_for_mesh(mesh) == count


def test_boards_name_their_mesh() -> None:
    n300 = [Card(i, f"/dev/tenstorrent/{i}", None, "n300") for i in range(4)]
    assert mesh_for(n300) == "T3K"
    assert mesh_for(n300[:1]) == "N300"
    assert mesh_for([Card(0, "n", None, "p150b"), Card(1, "n", None, "p150a")]) == "P150x2"
    assert mesh_for([Card(0, "n", None, "n150"), Card(1, "n", None, "n300")]) is None
    assert mesh_for([Card(0, "n", None, None)]) is None
    assert card_env(n300[1:3], {}) == {"TT_VISIBLE_DEVICES": "1,2"}
    assert card_env(n300[:1], {}) == {"TT_VISIBLE_DEVICES": "0", "MESH_DEVICE": "N300"}
    assert card_env(n300[:1], {"MESH_DEVICE": "N150"}) == {"TT_VISIBLE_DEVICES": "0"}  # the model's wins
    assert card_env((), {}) == {}


def test_what_a_model_needs() -> None:
    spec = ModelSpec("m", "x")
    assert card_need(spec, {}, needs_hardware=False) == CardNeed(0, None, "its backend needs no card")
    assert card_need(spec, {}, needs_hardware=True) == CardNeed(
        1, None, "its backend needs a Tenstorrent card"
    )
    assert card_need(spec, {"MESH_DEVICE": "T3K"}, needs_hardware=True) == CardNeed(
        4, None, "MESH_DEVICE=T3K"
    )
    assert card_need(ModelSpec("m", "x", cards=2), {}, False) == CardNeed(2, None, "cards = 2")
    assert card_need(ModelSpec("m", "x", cards=(3, 1)), {}, False) == CardNeed(2, (1, 3), "cards = [1, 3]")
    with pytest.raises(PlacementError) as refused:
        card_need(ModelSpec("m", "x", cards=2), {"MESH_DEVICE": "T3K"}, True)
    assert (refused.value.status, refused.value.message) == (
        422,
        "MESH_DEVICE=T3K needs 4 card(s), but cards = 2",
    )


def _pool(n: int = 3) -> CardPool:
    return CardPool([Card(i, f"/dev/tenstorrent/{i}") for i in range(n)])


def test_one_card_one_model_and_409_names_the_holder() -> None:
    pool = _pool()
    assert [c.id for c in pool.claim("a", CardNeed(1, None, "cards = 1"))] == [0]
    assert [c.id for c in pool.claim("b", CardNeed(1, (2,), "cards = [2]"))] == [2]
    with pytest.raises(PlacementError) as held:
        pool.claim("c", CardNeed(1, (0,), "cards = [0]"))
    assert (held.value.status, held.value.message) == (
        409,
        "model `c` asks for card 0 (cards = [0]): card 0 is held by model `a`",
    )
    with pytest.raises(PlacementError) as short:
        pool.claim("c", CardNeed(2, None, "cards = 2"))
    assert short.value.message == (
        "model `c` needs 2 cards (cards = 2) and 1 other is free (1): card 0 is held by model `a`; "
        "card 2 is held by model `b`"
    )
    with pytest.raises(PlacementError) as missing:
        pool.claim("c", CardNeed(1, (7,), "cards = [7]"))
    assert (missing.value.status, missing.value.message) == (
        422,
        "model `c` asks for card 7, which this host does not have (its cards: 0, 1, 2)",
    )
    assert pool.free() == [1]
    assert [(e["id"], e["holder"]) for e in pool.as_list()] == [(0, "a"), (1, None), (2, "b")]


def test_a_swap_keeps_the_models_cards_and_takes_more_only_when_free() -> None:
    pool = _pool()
    pool.claim("a", CardNeed(1, None, "x"))
    pool.claim("b", CardNeed(1, None, "x"))
    assert [c.id for c in pool.claim("b", CardNeed(1, None, "x"))] == [1]  # the same card again
    assert [c.id for c in pool.claim("b", CardNeed(2, None, "x"))] == [1, 2]  # its own, then a free one
    pool.release("b", keep=[1])  # the new engine needs only card 1 after all
    assert pool.free() == [2]
    with pytest.raises(PlacementError) as refused:
        pool.claim("b", CardNeed(3, None, "cards = 3"))
    assert refused.value.message == (
        "model `b` needs 3 cards (cards = 3), holds 1 and 1 other is free (2): card 0 is held by model `a`"
    )
    assert pool.release("b") == [1] and pool.free() == [1, 2]


def test_a_configured_model_waits_for_a_card_until_one_frees() -> None:
    pool = _pool(1)
    pool.claim("a", CardNeed(1, None, "x"))
    seen: list[str | None] = []

    async def scenario() -> tuple[int, ...]:
        waiter = asyncio.create_task(pool.wait_claim("w", CardNeed(1, None, "cards = 1"), seen.append))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        pool.release("a")
        return tuple(c.id for c in await asyncio.wait_for(waiter, 5))

    assert asyncio.run(scenario()) == (0,)
    assert (
        seen[0] == "a free card: model `w` needs 1 card (cards = 1) and 0 others are free: card 0 is held by "
        "model `a`"
    )
    assert seen[-1] is None
