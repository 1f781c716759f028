"""Sampling on the model's device (sample_on_device_mode) through vllm.LLM, against vLLM's sampler.

One engine with ``sample_on_device_mode="all"``; each step samples on the device unless a request in it
needs vLLM's sampler, so the same engine runs both paths: a request with ``logprobs`` set (which
changes no token) goes to the host. The runner's step counters say which path ran.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.e2e.in_process import in_process_llm

pytestmark = pytest.mark.engine

PROMPTS = [
    "The capital of France is",
    "Write a haiku about the sea.",
    "1, 2, 3, 4,",
    # Longer than max_num_batched_tokens, so it is prefilled in chunks (discarded samples in between).
    "In a distant galaxy, far beyond the reach of the brightest telescopes, a small team of engineers "
    "was building a machine that could think. Their first question to it was simple, and the answer "
    "surprised every one of them:",
    "def fibonacci(n):",
]
MAX_TOKENS = 20
MAX_BATCHED_TOKENS = 48
# Statistical check: NUM_SAMPLES seeded one-token requests per path for one prompt (seeds fixed, so
# the draws, and the test, are deterministic). The total variation between the draws and the exact
# top-k/top-p distribution must stay below TV_FACTOR times what NUM_SAMPLES exact draws give on
# average, 0.5 * sum_i sqrt(2 p_i (1 - p_i) / (pi N)) (normal approximation of each count).
NUM_SAMPLES = 400
SAMPLING = {"temperature": 1.0, "top_k": 20, "top_p": 0.95}
TV_FACTOR = 2.0


@pytest.fixture(scope="module")
def llm(default_model_path):
    # In-process engine core, so collective_rpc can read (and in one test switch) the runner's state.
    with in_process_llm(
        model=default_model_path,
        dtype="float32",
        max_model_len=512,
        max_num_seqs=32,
        max_num_batched_tokens=MAX_BATCHED_TOKENS,
        seed=0,
        additional_config={"tt": {"kv_cache_tokens": 16384, "sample_on_device_mode": "all"}},
    ) as engine:
        yield engine


def _steps(llm) -> dict[str, int]:
    return llm.collective_rpc(lambda worker: dict(worker.model_runner.sampling_steps))[0]


def _generate(llm, prompts, params):
    from vllm.inputs import TokensPrompt

    tokenizer = llm.get_tokenizer()
    inputs = [TokensPrompt(prompt_token_ids=tokenizer.encode(p)) for p in prompts]
    return llm.generate(inputs, params, use_tqdm=False)


def _counted(llm, prompts, params):
    before = _steps(llm)
    outputs = _generate(llm, prompts, params)
    after = _steps(llm)
    return outputs, {path: after[path] - before[path] for path in after}


def test_greedy_tokens_are_the_same_on_the_device_and_with_vllms_sampler(llm):
    from vllm import SamplingParams

    greedy = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    on_device, device_steps = _counted(llm, PROMPTS, greedy)
    assert device_steps["host"] == 0 and device_steps["device"] >= MAX_TOKENS

    # logprobs=0 changes no token but needs vLLM's sampler: every step goes to the host.
    on_host, host_steps = _counted(llm, PROMPTS, SamplingParams(**{**_fields(greedy), "logprobs": 0}))
    assert host_steps["device"] == 0 and host_steps["host"] >= MAX_TOKENS
    for prompt, device, host in zip(PROMPTS, on_device, on_host, strict=True):
        assert len(device.outputs[0].token_ids) == MAX_TOKENS
        assert device.outputs[0].token_ids == host.outputs[0].token_ids, prompt


def test_one_request_needing_vllms_sampler_sends_its_steps_to_the_host(llm):
    from vllm import SamplingParams

    plain = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)
    penalised = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True, repetition_penalty=1.3)
    from vllm.inputs import TokensPrompt

    tokenizer = llm.get_tokenizer()
    inputs = [TokensPrompt(prompt_token_ids=tokenizer.encode(p)) for p in PROMPTS[:3]]
    before = _steps(llm)
    llm.generate(inputs, [plain, penalised, plain], use_tqdm=False)
    after = _steps(llm)
    assert after["device"] == before["device"]
    assert after["host"] > before["host"]


def test_decode_only_mode_samples_prefill_steps_on_the_host_and_decode_steps_on_the_device(llm):
    from vllm import SamplingParams

    from tt_vllm_plugin.worker.sampling_mode import SamplingOptions

    greedy = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    reference = [o.outputs[0].token_ids for o in _generate(llm, PROMPTS, greedy)]

    def set_mode(mode):
        def apply(worker) -> None:
            worker.model_runner.sampling_options = SamplingOptions(mode, False)

        return apply

    llm.collective_rpc(set_mode("decode_only"))
    try:
        outputs, steps = _counted(llm, PROMPTS, greedy)
    finally:
        llm.collective_rpc(set_mode("all"))
    assert steps["host"] >= 1 and steps["device"] >= MAX_TOKENS - 1
    assert [o.outputs[0].token_ids for o in outputs] == reference


def _fields(params) -> dict:
    names = ("temperature", "max_tokens", "ignore_eos", "top_k", "top_p", "seed")
    return {name: getattr(params, name) for name in names}


@pytest.fixture(scope="module")
def seeded_draws(llm):
    """First tokens of NUM_SAMPLES seeded requests on each path, and vLLM's top-20 logprobs."""
    from vllm import SamplingParams

    prompt = ["Once upon a time, in a small village,"]
    per_seed = [SamplingParams(max_tokens=1, seed=seed, **SAMPLING) for seed in range(NUM_SAMPLES)]
    device, device_steps = _counted(llm, prompt * NUM_SAMPLES, per_seed)
    host_params = [SamplingParams(**{**_fields(p), "logprobs": 20}) for p in per_seed]
    host, host_steps = _counted(llm, prompt * NUM_SAMPLES, host_params)
    assert device_steps["host"] == 0 and host_steps["device"] == 0
    # Raw (unscaled, unfiltered) logprobs of the 20 most likely tokens, from vLLM's sampler.
    top = host[0].outputs[0].logprobs[0]
    raw = {token: entry.logprob for token, entry in top.items() if entry.rank <= 20}
    return {
        "device": [o.outputs[0].token_ids[0] for o in device],
        "host": [o.outputs[0].token_ids[0] for o in host],
        "target": _target_distribution(raw),
    }


