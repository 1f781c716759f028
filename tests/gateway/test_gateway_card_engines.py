"""Cards on one host, with real engines: a gateway whose device root is a folder of fake
``/dev/tenstorrent/*`` nodes and sysfs entries (two N300 cards), the host backend standing in for the
Metal one (it opens no card, but gets the same variables).

- each engine gets its own card (TT_VISIBLE_DEVICES in its process environment, and MESH_DEVICE named
  from the board), the state shows who holds which card, and a model asking for a held card is refused
  with 409 naming the holder, before any engine starts;
- a configured model that needs a card while none is free waits (503 + Retry-After saying why) and
  starts on the card a removal frees;
- a swap runs stop-then-start on the model's own card; a swap needing more cards than are free is
  refused and the old engine keeps serving;
- without cards (the session gateway) nothing changes: no card in the state, no TT_VISIBLE_DEVICES.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.gateway.conftest import GatewayHandle, stop_gateway
from tests.gateway.test_console_browser import browser, page, shot  # noqa: F401  (fixtures)
from tests.gateway.test_gateway_cards import fake_host

pytestmark = [pytest.mark.engine, pytest.mark.server]
TOKEN = "cards-token"
CARDS_TOML = """\
[gateway]
port = {{port}}
start_timeout_s = 600
drain_timeout_s = 10
device_root = "{root}"

[[gateway.models]]
name = "smol-a"
model = "smollm2-135m-instruct"
backend = "host"
cards = [0]
vllm_args = ["--max-num-seqs", "2", "--max-model-len", "512"]
tt = {{{{ kv_cache_tokens = 4096 }}}}

[[gateway.models]]
name = "smol-b"
model = "smollm2-135m-instruct"
backend = "host"
cards = 1
vllm_args = ["--max-num-seqs", "2", "--max-model-len", "512"]
tt = {{{{ kv_cache_tokens = 4096 }}}}

