"""Bad requests over HTTP to a plugin server: each gets a 4xx naming the problem, and the server lives on.

One table, one server (tests/e2e/conftest.py). After every row the server must still be healthy and answer
a valid greedy request with the known text. The messages asserted are what vLLM 0.32 really says: vLLM's
OpenAI layer and SamplingParams already refuse almost everything here, and we rely on them. The plugin adds
one check (TTPlatform.validate_request): prompt token ids past the *model's* vocabulary, which vLLM lets
through when the tokenizer is larger than the model or absent (--skip-tokenizer-init) and which killed the
engine core (IndexError in the embedding, then HTTP 500 and /health 503 for good) before the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import requests

from tests.e2e.conftest import SERVED_NAME
from tests.e2e.random_models import save_random_model
from tests.e2e.server import free_port, running_server, vllm_api_server_command

pytestmark = pytest.mark.server

VOCAB = 49152  # SmolLM2's model and tokenizer vocabulary


def completion(**fields: object) -> dict:
    return {"model": SERVED_NAME, "prompt": "Hello", "max_tokens": 4, **fields}


def chat(**fields: object) -> dict:
    return {"model": SERVED_NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **fields}


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


class Row(NamedTuple):
    name: str
    endpoint: str  # "completions" or "chat/completions"
    body: dict | bytes  # bytes are sent as they are, with Content-Type: application/json
    status: int
    fragment: str  # must appear in the response body


CMPL, CHAT = "completions", "chat/completions"
LONG_TEXT = "hello " * 2000  # > 512 tokens
INVALID_UTF8 = b'{"model": "%s", "prompt": "\xff\xfe"}' % SERVED_NAME.encode()
INFINITE_TEMPERATURE = b'{"model": "%s", "prompt": "Hi", "temperature": Infinity}' % SERVED_NAME.encode()

ROWS = [
    # The request body itself (FastAPI/pydantic in vLLM's server).
    Row("malformed_json", CMPL, b'{"model": "x", "prompt": ', 400, "JSON decode error"),
    Row("body_not_an_object", CMPL, b"[1, 2, 3]", 400, "Input should be a valid dictionary"),
    Row("empty_body", CMPL, b"", 400, "Field required"),
    Row("invalid_utf8", CMPL, INVALID_UTF8, 400, "There was an error parsing the body"),
    Row("prompt_wrong_type", CMPL, completion(prompt=5), 400, "'loc': 'body.prompt'"),
    Row("max_tokens_wrong_type", CMPL, completion(max_tokens="ten"), 400, "'loc': 'body.max_tokens'"),
    Row("temperature_wrong_type", CMPL, completion(temperature="hot"), 400, "'loc': 'body.temperature'"),
    Row(
        "temperature_infinite",
        CMPL,
        INFINITE_TEMPERATURE,
        400,
        "temperature must be a finite number, got inf",
    ),
    # Lengths.
    Row("max_tokens_negative", CMPL, completion(max_tokens=-1), 400, "max_tokens must be at least 1, got -1"),
    Row("max_tokens_zero", CMPL, completion(max_tokens=0), 400, "max_tokens must be at least 1, got 0"),
    Row(
        "max_completion_tokens_negative",
        CHAT,
        chat(max_completion_tokens=-5),
        400,
        "max_tokens must be at least 1, got -5",
    ),
    Row(
        "max_tokens_huge",
        CMPL,
        completion(max_tokens=10**30),
        400,
        f"max_tokens={10**30} cannot be greater than max_model_len=512",
    ),
    Row("prompt_too_long", CMPL, completion(prompt=LONG_TEXT), 400, "maximum context length is 512 tokens"),
    Row(
        "prompt_ids_too_long",
        CMPL,
        completion(prompt=[1] * 600),
        400,
        "your prompt contains 600 input tokens",
    ),
    Row(
        "chat_too_long",
        CHAT,
        chat(messages=[{"role": "user", "content": LONG_TEXT}]),
        400,
        "maximum context length is 512 tokens",
    ),
    Row(
        "truncate_prompt_tokens_huge",
        CMPL,
        completion(truncate_prompt_tokens=100000),
        400,
        "truncate_prompt_tokens=100000 cannot be greater than max_model_len = 512",
    ),
    Row("empty_prompt", CMPL, completion(prompt=""), 400, "Either prompt or prompt_embeds must be provided"),
    Row("empty_prompt_list", CMPL, completion(prompt=[]), 400, "You must pass at least one prompt"),
    Row(
        "missing_prompt", CMPL, {"model": SERVED_NAME}, 400, "Either prompt or prompt_embeds must be provided"
    ),
    Row(
        "empty_messages", CHAT, chat(messages=[]), 400, "Cannot apply chat template to an empty conversation"
    ),
    Row(
        "too_many_prompts",
        CMPL,
        completion(prompt=["hi"] * 2000),
        400,
        "prompt list length 2000 exceeds the maximum allowed count of 1024",
    ),
    # Model and parameters.
    Row("unknown_model", CMPL, completion(model="gpt-5"), 404, "The model `gpt-5` does not exist"),
    # Unknown fields are ignored by design in vLLM's OpenAI layer (clients send vendor extras).
    Row("unknown_field_ignored", CMPL, completion(frobnicate=3), 200, '"object":"text_completion"'),
    Row(
        "prompt_embeds_not_enabled",
        CMPL,
        {"model": SERVED_NAME, "prompt_embeds": "AAAA", "max_tokens": 4},
        400,
        "You must set `--enable-prompt-embeds` to input `prompt_embeds`",
    ),
    Row(
        "request_chat_template_untrusted",
        CHAT,
        chat(chat_template="{{ 1 }}"),
        400,
        "--trust-request-chat-template is not set",
    ),
    Row(
        "stream_options_without_stream",
        CMPL,
        completion(stream_options={"include_usage": True}),
        400,
        "Stream options can only be defined when `stream=True`",
    ),
    Row("n_zero", CMPL, completion(n=0), 400, "n must be at least 1, got 0"),
    Row("n_oversized", CMPL, completion(n=20000), 400, "n must be at most 16384, got 20000"),
    Row(
        "n_with_greedy", CMPL, completion(n=2, temperature=0.0), 400, "n must be 1 when using greedy sampling"
    ),
    Row("temperature_negative", CMPL, completion(temperature=-1), 400, "temperature must be non-negative"),
    Row("top_p_above_one", CMPL, completion(top_p=2), 400, "top_p must be in (0, 1], got 2.0"),
    Row("logprobs_too_many", CMPL, completion(logprobs=100), 400, "sample logprobs of 100, which is greater"),
    Row(
        "prompt_logprobs_too_many",
        CMPL,
        completion(prompt_logprobs=100),
        400,
        "prompt logprobs of 100, which is greater",
    ),
    Row("too_many_stop_strings", CMPL, completion(stop=["a"] * 100), 400, "List should have at most 4 items"),
    Row(
        "too_many_bad_words",
        CMPL,
        completion(bad_words=[f"w{i}" for i in range(200)]),
        400,
        "Too many bad words after tokenization",
    ),
    # Structured output.
    Row(
        "json_schema_invalid_type",
        CHAT,
        chat(response_format=schema_format({"type": "nonsense"})),
        400,
        "Grammar error: Invalid type: nonsense",
    ),
    Row(
        "json_schema_invalid_properties",
        CHAT,
        chat(response_format=schema_format({"type": "object", "properties": 5})),
        400,
        "Grammar error: properties must be an object",
    ),
    Row(
        "json_schema_missing",
        CHAT,
        chat(response_format={"type": "json_schema"}),
        400,
        "the 'json_schema' field must be provided",
    ),
    Row("response_format_unknown", CHAT, chat(response_format={"type": "xml"}), 400, "body.response_format"),
    Row("regex_invalid", CMPL, completion(structured_outputs={"regex": "(["}), 400, "invalid regex"),
    # Token ids.
    Row(
        "prompt_token_id_out_of_vocab",
        CMPL,
        completion(prompt=[1, 2, VOCAB]),
        400,
        f"Prompt token id {VOCAB} is outside the model's vocabulary (0..{VOCAB - 1})",
    ),
    Row(
        "prompt_token_id_huge",
        CMPL,
        completion(prompt=[[1, 2], [10**12]]),
        400,
        f"Prompt token id {10**12} is outside the model's vocabulary",
    ),
    Row(
        "prompt_token_id_negative",
        CMPL,
        completion(prompt=[1, -5]),
        400,
        "Input should be greater than or equal to 0",
    ),
    Row(
        "logit_bias_out_of_vocab",
        CMPL,
        completion(logit_bias={str(VOCAB): 1}),
        400,
        f"token_id(s) [{VOCAB}] in logit_bias contain out-of-vocab token ids",
    ),
    Row(
        "logit_bias_negative_id",
        CMPL,
        completion(logit_bias={"-1": 1}),
        400,
        "token_id(s) [-1] in logit_bias contain out-of-vocab token ids",
    ),
    Row(
        "logit_bias_not_an_id",
        CMPL,
        completion(logit_bias={"abc": 1}),
        400,
        "logit_bias contains key(s) that cannot be converted to integer token IDs: ['abc']",
    ),
    # Huge bias values are clamped to [-100, 100] by SamplingParams; a whole-vocabulary bias map is
    # accepted (vLLM sets no count limit). Both must just work: +100 on token 5 makes it the greedy pick.
    Row(
        "logit_bias_huge_value",
        CMPL,
        completion(logit_bias={"5": 1e30}, temperature=0.0, return_token_ids=True),
        200,
        '"token_ids":[5,5,5,5]',
    ),
    Row(
        "logit_bias_whole_vocab",
        CMPL,
        completion(logit_bias={str(i): 0.5 for i in range(VOCAB)}, temperature=0.0),
        200,
        '"object":"text_completion"',
    ),
    Row(
        "allowed_token_ids_out_of_vocab",
        CMPL,
        completion(allowed_token_ids=[VOCAB]),
        400,
        "allowed_token_ids contains out-of-vocab token id",
    ),
    Row(
        "allowed_token_ids_empty",
        CMPL,
        completion(allowed_token_ids=[]),
        400,
        "allowed_token_ids is not None and empty",
    ),
    Row(
        "stop_token_ids_out_of_vocab",
        CMPL,
        completion(stop_token_ids=[VOCAB]),
        400,
        f"token_id(s) [{VOCAB}] in stop_token_ids contain out-of-vocab token ids",
    ),
    Row(
        "stop_token_ids_negative",
        CMPL,
        completion(stop_token_ids=[-3]),
        400,
        "token_id(s) [-3] in stop_token_ids contain out-of-vocab token ids",
    ),
]


def post(base_url: str, endpoint: str, body: dict | bytes) -> requests.Response:
    url = f"{base_url}/v1/{endpoint}"
    if isinstance(body, bytes):
        return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120)
    return requests.post(url, json=body, timeout=120)


def assert_still_serving(base_url: str) -> None:
    assert requests.get(f"{base_url}/health", timeout=10).status_code == 200
    body = {"model": SERVED_NAME, "prompt": "The capital of France is", "max_tokens": 3, "temperature": 0.0}
    response = post(base_url, CMPL, body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"] == " Paris.\n"


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_request_is_refused_and_the_server_lives_on(plugin_server, row: Row):
    response = post(plugin_server.base_url, row.endpoint, row.body)
    assert response.status_code == row.status, response.text
    assert row.fragment in response.text, response.text
    assert_still_serving(plugin_server.base_url)


def test_non_json_content_type_is_refused(plugin_server):
    response = requests.post(
        f"{plugin_server.base_url}/v1/completions",
        data="hello",
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "Only 'application/json' is allowed" in response.text
    assert_still_serving(plugin_server.base_url)


@pytest.fixture(scope="module")
def tokenizerless_server(tmp_path_factory):
    """A 512-token-vocabulary random model served with --skip-tokenizer-init: vLLM checks no prompt ids."""
    folder = save_random_model("LlamaForCausalLM", Path(tmp_path_factory.mktemp("random_llama")))
    port = free_port()
    command = vllm_api_server_command(
        str(folder),
        port,
        "--served-model-name",
        "random-llama",
        "--skip-tokenizer-init",
        "--max-model-len",
        "256",
        "--max-num-seqs",
        "4",
        "--additional-config",
        '{"tt": {"kv_cache_tokens": 2048}}',
    )
    log_path = folder / "server.log"
    with running_server(command, log_path, port, env={"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "host"}) as srv:
        yield srv


@pytest.mark.parametrize(
    "prompt", [[1, 2, 512], [[1, 2], [1, 700]]], ids=["at_vocab_size", "in_second_prompt"]
)
def test_prompt_id_past_the_model_vocab_is_refused_by_the_plugin(tokenizerless_server, prompt):
    url = tokenizerless_server.base_url
    response = post(url, CMPL, {"model": "random-llama", "prompt": prompt, "max_tokens": 3})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    bad = max(max(p) if isinstance(p, list) else p for p in prompt)
    assert error["param"] == "prompt"
    assert error["message"].startswith(f"Prompt token id {bad} is outside the model's vocabulary (0..511)")
    assert requests.get(f"{url}/health", timeout=10).status_code == 200
    ok = post(
        url, CMPL, {"model": "random-llama", "prompt": [1, 2, 511], "max_tokens": 3, "temperature": 0.0}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["usage"]["completion_tokens"] == 3
