"""Bringing your own model the way Tenstorrent's users do, served through ``vllm.LLM`` on the host device
and checked token for token against transformers:

- a bundle written for Tenstorrent's plugin (``EXTRA_MODELS_DIR``, tests/fixtures/byo_models/bundles): its
  class, a thin subclass of the host Llama living in the bundle folder, serves ``LlamaForCausalLM`` in place
  of the built-in class; the engine core runs in its own process and finds the bundle again from the
  environment;
- ``TT_MODEL_CLASS_OVERRIDES`` naming a class outside the package (tests/fixtures/byo_models/outside) for an
  architecture vLLM does not know: the override's bare name registered with vLLM is what gets the
  checkpoint past vLLM's own config.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import torch

from tests.e2e.in_process import in_process_llm
from tests.e2e.random_models import save_random_model
from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "byo_models"
PROMPTS = [[5, 17, 301, 44, 9], [100, 200, 300], list(range(3, 40))]
MAX_TOKENS = 10
ENGINE = dict(
    skip_tokenizer_init=True,
    dtype="float32",
    max_model_len=256,
    max_num_seqs=4,
    block_size=16,
    additional_config={"tt": {"kv_cache_tokens": 4096}},
)


def generate(llm) -> list[list[int]]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True, detokenize=False)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in PROMPTS], params)
    return [list(o.outputs[0].token_ids) for o in outputs]


def test_a_bundle_written_for_tenstorrents_plugin_serves_unchanged(tmp_path, monkeypatch):
    from vllm import LLM

    monkeypatch.setenv("EXTRA_MODELS_DIR", str(FIXTURES / "bundles"))
    folder = str(save_random_model("LlamaForCausalLM", tmp_path / "llama"))
    llm = LLM(model=folder, **ENGINE)  # the engine core in a process of its own
    try:
        got, served = generate(llm), llm.collective_rpc("get_model_inspection")
    finally:
        del llm
        gc.collect()
    # TTWorker.get_model_inspection, run in the engine core: the class the runner loaded.
    assert served == ["tt_byo_bundle_llama.BundleLlamaForCausalLM on the tt platform"]
    assert got == transformers_greedy(folder, PROMPTS, MAX_TOKENS)


def test_an_override_serves_an_architecture_vllm_does_not_know(tmp_path, monkeypatch):
    outside = str(FIXTURES / "outside")
    monkeypatch.syspath_prepend(outside)
    monkeypatch.setenv(
        "TT_MODEL_CLASS_OVERRIDES", "MyLlamaForCausalLM=tt_byo_outside_models:MyLlamaForCausalLM"
    )
    folder = save_random_model("LlamaForCausalLM", tmp_path / "my-llama")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["MyLlamaForCausalLM"]  # model_type stays llama: transformers still loads it
    (folder / "config.json").write_text(json.dumps(config))

    with in_process_llm(model=str(folder), **ENGINE) as llm:
        got, served = generate(llm), llm.collective_rpc("get_model_inspection")
    assert served == ["tt_byo_outside_models.MyLlamaForCausalLM on the tt platform"]
    assert got == transformers_greedy(str(folder), PROMPTS, MAX_TOKENS)


def test_a_class_with_its_own_kv_cache_spec_and_per_layer_allocation(tmp_path, monkeypatch):
    """The worker takes the spec from the class's get_kv_cache_spec and the runner allocates through its
    allocate_kv_cache_per_layer (one buffer per layer: a single KV cache group), with vLLM's hybrid KV cache
    manager on (the platform supports it); the tokens are transformers'."""
    monkeypatch.syspath_prepend(str(FIXTURES / "outside"))
    monkeypatch.setenv(
        "TT_MODEL_CLASS_OVERRIDES", "LlamaForCausalLM=tt_byo_outside_models:HybridSpecLlamaForCausalLM"
    )
    from tt_byo_outside_models import HybridSpecLlamaForCausalLM

    folder = str(save_random_model("LlamaForCausalLM", tmp_path / "llama"))
    with in_process_llm(model=folder, **ENGINE) as llm:
        got = generate(llm)
        assert llm.llm_engine.vllm_config.scheduler_config.disable_hybrid_kv_cache_manager is False
    asked = HybridSpecLlamaForCausalLM.asked
    assert asked["spec"] and set(asked["spec"]) == {2}
    blocks = ENGINE["additional_config"]["tt"]["kv_cache_tokens"] // ENGINE["block_size"]
    assert asked["allocate"] == [
        [((blocks, 2, 16, 16), torch.float32, 0), ((blocks, 2, 16, 16), torch.float32, 1)]
    ]
    assert got == transformers_greedy(folder, PROMPTS, MAX_TOKENS)