[[gateway.models]]
name = "smol-w"
model = "smollm2-135m-instruct"
backend = "host"
cards = 1
vllm_args = ["--max-num-seqs", "2", "--max-model-len", "512"]
tt = {{{{ kv_cache_tokens = 4096 }}}}
"""


def _state(gateway: GatewayHandle) -> dict:
    return requests.get(f"{gateway.base_url}/admin/api/state", timeout=10).json()


def _entry(gateway: GatewayHandle, name: str) -> dict | None:
    return next((m for m in _state(gateway)["models"] if m["name"] == name), None)


def _wait(gateway: GatewayHandle, name: str, state: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = _entry(gateway, name)
        if entry is not None and entry["state"] == state:
            return entry
        if entry is not None and entry["state"] == "failed":
            raise AssertionError(f"{name} failed: {entry['last_error']}\n{gateway.log()[-4000:]}")
        time.sleep(0.5)
    raise TimeoutError(f"{name} never reached {state}: {_entry(gateway, name)}")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _complete(gateway: GatewayHandle, name: str) -> requests.Response:
    return requests.post(
        f"{gateway.base_url}/v1/completions",
        json={"model": name, "prompt": "Cards:", "max_tokens": 4, "temperature": 0},
        timeout=300,
    )


@pytest.fixture(scope="module")
def cards_gateway(start_gateway, tmp_path_factory: pytest.TempPathFactory):
    root = fake_host(
        tmp_path_factory.mktemp("host"), {0: ("0000:02:00.0", "n300"), 1: ("0000:03:00.0", "n300")}
    )
    handle = start_gateway(CARDS_TOML.format(root=root), TOKEN, wait=False)
    yield handle
    stop_gateway(handle)


def test_each_engine_gets_its_own_card_and_a_held_card_is_refused(cards_gateway: GatewayHandle) -> None:
    gateway = cards_gateway
    a, b = _wait(gateway, "smol-a", "serving"), _wait(gateway, "smol-b", "serving")
    assert (a["cards"], b["cards"]) == ([0], [1])
    for entry, card in ((a, "0"), (b, "1")):
        env = _environ(entry["pid"])
        assert (env["TT_VISIBLE_DEVICES"], env["MESH_DEVICE"]) == (card, "N300")
    holders = {c["id"]: (c["holder"], c["board"], c["pci_address"]) for c in _state(gateway)["cards"]}
    assert holders == {0: ("smol-a", "n300", "0000:02:00.0"), 1: ("smol-b", "n300", "0000:03:00.0")}

    # smol-w needs a card and none is free: it waits, its requests get 503 + Retry-After saying why.
    waiting = _entry(gateway, "smol-w")
    assert waiting["state"] == "starting" and waiting["pid"] is None and waiting["cards"] == []
    answer = _complete(gateway, "smol-w")
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 1
    assert (
        "waiting for a free card: model `smol-w` needs 1 card (cards = 1) and 0 others are free: card 0 is "
        "held by model `smol-a`; card 1 is held by model `smol-b`" in answer.json()["error"]["message"]
    )

    # An added model asking for a held card: 409 naming the holder, and no engine started.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"name": "smol-c", "model": "smollm2-135m-instruct", "backend": "host", "cards": [0]}
    added = requests.post(f"{gateway.base_url}/admin/api/models", json=body, headers=auth, timeout=300)
    assert added.status_code == 409
    assert (
        added.json()["error"]["message"]
        == "model `smol-c` asks for card 0 (cards = [0]): card 0 is held by model `smol-a`"
    )
    assert _entry(gateway, "smol-c") is None
    assert _complete(gateway, "smol-a").status_code == 200


def test_the_console_shows_who_holds_which_card(cards_gateway: GatewayHandle, page: Page) -> None:  # noqa: F811
    page.goto(f"{cards_gateway.base_url}/ui")
    cards = page.get_by_test_id("cards")
    expect(cards.locator("[data-card='0']")).to_have_text("0 n300: smol-a")
    expect(cards.locator("[data-card='1']")).to_have_text("1 n300: smol-b")
    expect(page.locator("tr[data-model='smol-b'] [data-testid='model-cards']")).to_have_text("card 1")
    expect(page.locator("tr[data-model='smol-w'] [data-testid='progress']")).to_contain_text("a free card")
    shot(page, "cards")


def test_swaps_run_on_the_models_own_card(cards_gateway: GatewayHandle) -> None:
    gateway = cards_gateway
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = _wait(gateway, "smol-b", "serving")
    refused = requests.post(
        f"{gateway.base_url}/admin/api/models/smol-b/swap", json={"cards": 2}, headers=auth, timeout=600
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["message"] == (
        "model `smol-b` needs 2 cards (cards = 2), holds 1 and 0 others are free: card 0 is held by model "
        "`smol-a`"
    )
    assert _entry(gateway, "smol-b")["pid"] == before["pid"]  # the old engine was never touched

    swapped = requests.post(
        f"{gateway.base_url}/admin/api/models/smol-b/swap",
        json={"engine_args": ["--max-num-seqs", "3", "--max-model-len", "512"]},
        headers=auth,
        timeout=900,
    )
    assert swapped.status_code == 200, swapped.text
    after = swapped.json()
    assert after["swap"]["mode"] == "stop-then-start" and after["cards"] == [1]
    assert _environ(after["pid"])["TT_VISIBLE_DEVICES"] == "1"
    assert _complete(gateway, "smol-b").status_code == 200


def test_a_removal_frees_the_card_the_waiting_model_gets(cards_gateway: GatewayHandle) -> None:
    gateway = cards_gateway
    auth = {"Authorization": f"Bearer {TOKEN}"}
    removed = requests.delete(f"{gateway.base_url}/admin/api/models/smol-a", headers=auth, timeout=300)
    assert removed.status_code == 200
    w = _wait(gateway, "smol-w", "serving")
    assert w["cards"] == [0] and _environ(w["pid"])["TT_VISIBLE_DEVICES"] == "0"
    assert {c["id"]: c["holder"] for c in _state(gateway)["cards"]} == {0: "smol-w", 1: "smol-b"}
    assert _complete(gateway, "smol-w").status_code == 200


def test_without_cards_nothing_changes(gateway: GatewayHandle) -> None:
    state = _state(gateway)
    assert state["cards"] == []
    for entry in state["models"]:
        if entry["state"] == "serving":
            assert entry["cards"] == [] and "TT_VISIBLE_DEVICES" not in _environ(entry["pid"])
