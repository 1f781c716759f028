"""Chat requests with images for the image tests: ``image_url`` data URIs (PNG, lossless, so the server
decodes the very pixels transformers gets), the request body asking for token ids, and vLLM's OpenAI server
on an image checkpoint with the tt plugin on the host device."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.e2e.server import RunningServer, host_plugin_server


def data_uri(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def chat_messages(text: str, images: list) -> list[dict]:
    """One user turn: the images, then the text."""
    content = [{"type": "image_url", "image_url": {"url": data_uri(image)}} for image in images]
    return [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]


def chat_body(model: str, text: str, images: list, max_tokens: int) -> dict:
    """A greedy chat request of exactly ``max_tokens`` tokens that returns the prompt's and output's ids."""
    return {
        "model": model,
        "messages": chat_messages(text, images),
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "return_token_ids": True,
    }


def post_chat(base_url: str, model: str, text: str, images: list, max_tokens: int) -> requests.Response:
    body = chat_body(model, text, images, max_tokens)
    return requests.post(f"{base_url}/v1/chat/completions", json=body, timeout=300)


def token_ids(response: requests.Response) -> tuple[list[int], list[int]]:
    """(prompt ids, output ids) of a successful chat answer."""
    assert response.status_code == 200, response.text
    body = response.json()
    return body["prompt_token_ids"], body["choices"][0]["token_ids"]


@contextmanager
def image_model_server(
    folder: str, log_dir: Path, served_name: str, max_model_len: int, kv_cache_tokens: int
) -> Iterator[RunningServer]:
    """vLLM's OpenAI server on ``folder`` in fp32 with at most 4 sequences and a small KV pool."""
    with host_plugin_server(
        folder,
        log_dir,
        "--served-model-name",
        served_name,
        "--dtype",
        "float32",
        "--max-model-len",
        str(max_model_len),
        "--max-num-seqs",
        "4",
        "--additional-config",
        json.dumps({"tt": {"kv_cache_tokens": kv_cache_tokens}}),
    ) as running:
        yield running
