"""vllm.LLM with the tt platform on the embedded default model, against transformers."""

from __future__ import annotations

import gc

import pytest
import torch

from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine

PROMPTS = [
    "The capital of France is",
    "Write a haiku about the sea.",
    "1, 2, 3, 4,",
    "In a distant galaxy, far beyond the reach of the brightest telescopes, a small team of engineers "
    "was building a machine that could think. Their first question to it was simple:",
    "def fibonacci(n):",
    "Hi",
]
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def llm(default_model_path):
    from vllm import LLM

    engine = LLM(
        model=default_model_path,
        dtype="float32",
        max_model_len=1024,
        max_num_seqs=8,
        seed=0,
        additional_config={"tt": {"kv_cache_tokens": 16384}},
    )
    yield engine
    del engine
    gc.collect()


@pytest.fixture(scope="module")
def prompt_ids(llm) -> list[list[int]]:
    tokenizer = llm.get_tokenizer()
    return [tokenizer.encode(p) for p in PROMPTS]


@pytest.fixture(scope="module")
def reference(default_model_path, prompt_ids) -> list[list[int]]:
    return transformers_greedy(default_model_path, prompt_ids, MAX_TOKENS)


def _generate(llm, prompt_ids, **params):
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    sampling = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True, **params)
    return llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], sampling)


def test_platform_is_tt(llm):
    from vllm.platforms import current_platform

    assert current_platform.device_name == "tt"


def test_batched_greedy_matches_transformers(llm, prompt_ids, reference):
    outputs = _generate(llm, prompt_ids)
    got = [list(o.outputs[0].token_ids) for o in outputs]
    for prompt, expected, actual in zip(PROMPTS, reference, got, strict=True):
        assert actual == expected, f"prompt {prompt!r}"


def test_known_continuation(llm):
    from vllm import SamplingParams

    out = llm.generate(["The capital of France is"], SamplingParams(temperature=0.0, max_tokens=3))
    assert out[0].outputs[0].text.startswith(" Paris.")


def test_logprobs_match_transformers(llm, default_model_path, prompt_ids):
    from transformers import AutoModelForCausalLM

    outputs = _generate(llm, prompt_ids[:2], logprobs=5)
    model = AutoModelForCausalLM.from_pretrained(default_model_path, dtype=torch.float32)
    for ids, output in zip(prompt_ids[:2], outputs, strict=True):
        completion = output.outputs[0]
        assert completion.logprobs is not None and len(completion.logprobs) == MAX_TOKENS
        first = completion.logprobs[0]
        with torch.inference_mode():
            expected = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
        top5 = torch.topk(expected, 5)
        assert set(top5.indices.tolist()) <= set(first)
        for token_id, value in zip(top5.indices.tolist(), top5.values.tolist(), strict=True):
            assert first[token_id].logprob == pytest.approx(value, abs=1e-3)
        assert completion.token_ids[0] == top5.indices[0].item()


def test_prompt_longer_than_max_model_len_is_refused(llm):
    from vllm import SamplingParams
    from vllm.exceptions import VLLMValidationError
    from vllm.inputs import TokensPrompt

    with pytest.raises(
        VLLMValidationError,
        match=r"maximum context length is 1024 tokens. However, your prompt contains 1500",
    ):
        llm.generate([TokensPrompt(prompt_token_ids=[1] * 1500)], SamplingParams(max_tokens=4))
    # The engine keeps serving afterwards.
    out = llm.generate(["Hi"], SamplingParams(temperature=0.0, max_tokens=2))
    assert len(out[0].outputs[0].token_ids) == 2


def test_seeded_sampling_is_reproducible_and_independent_of_the_batch(llm):
    from vllm import SamplingParams

    def sample(prompts, seed):
        params = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=seed, max_tokens=16)
        return [list(o.outputs[0].token_ids) for o in llm.generate(prompts, params)]

    alone = sample(["Tell me about cats."], seed=7)[0]
    in_batch = sample(["Tell me about cats.", "Another prompt entirely", "1, 2, 3"], seed=7)[0]
    assert alone == in_batch
    assert sample(["Tell me about cats."], seed=8)[0] != alone


def test_prompt_logprobs_match_transformers(llm, default_model_path, prompt_ids):
    from transformers import AutoModelForCausalLM
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    ids = prompt_ids[3]  # the longest prompt
    params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=3)
    got = llm.generate([TokensPrompt(prompt_token_ids=ids)], params)[0].prompt_logprobs
    model = AutoModelForCausalLM.from_pretrained(default_model_path, dtype=torch.float32)
    with torch.inference_mode():
        expected = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    assert got[0] is None and len(got) == len(ids)
    for position in range(1, len(ids)):
        token = ids[position]
        assert got[position][token].logprob == pytest.approx(expected[position - 1, token].item(), abs=1e-3)
        top3 = torch.topk(expected[position - 1], 3).indices.tolist()
        assert set(top3) <= set(got[position])


def test_prefix_cache_hit_computes_only_the_suffix_and_matches_transformers(llm, default_model_path):
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    tokenizer = llm.get_tokenizer()
    shared = tokenizer.encode("Here is a long shared context about the history of lighthouses. " * 12)
    first, second = shared + tokenizer.encode(" Summarise it."), shared + tokenizer.encode(" Who built them?")
    params = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
    llm.generate([TokensPrompt(prompt_token_ids=first)], params)
    output = llm.generate([TokensPrompt(prompt_token_ids=second)], params)[0]
    assert output.num_cached_tokens >= 16 * (len(shared) // 16 - 1)  # whole blocks of the shared prefix
    assert list(output.outputs[0].token_ids) == transformers_greedy(default_model_path, [second], 12)[0]