def _target_distribution(raw: dict[int, float]) -> dict[int, float]:
    """SAMPLING's distribution from the 20 best raw logprobs (top_k=20 drops every other token)."""
    ranked = sorted(raw.items(), key=lambda item: -item[1])[: SAMPLING["top_k"]]
    scaled = torch.tensor([lp for _, lp in ranked]) / SAMPLING["temperature"]
    probs = scaled.softmax(-1)
    before = probs.cumsum(-1) - probs
    keep = before < SAMPLING["top_p"]
    probs = torch.where(keep, probs, torch.zeros_like(probs))
    probs = probs / probs.sum()
    return {token: float(p) for (token, _), p in zip(ranked, probs, strict=True) if p > 0}


def _total_variation(tokens: list[int], target: dict[int, float]) -> float:
    counts: dict[int, int] = {}
    for token in tokens:
        counts[token] = counts.get(token, 0) + 1
    support = set(counts) | set(target)
    return 0.5 * sum(abs(counts.get(t, 0) / len(tokens) - target.get(t, 0.0)) for t in support)


@pytest.mark.parametrize("path", ["device", "host"])
def test_seeded_draws_follow_the_top_k_top_p_distribution(seeded_draws, path):
    target = seeded_draws["target"]
    assert len(target) > 3, f"the prompt's next-token distribution is too peaked to test: {target}"
    outside = sorted(set(seeded_draws[path]) - set(target))
    assert not outside, f"{path} drew tokens outside the top-k/top-p support: {outside}"
    tv = _total_variation(seeded_draws[path], target)
    expected = 0.5 * sum(math.sqrt(2 * p * (1 - p) / (math.pi * NUM_SAMPLES)) for p in target.values())
    print(f"{path}: total variation {tv:.4f} (exact draws: {expected:.4f}) over {len(target)} tokens")
    assert tv < TV_FACTOR * expected


def test_seeded_device_sampling_is_reproducible_alone_or_in_a_batch(llm, seeded_draws):
    from vllm import SamplingParams

    prompt = ["Once upon a time, in a small village,"]
    seeds = [3, 17, 29]
    again = _generate(
        llm, prompt * len(seeds), [SamplingParams(max_tokens=1, seed=s, **SAMPLING) for s in seeds]
    )
    alone = _generate(llm, prompt, SamplingParams(max_tokens=1, seed=17, **SAMPLING))
    assert [o.outputs[0].token_ids[0] for o in again] == [seeded_draws["device"][s] for s in seeds]
    assert alone[0].outputs[0].token_ids[0] == seeded_draws["device"][17]
    # Different seeds do explore: more than one distinct first token among the draws.
    assert len(set(seeded_draws["device"])) > 1
