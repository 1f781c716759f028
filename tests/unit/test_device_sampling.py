"""The device sampler (models/device_sampling.py) and the host models' ``sampling_params`` path.

The sampler must give vLLM's distribution for greedy / temperature / top-k / top-p: its filtered
distribution is compared with vLLM's own ``apply_top_k_top_p`` exactly, and its draws with that
distribution statistically (fixed seeds, so the test is deterministic; the bound is stated below).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p

from tests.contract.helpers import BlockPool, padded_tokens, page_table, random_prompts
from tests.e2e.random_models import save_random_model
from tt_vllm_plugin.device.host import HostDevice
from tt_vllm_plugin.models.contract import SUPPORTS_SAMPLE_ON_DEVICE, capability
from tt_vllm_plugin.models.device_sampling import (
    UNSEEDED,
    DeviceSamplingParams,
    filtered_logits,
    sample_on_device,
)
from tt_vllm_plugin.models.host.llama.architectures import TTLlamaForCausalLM

VOCAB = 64
NUM_DRAWS = 20_000
# Expected total variation distance of NUM_DRAWS draws over <= 20 outcomes is about
# 0.5 * sqrt(2 * 20 / (pi * NUM_DRAWS)) ~= 0.013; 0.03 is > 2x that, and a sampler off by a few
# percent of mass on any token (e.g. one that ignores top-p) fails it.
TV_BOUND = 0.03


def _logits(seed: int, rows: int = 1) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 3


def _vllm_distribution(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    k = torch.tensor([top_k if top_k > 0 else VOCAB])
    p = torch.tensor([top_p])
    return apply_top_k_top_p((logits / temperature).clone(), k, p).softmax(-1)[0]


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, 0, 1.0), (0.7, 10, 1.0), (1.3, 0, 0.8), (0.8, 20, 0.9), (1.0, 1, 1.0), (2.0, 32, 0.5)],
)
def test_filtered_distribution_is_vllms(temperature, top_k, top_p):
    logits = _logits(1)
    ours = filtered_logits(logits[0] / temperature, top_k, top_p).softmax(-1)
    theirs = _vllm_distribution(logits, temperature, top_k, top_p)
    assert torch.equal(ours > 0, theirs > 0)  # the same support
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_top_k_keeps_ties_at_the_cut_like_vllm():
    logits = torch.tensor([[5.0, 3.0, 3.0, 3.0, 1.0]])
    kept = filtered_logits(logits[0], 2, 1.0) > float("-inf")
    assert kept.tolist() == [True, True, True, True, False]


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(0.8, 20, 0.9), (1.0, 8, 1.0), (1.5, 32, 0.7)])
def test_draws_follow_vllms_distribution_and_stay_in_its_support(temperature, top_k, top_p):
    logits = _logits(2)
    params = DeviceSamplingParams.from_lists(
        [temperature] * NUM_DRAWS, [top_k] * NUM_DRAWS, [top_p] * NUM_DRAWS, list(range(NUM_DRAWS))
    )
    tokens = sample_on_device(logits.expand(NUM_DRAWS, VOCAB), params)
    target = _vllm_distribution(logits, temperature, top_k, top_p)
    assert bool((target[tokens] > 0).all()), "a token outside vLLM's top-k/top-p support was drawn"
    empirical = torch.bincount(tokens, minlength=VOCAB).double() / NUM_DRAWS
    tv = 0.5 * float((empirical - target.double()).abs().sum())
    assert tv < TV_BOUND, f"total variation {tv:.4f} >= {TV_BOUND}"


def test_greedy_rows_take_the_argmax_and_seeded_rows_repeat():
    logits = _logits(3, rows=4)
    params = DeviceSamplingParams.from_lists(
        [0.0, 1.0, 0.0, 1.0], [0, 0, 5, 0], [1.0, 0.9, 1.0, 0.9], [7] * 4
    )
    first = sample_on_device(logits, params)
    assert first[[0, 2]].tolist() == logits.argmax(-1)[[0, 2]].tolist()
    assert torch.equal(first, sample_on_device(logits, params))  # same seeds, same tokens
    many = DeviceSamplingParams.from_lists([1.0] * 64, [0] * 64, [1.0] * 64, list(range(64)))
    assert len(set(sample_on_device(logits[1:2].expand(64, VOCAB), many).tolist())) > 5


def test_params_check_their_shapes_and_pad_with_greedy_rows():
    with pytest.raises(
        ValueError, match=r"1-D tensors of one length .* \[\(2,\), \(2,\), \(2,\), \(3,\), \(3,\)\]"
    ):
        DeviceSamplingParams.from_lists([1.0, 1.0], [0, 0], [1.0, 1.0], [1, 2, 3])
    params = DeviceSamplingParams.from_lists([0.5, 0.9], [3, 4], [0.9, 1.0], [11, 12], [None, 5])
    params = params.padded(4, torch.tensor([3, 1]))
    assert params.temperature.tolist() == pytest.approx([0.0, 0.9, 0.0, 0.5])
    assert params.top_k.tolist() == [0, 4, 0, 3] and params.seeds.tolist() == [0, 12, 0, 11]
    assert params.request_seeds.tolist() == [UNSEEDED, 5, UNSEEDED, UNSEEDED]
    assert params.select(torch.tensor([1])).top_k.tolist() == [4]
    assert params.select(torch.tensor([1])).request_seeds.tolist() == [5]
    with pytest.raises(ValueError, match="rows == 2 sampling rows, got \\(3, 64\\)"):
        sample_on_device(_logits(0, rows=3), params.select(slice(0, 2)))


# ---- the host model's sampling_params path --------------------------------------------------------

BLOCK = 4


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> TTLlamaForCausalLM:
    from transformers import AutoConfig

    folder = save_random_model("LlamaForCausalLM", Path(tmp_path_factory.mktemp("llama")))
    config = AutoConfig.from_pretrained(folder)
    device = HostDevice(torch.device("cpu"), torch.float32)
    return TTLlamaForCausalLM.initialize_vllm_model(config, device, max_batch_size=4, max_seq_len=64)


def _kv(model):
    shape = (32, model.num_kv_heads, BLOCK, model.head_dim)
    return model.allocate_kv_cache(shape, torch.float32, len(model.weights.layers))


def test_host_model_declares_and_does_sampling_on_device(model):
    assert capability(model, SUPPORTS_SAMPLE_ON_DEVICE)
    vocab = model.weights.lm_head.out_features
    prompts = random_prompts([5, 9], seed=0, vocab_size=vocab)
    pool = BlockPool(32, seed=0)
    rows = [pool.take(4), pool.take(4)]
    table = page_table(rows, 4)
    lens = torch.tensor([5, 9], dtype=torch.int32)
    greedy = DeviceSamplingParams.from_lists([0.0, 0.0], [0, 0], [1.0, 1.0], [0, 0])

    logits = model.prefill_forward(padded_tokens(prompts), table, _kv(model), lens)
    kv = _kv(model)
    tokens = model.prefill_forward(padded_tokens(prompts), table, kv, lens, sampling_params=greedy)
    assert tokens.dtype == torch.int64 and tokens.tolist() == logits[:, 0].argmax(-1).tolist()

    # Decode: padded to max_batch 4 (slot 2 empty, slot 3 empty), seeded sampling in slot 1.
    decode_tokens = torch.zeros(4, 1, dtype=torch.int64)
    decode_tokens[:2, 0] = tokens
    start = torch.tensor([5, 9, -1, -1], dtype=torch.int32)
    table4 = page_table(rows + [[], []], 16)
    params = DeviceSamplingParams.from_lists([0.0, 0.9], [0, 20], [1.0, 0.9], [0, 1234]).padded(4)
    kv_copy = [[t.clone() for t in layer] for layer in kv]
    decode_logits = model.decode_forward(decode_tokens, start, table4, kv_copy)
    sampled = model.decode_forward(decode_tokens, start, table4, kv, sampling_params=params)
    assert sampled.shape == (4,) and sampled[2:].tolist() == [0, 0]
    assert int(sampled[0]) == int(decode_logits[0, 0].argmax())
    expected = sample_on_device(decode_logits[:2, 0], params.select(slice(0, 2)))
    assert sampled[:2].tolist() == expected.tolist()


def test_host_model_refuses_a_foreign_sampling_params_type(model):
    prompts = random_prompts([3], seed=1, vocab_size=model.weights.lm_head.out_features)
    with pytest.raises(TypeError, match="sampling_params must be a DeviceSamplingParams, got dict"):
        model.prefill_forward(
            padded_tokens(prompts), page_table([[0]], 1), _kv(model), [3], sampling_params={"top_k": 1}
        )
