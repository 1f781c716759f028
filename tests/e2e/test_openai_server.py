"""vLLM's OpenAI-compatible server with the tt platform on the host device, through the openai client."""

from __future__ import annotations

import openai
import pytest
import requests

from tests.e2e.conftest import MAX_MODEL_LEN, SERVED_NAME
from tests.e2e.reference import transformers_greedy
from tests.e2e.server import RunningServer

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(plugin_server: RunningServer) -> RunningServer:
    return plugin_server  # shared with the other HTTP tests (conftest.py)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused")


def test_log_names_the_platform_and_device(server):
    assert "Platform tt (tt-vllm-plugin) active on the host device" in server.log()
    assert "tt worker on the host (cpu, float32) device" in server.log()


def test_models_lists_the_served_name(client):
    assert [m.id for m in client.models.list().data] == [SERVED_NAME]


def test_completion(client):
    response = client.completions.create(
        model=SERVED_NAME, prompt="The capital of France is", max_tokens=3, temperature=0.0
    )
    assert response.choices[0].text == " Paris.\n"
    assert response.usage.completion_tokens == 3


def test_chat_completion_uses_the_chat_template(client, default_model_path):
    from transformers import AutoTokenizer

    messages = [{"role": "user", "content": "What is 2+2?"}]
    response = client.chat.completions.create(
        model=SERVED_NAME, messages=messages, max_tokens=12, temperature=0.0
    )
    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if not isinstance(prompt_ids, list):  # transformers 5 returns a BatchEncoding
        prompt_ids = prompt_ids["input_ids"]
    expected_ids = transformers_greedy(default_model_path, [prompt_ids], 12)[0]
    if tokenizer.eos_token_id in expected_ids:
        expected_ids = expected_ids[: expected_ids.index(tokenizer.eos_token_id)]
    assert response.choices[0].message.content == tokenizer.decode(expected_ids, skip_special_tokens=True)
    assert response.usage.prompt_tokens == len(prompt_ids)


def test_streaming_arrives_in_pieces_and_matches(client):
    kwargs = dict(model=SERVED_NAME, prompt="Once upon a time", max_tokens=16, temperature=0.0)
    whole = client.completions.create(**kwargs).choices[0].text
    chunks = [c.choices[0].text for c in client.completions.create(stream=True, **kwargs) if c.choices]
    assert len([c for c in chunks if c]) > 1
    assert "".join(chunks) == whole


def test_prompt_longer_than_context_is_a_400_and_the_server_keeps_serving(client, server):
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model=SERVED_NAME, prompt=[1] * 1500, max_tokens=4)
    assert error.value.status_code == 400
    assert f"maximum context length is {MAX_MODEL_LEN} tokens" in str(error.value)
    assert requests.get(f"{server.base_url}/health", timeout=5).status_code == 200
    again = client.completions.create(model=SERVED_NAME, prompt="Hi", max_tokens=2, temperature=0.0)
    assert again.usage.completion_tokens == 2


def test_prompt_logprobs_over_http(client):
    response = client.completions.create(
        model=SERVED_NAME, prompt="The capital of France is", max_tokens=1, extra_body={"prompt_logprobs": 2}
    )
    prompt_logprobs = response.choices[0].model_extra["prompt_logprobs"]
    assert prompt_logprobs[0] is None  # nothing scores the first prompt token
    assert len(prompt_logprobs) == response.usage.prompt_tokens
    assert all(len(position) >= 2 for position in prompt_logprobs[1:])
