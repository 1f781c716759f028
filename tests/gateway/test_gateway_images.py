"""Images through a real gateway: a model's entry says it takes images (the plugin's TT class declares it,
asked in the backend's environment when the engine is prepared) and the console shows it; image chats are
relayed unchanged (the gateway's answer is the engine's own, token for token); a body over
``gateway.max_request_bytes`` is a 413 naming the limit and the key, declared (Content-Length) or not
(chunked), and the gateway keeps serving.

The engine serves the tiny random-weight Gemma 3 of tests/e2e (images need torchvision: this file runs in
.venv-vision, ``make test-vision``, where the host backend's interpreter is that environment's).
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.image_chat import chat_body, token_ids
from tests.e2e.tiny_gemma3 import save_tiny_gemma3
from tests.e2e.tiny_vlm import random_image
from tests.e2e.vision_env import requires_vision_env
from tests.gateway.conftest import GatewayHandle

pytestmark = [pytest.mark.engine, pytest.mark.server, requires_vision_env]

MODEL = "tiny-gemma3"
LIMIT = 256 * 2**10  # small, so a few hundred kilobytes of image are over it
LIMIT_MESSAGE = (
    f"the request body is larger than this gateway's limit of {LIMIT} bytes (256 KiB): send less (fewer "
    "or smaller images), or raise gateway.max_request_bytes in the gateway's config file"
)
GATEWAY_TOML = """\
[gateway]
host = "127.0.0.1"
port = {{port}}
start_timeout_s = 600
max_request_bytes = {limit}

[[gateway.models]]
name = "{name}"
model = "{folder}"
backend = "host"
vllm_args = ["--dtype", "float32", "--max-model-len", "256", "--max-num-seqs", "4"]
tt = {{{{ kv_cache_tokens = 2048 }}}}
"""


@pytest.fixture(scope="module")
def image_gateway(start_gateway, tmp_path_factory) -> Iterator[GatewayHandle]:
    folder = save_tiny_gemma3(Path(tmp_path_factory.mktemp("gateway_gemma3")))
    template = GATEWAY_TOML.format(limit=LIMIT, name=MODEL, folder=folder)
    yield start_gateway(template, secrets.token_urlsafe(24))


def _chat_body(images: list) -> dict:
    return chat_body(MODEL, "Describe it.", images, max_tokens=8)


def _entry(gateway: GatewayHandle) -> dict:
    state = requests.get(f"{gateway.base_url}/admin/api/state", timeout=10).json()
    return next(m for m in state["models"] if m["name"] == MODEL)


def test_the_model_entry_says_it_takes_images(image_gateway: GatewayHandle) -> None:
    assert _entry(image_gateway)["inputs"] == {
        "architecture": "Gemma3ForConditionalGeneration",
        "inputs": ["text", "image"],
        "max_images_per_prompt": None,  # the class sets no limit: vLLM's applies
    }


def test_the_console_shows_that_the_model_takes_images(image_gateway: GatewayHandle) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.gateway.test_console_browser import CHROMIUM_ARGS

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: `apt-get install -y chromium` (or `make chromium`)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{image_gateway.base_url}/ui")
            shown = page.locator(f'tr[data-model="{MODEL}"] [data-testid="model-inputs"]')
            sync_api.expect(shown).to_have_text("takes text and images", timeout=20_000)
            assert not errors, f"JavaScript errors in the console page: {errors}"
        finally:
            browser.close()


def test_image_chats_are_relayed_unchanged(image_gateway: GatewayHandle) -> None:
    entry = _entry(image_gateway)
    direct_url = f"http://127.0.0.1:{entry['port']}/v1/chat/completions"
    for images in ([random_image(1, (60, 20))], [random_image(2), random_image(3, (20, 44))], []):
        body = _chat_body(images)
        via = requests.post(f"{image_gateway.base_url}/v1/chat/completions", json=body, timeout=300)
        assert via.headers["x-tt-serve-engine"] == f"{MODEL}/{entry['generation']}/{entry['pid']}"
        assert token_ids(via) == token_ids(requests.post(direct_url, json=body, timeout=300))


def test_a_body_over_the_limit_is_413_and_the_gateway_keeps_serving(image_gateway: GatewayHandle) -> None:
    url = f"{image_gateway.base_url}/v1/chat/completions"
    big = json.dumps(_chat_body([random_image(5, (400, 300))])).encode()
    assert len(big) > LIMIT
    declared = requests.post(url, data=big, headers={"Content-Type": "application/json"}, timeout=60)
    chunked = requests.post(
        url,
        data=(big[i : i + 65536] for i in range(0, len(big), 65536)),  # no Content-Length: chunked
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    for refused in (declared, chunked):
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == {
            "message": LIMIT_MESSAGE,
            "type": "RequestTooLargeError",
            "code": 413,
        }
    assert requests.get(f"{image_gateway.base_url}/health", timeout=10).status_code == 200
    token_ids(requests.post(url, json=_chat_body([random_image(6)]), timeout=300))
