"""What a client gets over HTTP for features the tt platform (or vLLM 0.32 itself) does not serve.

One plugin OpenAI server for the module. Every refusal is checked for its status code and message, and
followed by a normal request that must still succeed. The answers recorded here are vLLM's own where
vLLM decides before the platform sees the request (routes it never mounts for a generation model,
unknown model names, images for a text-only model, a field it drops); vLLM's native CPU platform gives
the same ones.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e.conftest import SERVED_NAME
from tests.e2e.server import RunningServer

pytestmark = pytest.mark.server

PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
# A 1x1 PNG.
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def server(plugin_server: RunningServer) -> RunningServer:
    return plugin_server  # shared with the other HTTP tests (conftest.py)


def _post(server, path: str, body: dict) -> requests.Response:
    return requests.post(f"{server.base_url}{path}", json=body, timeout=120)


def _completion(server, **extra) -> requests.Response:
    body = {"model": SERVED_NAME, "prompt": "The capital of France is", "max_tokens": 3, "temperature": 0.0}
    return _post(server, "/v1/completions", {**body, **extra})


def _still_serving(server) -> None:
    response = _completion(server)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"] == " Paris.\n"


def _error_message(response: requests.Response) -> str:
    body = response.json()
    return body["error"]["message"] if "error" in body else body["detail"]


@pytest.mark.parametrize("path", ["/v1/embeddings", "/pooling", "/classify", "/score"])
def test_pooling_endpoints_are_not_mounted_for_a_generation_model(server, path):
    # vLLM mounts pooling routes only for models whose runner pools; the tt platform refuses that
    # runner at start-up (tests/unit/test_config_refusals.py), so a client gets vLLM's plain 404.
    response = _post(server, path, {"model": SERVED_NAME, "input": "hello"})
    assert response.status_code == 404
    assert _error_message(response) == "Not Found"
    _still_serving(server)


def test_best_of_is_dropped_by_vllm_itself(server):
    # vLLM 0.32's SamplingParams has no best_of: the OpenAI server accepts the field and ignores it
    # (on every platform), so the platform never sees it. The answer is the plain request's.
    response = _completion(server, best_of=3, n=1)
    assert response.status_code == 200, response.text
    choices = response.json()["choices"]
    assert len(choices) == 1 and choices[0]["text"] == " Paris.\n"


def test_a_lora_adapter_name_as_model_is_an_unknown_model(server):
    # LoRA cannot be enabled on the tt platform (refused at start-up), so no adapter name is served.
    response = _completion(server, model="my-lora-adapter")
    assert response.status_code == 404
    assert _error_message(response) == (
        f"The model `my-lora-adapter` does not exist. Valid aliases: {SERVED_NAME}."
    )
    _still_serving(server)


def test_an_image_in_chat_is_a_400_naming_the_model(server):
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PIXEL}}]
    response = _post(
        server,
        "/v1/chat/completions",
        {"model": SERVED_NAME, "max_tokens": 3, "messages": [{"role": "user", "content": content}]},
    )
    assert response.status_code == 400
    assert _error_message(response) == f"{SERVED_NAME} is not a multimodal model"
    _still_serving(server)


def test_json_schema_response_format_returns_valid_json(server):
    import jsonschema

    response = _post(
        server,
        "/v1/chat/completions",
        {
            "model": SERVED_NAME,
            "max_tokens": 60,
            "temperature": 0.0,
            "messages": [{"role": "user", "content": "Give me a person as JSON."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": PERSON_SCHEMA},
            },
        },
    )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    document = json.loads(choice["message"]["content"])
    jsonschema.validate(document, PERSON_SCHEMA)
    _still_serving(server)
