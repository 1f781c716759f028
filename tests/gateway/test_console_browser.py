"""The gateway's web console (/ui) in a real browser: Debian's Chromium, headless, driven by Playwright.

The console talks to the real gateway of tests/gateway/conftest.py (two SmolLM2 engines on the host
backend). Screenshots are written to ``test-artifacts/console/`` at the repository root (ignored by git)
so a run leaves something to look at; each test's assertions are about what the page shows.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.gateway.conftest import MODEL_A, MODEL_B, GatewayHandle

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
SWAP_TIMEOUT_MS = 600_000  # a replacement engine starts beside the old one on a busy 2-core machine
VIEWPORT = {"width": 1440, "height": 1000}
# --no-sandbox: Chromium refuses to start its sandbox as root, which is how CI runs. The rest keep it
# from reaching for Google's hosts, which a closed network refuses (slow, noisy starts).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: `apt-get install -y chromium` (or `make chromium`)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        expect.set_options(timeout=20_000)  # the console polls every 2 s; a loaded machine is slower
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors in the console page: {errors}"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def api(gateway: GatewayHandle, path: str) -> dict:
    response = requests.get(f"{gateway.base_url}{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def model_entry(gateway: GatewayHandle, name: str) -> dict:
    return next(m for m in api(gateway, "/admin/api/state")["models"] if m["name"] == name)


def swapped_args(args: list[str]) -> list[str]:
    """``args`` with a different --max-num-seqs: a real change that leaves max_model_len alone."""
    args = list(args)
    if "--max-num-seqs" in args:
        i = args.index("--max-num-seqs") + 1
        args[i] = "6" if args[i] != "6" else "8"
        return args
    return [*args, "--max-num-seqs", "6"]


def send_traffic(gateway: GatewayHandle, n: int = 3) -> None:
    """A few real completions, so the charts have something to draw."""
    for i in range(n):
        response = requests.post(
            f"{gateway.base_url}/v1/completions",
            json={"model": MODEL_A, "prompt": f"Count to {i + 3}:", "max_tokens": 16, "temperature": 0},
            timeout=120,
        )
        assert response.status_code == 200, response.text


@pytest.mark.server
@pytest.mark.engine
def test_console_shows_the_gateway_and_swaps_a_model(gateway: GatewayHandle, page: Page) -> None:
    page.goto(f"{gateway.base_url}/ui")
    expect(page).to_have_title("tt-serve gateway")

    # The backend inventory: exactly the backends the API lists, with their installed state.
    inventory = api(gateway, "/admin/api/backends")["backends"]
    rows = page.locator("#backends-body tr")
    expect(rows).to_have_count(len(inventory))
    for backend in inventory:
        row = page.locator(f'#backends-body tr[data-backend="{backend["name"]}"]')
        expect(row.locator("td").nth(1)).to_have_text("yes" if backend["installed"] else "no")
        # Each backend's own environment: interpreter, Python and vLLM versions.
        vllm = f"vLLM {backend['vllm']['version']} ({backend['vllm']['distribution']})"
        expect(row.get_by_test_id("environment")).to_have_text(
            f"{backend['python']}Python {backend['python_version']} · {vllm}"
        )

    # Both models, serving, with their backend; actions disabled until the token is given.
    for name in (MODEL_A, MODEL_B):
        row = page.locator(f'tr[data-model="{name}"]')
        expect(row.get_by_test_id("state")).to_have_text("serving")
        expect(row.locator("td").nth(2)).to_have_text("host")
        expect(row.get_by_role("button", name="Swap")).to_be_disabled()
    expect(page.get_by_test_id("actions-hint")).to_have_text(
        "enter the admin token (top right) to swap, add or remove models"
    )
    total = len(api(gateway, "/admin/api/state")["models"])  # other tests may have added models
    expect(page.get_by_test_id("overall")).to_have_text(f"healthy · {total} of {total} serving")

    # The charts draw the engines' metrics once the gateway has scraped them under some traffic.
    send_traffic(gateway)
    expect(page.locator(".chart canvas")).to_have_count(4, timeout=60_000)

    # A wrong token: the gateway's refusal is shown verbatim beside the action.
    page.fill("#token-input", "not-the-token")
    page.click("#token-save")
    row_b = page.locator(f'tr[data-model="{MODEL_B}"]')
    before = model_entry(gateway, MODEL_B)
    row_b.get_by_role("button", name="Swap").click()
    page.fill("#f-args", shlex.join(swapped_args(before["engine_args"])))
    with page.expect_response(re.compile(rf"/admin/api/models/{MODEL_B}/swap$")) as refused:
        page.locator("#panel button[type=submit]").click()
    assert refused.value.status == 403
    message = refused.value.json()["error"]["message"]
    expect(page.get_by_test_id("panel-error")).to_have_text(f"HTTP 403: {message}")
    expect(page.get_by_test_id("token-status")).to_have_text("token rejected")

    # The right token, and the swap: "swapping…" while it runs, then a new generation and pid, serving.
    page.fill("#token-input", gateway.admin_token)
    page.click("#token-save")
    expect(page.get_by_test_id("token-status")).to_have_text("token set for this session")
    assert page.evaluate("sessionStorage.getItem('tt-serve.admin-token')") == gateway.admin_token

    # Arguments the gateway refuses: its reason, verbatim; smol-b is untouched.
    page.fill("#f-args", "--max-num-seqs 6 --port 9999")
    with page.expect_response(re.compile(rf"/admin/api/models/{MODEL_B}/swap$")) as refused:
        page.locator("#panel button[type=submit]").click()
    assert refused.value.status == 422
    message = refused.value.json()["error"]["message"]
    assert "--port" in message, message
    expect(page.get_by_test_id("panel-error")).to_have_text(f"HTTP 422: {message}")
    assert model_entry(gateway, MODEL_B)["generation"] == before["generation"]
    expect(row_b.get_by_test_id("generation")).to_have_text(str(before["generation"]))

    page.fill("#f-args", shlex.join(swapped_args(before["engine_args"])))
    new_args = swapped_args(before["engine_args"])
    started = time.time()
    with page.expect_response(
        re.compile(rf"/admin/api/models/{MODEL_B}/swap$"), timeout=SWAP_TIMEOUT_MS
    ) as swapped:
        page.locator("#panel button[type=submit]").click()
        expect(row_b.get_by_test_id("swapping")).to_be_visible()
        # The replacement's start-up phase, as its engine reports it, beside the model that keeps serving.
        expect(row_b.get_by_test_id("pending-progress")).to_have_text(
            re.compile(rf"^replacement generation {before['generation'] + 1}: .+ · \d+ s$")
        )
        expect(page.get_by_test_id("panel-status")).to_contain_text(f"swapping {MODEL_B}…")
        expect(row_b.get_by_test_id("state")).to_have_text("serving")  # the old engine serves meanwhile
        shot(page, "swap-in-progress")
    assert swapped.value.status == 200, swapped.value.text()
    entry = swapped.value.json()
    assert entry["generation"] == before["generation"] + 1
    assert entry["pid"] != before["pid"]
    assert entry["engine_args"] == new_args

    expect(page.get_by_test_id("panel-status")).to_contain_text(
        f"{MODEL_B} serving: generation {entry['generation']}, pid {entry['pid']}"
    )
    expect(row_b.get_by_test_id("swapping")).to_have_count(0)
    expect(row_b.get_by_test_id("state")).to_have_text("serving")
    expect(row_b.get_by_test_id("generation")).to_have_text(str(entry["generation"]))
    expect(row_b.get_by_test_id("pid")).to_have_text(str(entry["pid"]))
    # The console quotes engine args as shlex does.
    expect(row_b.locator("td.args code")).to_have_text(shlex.join(new_args))

    # The swap is in the event log, newest first.
    events = [e for e in api(gateway, "/admin/api/events")["events"] if e["model"] == MODEL_B]
    assert events and events[-1]["t"] >= started, events[-3:]
    who = page.locator(".who", has_text=re.compile(rf"^{re.escape(MODEL_B)}$"))
    newest = page.get_by_test_id("events").locator("li").filter(has=who).first
    expect(newest.locator(".msg")).to_have_text(events[-1]["message"])
    shot(page, "after-swap")


@pytest.mark.server
def test_read_only_console_disables_actions(read_only_gateway: GatewayHandle, page: Page) -> None:
    page.goto(f"{read_only_gateway.base_url}/ui")
    expect(page.get_by_test_id("mode")).to_have_text("read-only")
    expect(page.locator("#models-body")).to_have_text("No models configured.")
    hint = "read-only gateway: start it with --admin-token or TT_SERVE_ADMIN_TOKEN to swap, add or remove"
    expect(page.get_by_test_id("actions-hint")).to_have_text(hint)
    expect(page.get_by_role("button", name="Add model")).to_be_disabled()
    expect(page.get_by_test_id("overall")).to_have_text("no models")
    # A token cannot make a read-only gateway writable: the console does not ask for one.
    expect(page.locator("#token-input")).to_be_disabled()
    expect(page.locator("#token-input")).to_have_attribute("placeholder", "not needed: read-only gateway")
    inventory = api(read_only_gateway, "/admin/api/backends")["backends"]
    expect(page.locator("#backends-body tr")).to_have_count(len(inventory))
    shot(page, "read-only")
