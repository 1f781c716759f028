"""Every request feature gives the same result on the tt platform as on vLLM's own CPU platform.

One request set (REQUESTS) runs through vllm.LLM twice on the embedded model in fp32: on vLLM's native
CPU platform in a child process (a process uses exactly one vLLM platform; TT_VLLM_DEVICE=auto makes
the plugin step aside where there is no Tenstorrent hardware), which writes JSON, and on the tt
platform's host device in this process. Tokens must be identical for every request (greedy and seeded
alike), logprobs equal within LOGPROB_TOLERANCE.

Run this file as a script to produce the native side: ``python tests/e2e/test_native_parity.py OUT``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# Measured on this machine: the largest difference between the two platforms over every logprob of
# REQUESTS was below 1e-4 (both fp32; different kernels for the same math). See test output.
LOGPROB_TOLERANCE = 1e-3
MAX_MODEL_LEN = 512
NATIVE_TIMEOUT = 900

JSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}

# name -> (prompt, SamplingParams keyword arguments). Greedy unless temperature is given.
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "greedy": ("The capital of France is", {"temperature": 0.0, "max_tokens": 24, "ignore_eos": True}),
    "seeded_temperature": ("Once upon a time,", {"temperature": 1.0, "seed": 11, "max_tokens": 24}),
    "seeded_top_p_top_k_min_p": (
        "Once upon a time, there was",
        {"temperature": 0.9, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 7, "max_tokens": 24},
    ),
    "penalties": (
        "List some fruits: apple, banana,",
        {
            "temperature": 0.0,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "repetition_penalty": 1.2,
            "max_tokens": 24,
        },
    ),
    "seeded_with_penalties": (
        "List some fruits: apple, banana,",
        {"temperature": 0.8, "seed": 3, "repetition_penalty": 1.3, "max_tokens": 24},
    ),
    "logit_bias": (
        "The capital of France is",
        {"temperature": 0.0, "logit_bias": {28: 4.0}, "max_tokens": 12},
    ),
    "allowed_token_ids": (
        "Count: 1, 2, 3,",
        {"temperature": 0.0, "allowed_token_ids": list(range(28, 60)), "max_tokens": 12},
    ),
    "bad_words": ("The capital of France is", {"temperature": 0.0, "bad_words": ["Paris"], "max_tokens": 12}),
    "min_tokens": ("Hi", {"temperature": 0.0, "min_tokens": 20, "max_tokens": 30}),
    "stop_string": ("The capital of France is", {"temperature": 0.0, "stop": ["."], "max_tokens": 30}),
    # Token 37 is "5" in SmolLM2's vocabulary.
    "stop_token_ids": ("1, 2, 3, 4,", {"temperature": 0.0, "stop_token_ids": [37], "max_tokens": 30}),
    "ignore_eos": ("Hi", {"temperature": 0.0, "ignore_eos": True, "max_tokens": 40}),
    "n2_seeded": ("My favourite colour is", {"temperature": 0.8, "n": 2, "seed": 5, "max_tokens": 16}),
    "logprobs5": ("The capital of France is", {"temperature": 0.0, "logprobs": 5, "max_tokens": 8}),
    "seeded_logprobs5": (
        "Once upon a time,",
        {"temperature": 0.7, "seed": 1, "logprobs": 5, "max_tokens": 8},
    ),
    "prompt_logprobs": (
        "The quick brown fox jumps over the lazy dog.",
        {"temperature": 0.0, "prompt_logprobs": 3, "max_tokens": 2},
    ),
    "json_schema": (
        "Describe a person as JSON with a name and an age:",
        {"temperature": 0.0, "max_tokens": 60, "structured_outputs": {"json": JSON_SCHEMA}},
    ),
}


def _sampling_params(kwargs: dict[str, Any]):
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    kwargs = dict(kwargs)
    if "structured_outputs" in kwargs:
        kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
    return SamplingParams(**kwargs)


def _logprob_dicts(entries) -> list[dict[str, float]] | None:
    if entries is None:
        return None
    return [None if e is None else {str(t): lp.logprob for t, lp in e.items()} for e in entries]


def run_requests(llm) -> dict[str, Any]:
    """Every request of REQUESTS in one generate call; JSON-able results by name."""
    from vllm.inputs import TokensPrompt

    tokenizer = llm.get_tokenizer()
    names = list(REQUESTS)
    prompts = [TokensPrompt(prompt_token_ids=tokenizer.encode(REQUESTS[n][0])) for n in names]
    params = [_sampling_params(REQUESTS[n][1]) for n in names]
    results = {}
    for name, output in zip(names, llm.generate(prompts, params, use_tqdm=False), strict=True):
        results[name] = {
            "outputs": [
                {
                    "token_ids": list(c.token_ids),
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "logprobs": _logprob_dicts(c.logprobs),
                }
                for c in output.outputs
            ],
            "prompt_logprobs": _logprob_dicts(output.prompt_logprobs),
        }
    return results


def engine_kwargs(model: str) -> dict[str, Any]:
    return dict(model=model, dtype="float32", max_model_len=MAX_MODEL_LEN, max_num_seqs=16, seed=0)


def native_main(model: str, out: str) -> None:
    """The native side: vLLM's CPU platform, eager (no torch.compile), a 1 GiB KV cache."""
    from vllm import LLM
    from vllm.platforms import current_platform

    assert current_platform.device_name == "cpu", f"expected vLLM's CPU platform, got {current_platform}"
    start = time.monotonic()
    llm = LLM(
        **engine_kwargs(model),
        enforce_eager=True,
        compilation_config={"mode": 0},
        kv_cache_memory_bytes=1 << 30,
    )
    started = time.monotonic() - start
    results = run_requests(llm)
    Path(out).write_text(json.dumps({"engine_start_s": started, "results": results}))


# ---- the tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def native(default_model_path, tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("native") / "native.json"
    env = {k: v for k, v in os.environ.items() if k not in ("VLLM_PLUGINS", "TT_VLLM_DEVICE")}
    env.update(TT_VLLM_DEVICE="auto", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"))
    result = subprocess.run(
        [sys.executable, __file__, default_model_path, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=NATIVE_TIMEOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr[-6000:]
    data = json.loads(out.read_text())
    print(f"native CPU engine start: {data['engine_start_s']:.1f} s")
    return data["results"]


@pytest.fixture(scope="module")
def plugin(default_model_path) -> dict[str, Any]:
    from vllm import LLM

    llm = LLM(**engine_kwargs(default_model_path), additional_config={"tt": {"kv_cache_tokens": 16384}})
    try:
        return run_requests(llm)
    finally:
        del llm
        gc.collect()


def _max_logprob_difference(a, b) -> float:
    if a is None or b is None:
        assert a is None and b is None
        return 0.0
    worst = 0.0
    assert len(a) == len(b)
    for pos_a, pos_b in zip(a, b, strict=True):
        if pos_a is None or pos_b is None:
            assert pos_a is None and pos_b is None
            continue
        assert pos_a.keys() == pos_b.keys()
        worst = max([worst] + [abs(pos_a[t] - pos_b[t]) for t in pos_a])
    return worst


@pytest.mark.engine
@pytest.mark.parametrize("name", list(REQUESTS))
def test_same_result_as_vllms_cpu_platform(native, plugin, name):
    ours, theirs = plugin[name], native[name]
    assert len(ours["outputs"]) == len(theirs["outputs"])
    for mine, native_out in zip(ours["outputs"], theirs["outputs"], strict=True):
        assert mine["token_ids"] == native_out["token_ids"], (mine["text"], native_out["text"])
        assert mine["text"] == native_out["text"]
        assert mine["finish_reason"] == native_out["finish_reason"]
        diff = _max_logprob_difference(mine["logprobs"], native_out["logprobs"])
        assert diff <= LOGPROB_TOLERANCE
    prompt_diff = _max_logprob_difference(ours["prompt_logprobs"], theirs["prompt_logprobs"])
    assert prompt_diff <= LOGPROB_TOLERANCE


@pytest.mark.engine
def test_the_features_did_something(plugin):
    """Guards against a request set that tests nothing: each feature changed or shaped its output."""
    greedy = plugin["greedy"]["outputs"][0]
    assert "Paris" in greedy["text"] and "Paris" not in plugin["bad_words"]["outputs"][0]["text"]
    assert plugin["stop_string"]["outputs"][0]["finish_reason"] == "stop"
    assert "." not in plugin["stop_string"]["outputs"][0]["text"]
    assert plugin["stop_token_ids"]["outputs"][0]["finish_reason"] == "stop"
    assert len(plugin["min_tokens"]["outputs"][0]["token_ids"]) >= 20
    assert len(plugin["ignore_eos"]["outputs"][0]["token_ids"]) == 40
    assert all(28 <= t < 60 for t in plugin["allowed_token_ids"]["outputs"][0]["token_ids"])
    n2 = plugin["n2_seeded"]["outputs"]
    assert n2[0]["token_ids"] != n2[1]["token_ids"]
    assert all(len(pos) >= 5 for pos in plugin["logprobs5"]["outputs"][0]["logprobs"])
    assert json.loads(plugin["json_schema"]["outputs"][0]["text"]).keys() == {"name", "age"}


@pytest.mark.engine
def test_measured_logprob_difference(native, plugin):
    worst = max(
        max(
            [
                _max_logprob_difference(o["logprobs"], n["logprobs"])
                for o, n in zip(plugin[name]["outputs"], native[name]["outputs"], strict=True)
            ]
            + [_max_logprob_difference(plugin[name]["prompt_logprobs"], native[name]["prompt_logprobs"])]
        )
        for name in REQUESTS
    )
    print(f"largest logprob difference tt vs native CPU: {worst:.2e}")
    assert worst <= LOGPROB_TOLERANCE


if __name__ == "__main__":
    native_main(sys.argv[1], sys.argv[2])
