"""Host Llama-family models against transformers, on tiny random-weight checkpoints (fp32, CPU).

Each architecture is saved with ``save_pretrained`` and loaded back through the TT model contract;
prefill logits, greedy decoding through a padded, shuffled paged KV cache, and chunked / prefix-cached
prefill are compared with transformers run one prompt at a time (no padding effects).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GptOssConfig,
    GptOssForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
)

from tests.contract import helpers
from tests.contract.helpers import BlockPool, padded_tokens, page_table
from tt_vllm_plugin import envs
from tt_vllm_plugin.device.host import HostDevice
from tt_vllm_plugin.models.contract import (
    PREFILL_TAKES_DECODE_ROWS,
    SUPPORTS_ASYNC_DECODE,
    SUPPORTS_CHUNKED_PREFILL,
    SUPPORTS_PREFIX_CACHING,
    SUPPORTS_PROMPT_LOGPROBS,
    SUPPORTS_SAMPLE_ON_DEVICE,
    TTModel,
)
from tt_vllm_plugin.models.device_sampling import DeviceSamplingParams
from tt_vllm_plugin.models.host import decoder as host_decoder
from tt_vllm_plugin.models.host.contract_hooks import HostContractModel
from tt_vllm_plugin.models.host.fused_moe import FusedExperts, fused_moe_applies
from tt_vllm_plugin.models.host.llama.architectures import (
    HostLlamaFamilyModel,
    TTLlamaForCausalLM,
    TTMistralForCausalLM,
)
from tt_vllm_plugin.models.host.moe import SparseMoE, TorchExperts
from tt_vllm_plugin.models.registry import (
    TT_MODEL_CLASSES,
    load_model_class,
    register_with_vllm,
    supported_architectures,
    tt_architecture,
)

VOCAB = 512
MAX_SEQ_LEN = 128
BLOCK_SIZE = 4  # small, so every prompt spans several blocks
CPU_FP32 = HostDevice(torch.device("cpu"), torch.float32)

_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    initializer_range=0.05,  # peakier logits than the default, so greedy choices are not near-ties
    bos_token_id=None,
    eos_token_id=None,  # generate exactly max_new_tokens
    pad_token_id=0,
)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], tuple[object, type[PreTrainedModel]]]
    save_kwargs: dict
    # Random norm weights too (Gemma's start at zero, which would hide a missing ``1 + w``).
    random_norms: bool = False


CASES = [
    Case(
        "llama-llama3-rope",
        lambda: (
            LlamaConfig(
                **_COMMON,
                rope_theta=500000.0,
                rope_scaling={
                    "rope_type": "llama3",
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 32,
                },
            ),
            LlamaForCausalLM,
        ),
        {},
    ),
    Case(
        "llama-tied-bias-linear-rope",
        lambda: (
            LlamaConfig(
                **_COMMON,
                tie_word_embeddings=True,
                attention_bias=True,
                mlp_bias=True,
                rope_scaling={"rope_type": "linear", "factor": 2.0},
            ),
            LlamaForCausalLM,
        ),
        {},
    ),
    # YaRN: ramped frequencies and cos/sin scaled by its attention factor.
    Case(
        "qwen2-yarn-rope",
        lambda: (
            Qwen2Config(
                **_COMMON,
                rope_parameters={
                    "rope_type": "yarn",
                    "rope_theta": 10000.0,
                    "factor": 4.0,
                    "original_max_position_embeddings": 32,
                },
            ),
            Qwen2ForCausalLM,
        ),
        {},
    ),
    # Dynamic NTK within max_position_embeddings (beyond it is refused: rope.py).
    Case(
        "llama-dynamic-rope",
        lambda: (
            LlamaConfig(
                **_COMMON, rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}
            ),
            LlamaForCausalLM,
        ),
        {},
    ),
    # Sharded, to load through model.safetensors.index.json.
    Case("qwen2-sharded", lambda: (Qwen2Config(**_COMMON), Qwen2ForCausalLM), {"max_shard_size": "100KB"}),
    # head_dim 32 != hidden / heads, so it must come from the config.
    Case("qwen3", lambda: (Qwen3Config(**_COMMON, head_dim=32), Qwen3ForCausalLM), {}),
    # Gemma 3: local (sliding, window 5) and global layers with their own RoPE (linear on the global
    # ones), query_pre_attn_scalar != head_dim, final logit soft-capping, (1 + w) norms.
    Case(
        "gemma3",
        lambda: (
            Gemma3TextConfig(
                **dict(_COMMON, num_hidden_layers=3),
                head_dim=32,
                sliding_window=5,
                layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                query_pre_attn_scalar=24,
                final_logit_softcapping=2.0,
                rope_parameters={
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                    "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                },
            ),
            Gemma3ForCausalLM,
        ),
        {},
        random_norms=True,
    ),
    # Gemma 3 with biases, an untied LM head and YaRN on the global layers; the default layer pattern.
    Case(
        "gemma3-bias-untied-yarn",
        lambda: (
            Gemma3TextConfig(
                **dict(_COMMON, num_hidden_layers=2),
                head_dim=16,
                sliding_window=3,
                sliding_window_pattern=2,
                attention_bias=True,
                tie_word_embeddings=False,
                rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
            ),
            Gemma3ForCausalLM,
        ),
        {},
        random_norms=True,
    ),
    # Windows shorter than most prompts (prompts span several 4-token blocks), not a block multiple.
    Case(
        "mistral-sliding-window", lambda: (MistralConfig(**_COMMON, sliding_window=5), MistralForCausalLM), {}
    ),
    # use_sliding_window: full layer 0, sliding layer 1 (layers from max_window_layers on).
    Case(
        "qwen3-sliding-layers",
        lambda: (
            Qwen3Config(
                **_COMMON, head_dim=32, use_sliding_window=True, sliding_window=6, max_window_layers=1
            ),
            Qwen3ForCausalLM,
        ),
        {},
    ),
    # Layer 0 dense, layer 1 a mixture of 8 experts (decoder_sparse_step 2), top 2 not renormalised;
    # use_sliding_window windows every layer (transformers' Qwen3MoeModel has no layer_types).
    Case(
        "qwen3-moe",
        lambda: (
            Qwen3MoeConfig(
                **_COMMON,
                head_dim=32,
                moe_intermediate_size=32,
                num_experts=8,
                num_experts_per_tok=2,
                norm_topk_prob=False,
                decoder_sparse_step=2,
                use_sliding_window=True,
                sliding_window=6,
            ),
            Qwen3MoeForCausalLM,
        ),
        {},
    ),
    # Sliding (window 5) then full layer, sinks, biases, YaRN, 8 experts (top 2) clamped at 1.0 so the
    # clamp bites (torch experts: vLLM's kernel has the released 7.0 built in); head_dim 32 for vLLM's
    # attention kernels.
    Case(
        "gpt-oss",
        lambda: (
            GptOssConfig(
                **{**_COMMON, "intermediate_size": 32},
                head_dim=32,
                num_local_experts=8,
                num_experts_per_tok=2,
                sliding_window=5,
                swiglu_limit=1.0,
            ),
            GptOssForCausalLM,
        ),
        {},
    ),
    # The released SwiGLU constants: the experts run on vLLM's fused-MoE kernel where it is loaded.
    Case(
        "gpt-oss-released-swiglu",
        lambda: (
            GptOssConfig(
                **{**_COMMON, "intermediate_size": 32},
                head_dim=32,
                num_local_experts=8,
                num_experts_per_tok=2,
                sliding_window=5,
            ),
            GptOssForCausalLM,
        ),
        {},
    ),
]

# Cases whose experts vLLM's fused-MoE kernel computes (hidden 64, expert width 32, plain or the
# released clamped SwiGLU), when it is loaded.
KERNEL_EXPERTS = {"qwen3-moe", "gpt-oss-released-swiglu"}


def is_moe(layer) -> bool:
    return isinstance(getattr(layer, "mlp", None), SparseMoE)


@dataclass
class Checkpoint:
    case: Case
    folder: Path
    reference: PreTrainedModel  # transformers model with the same weights

    def tt_model(self, **kwargs) -> HostLlamaFamilyModel:
        config = AutoConfig.from_pretrained(self.folder)
        cls = load_model_class(tt_architecture(config.architectures[0]))
        return cls.initialize_vllm_model(
            config, CPU_FP32, max_batch_size=8, max_seq_len=MAX_SEQ_LEN, **kwargs
        )

    def last_logits(self, prompt: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.reference(prompt[None]).logits[0, -1].float()

    def greedy(self, prompt: torch.Tensor, steps: int) -> list[int]:
        with torch.inference_mode():
            out = self.reference.generate(prompt[None], max_new_tokens=steps, do_sample=False)
        return out[0, len(prompt) :].tolist()


@pytest.fixture(scope="module", params=CASES, ids=[case.name for case in CASES])
def checkpoint(request, tmp_path_factory) -> Checkpoint:
    case: Case = request.param
    torch.manual_seed(0)
    config, model_cls = case.make()
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"  # transformers 5 picks grouped_mm for MoE otherwise
    model = model_cls(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("sinks", "bias")):  # transformers starts them at or near zero: make them count
                param.normal_(0.0, 1.0 if name.endswith("sinks") else 0.1)
            elif case.random_norms and param.dim() == 1:
                param.normal_(0.0, 0.3)
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = None
    folder = tmp_path_factory.mktemp(case.name)
    model.save_pretrained(folder, **case.save_kwargs)
    return Checkpoint(case, folder, model)


def random_prompts(lengths: list[int], seed: int) -> list[torch.Tensor]:
    return helpers.random_prompts(lengths, seed, VOCAB)


def new_cache(model: HostLlamaFamilyModel, num_blocks: int, dtype: torch.dtype = torch.float32):
    shape = (num_blocks, model.num_kv_heads, BLOCK_SIZE, model.head_dim)
    return model.allocate_kv_cache(shape, dtype, len(model.weights.layers))


def blocks_for(length: int) -> int:
    return helpers.blocks_for(length, BLOCK_SIZE)


def test_satisfies_contract(checkpoint):
    model = checkpoint.tt_model()
    assert isinstance(model, TTModel)
    assert model.model_capabilities == {
        SUPPORTS_PREFIX_CACHING: True,
        SUPPORTS_CHUNKED_PREFILL: True,
        SUPPORTS_PROMPT_LOGPROBS: True,
        SUPPORTS_SAMPLE_ON_DEVICE: True,
        SUPPORTS_ASYNC_DECODE: True,
        PREFILL_TAKES_DECODE_ROWS: True,
    }


def test_a_one_token_prefill_row_is_a_decode(checkpoint):
    """What PREFILL_TAKES_DECODE_ROWS promises the runner: a row of one token after its cached ones,
    prefilled beside a fresh prompt, gives the logits decode_forward gives and writes the same K/V."""
    model = checkpoint.tt_model()
    a, c = random_prompts([11, 6], seed=12)
    pool = BlockPool(32, seed=13)
    rows_a, rows_c = pool.take(blocks_for(12)), pool.take(blocks_for(6))
    kv_cache = new_cache(model, 32)
    model.prefill_forward(padded_tokens([a[:10]]), page_table([rows_a], 8), kv_cache, [10])
    decoded_cache = [[k.clone(), v.clone()] for k, v in kv_cache]

    decoded = model.decode_forward(
        a[10:11].reshape(1, 1), torch.tensor([10], dtype=torch.int32), page_table([rows_a], 8), decoded_cache
    )
    folded = model.prefill_forward(
        padded_tokens([a, c]), page_table([rows_a, rows_c], 8), kv_cache, [11, 6], start_pos=[10, 0]
    )

    torch.testing.assert_close(folded[0, 0], decoded[0, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(folded[0, 0], checkpoint.last_logits(a[:11]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(folded[1, 0], checkpoint.last_logits(c), atol=1e-4, rtol=1e-4)
    for (k, v), (k_decoded, v_decoded) in zip(kv_cache, decoded_cache, strict=True):
        for block in rows_a:
            torch.testing.assert_close(k[block], k_decoded[block], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(v[block], v_decoded[block], atol=1e-5, rtol=1e-5)


def test_batched_prefill_matches_transformers(checkpoint):
    model = checkpoint.tt_model()
    prompts = random_prompts([7, 19, 3, 12], seed=1)
    pool = BlockPool(32, seed=2)
    table = page_table([pool.take(blocks_for(len(p))) for p in prompts], width=8)
    kv_cache = new_cache(model, 32)

    logits = model.prefill_forward(padded_tokens(prompts), table, kv_cache, [len(p) for p in prompts])

    assert logits.shape == (len(prompts), 1, VOCAB) and logits.dtype == torch.float32
    for row, prompt in enumerate(prompts):
        torch.testing.assert_close(logits[row, 0], checkpoint.last_logits(prompt), atol=1e-4, rtol=1e-4)


def test_experts_run_on_the_kernel_where_it_applies(checkpoint):
    layers = [layer for layer in checkpoint.tt_model().weights.layers if is_moe(layer)]
    kernel = checkpoint.case.name in KERNEL_EXPERTS and fused_moe_applies(
        torch.device("cpu"), torch.float32, 64, 32, None
    )
    assert all(type(layer.mlp.experts) is (FusedExperts if kernel else TorchExperts) for layer in layers)


def test_plain_torch_ops_match_transformers(checkpoint, monkeypatch):
    """Without vLLM's fused CPU kernels (a CUDA host device, a vLLM without its CPU build) the
    decoder's elementwise steps and the experts run as torch ops; they must give the same logits."""
    monkeypatch.setattr(host_decoder, "fused_kernels_available", lambda device: False)
    monkeypatch.setenv(envs.TT_VLLM_HOST_MOE.name, "torch")
    model = checkpoint.tt_model()
    ropes = getattr(model, "ropes", None) or {"all": model.rope}  # Gemma 3: one per layer type
    assert not model.ops.fused and not any(rope.fused for rope in ropes.values())
    assert all(type(layer.mlp.experts) is TorchExperts for layer in model.weights.layers if is_moe(layer))
    prompts = random_prompts([6, 11], seed=5)
    table = page_table([list(range(0, 2)), list(range(2, 5))], width=4)

    logits = model.prefill_forward(padded_tokens(prompts), table, new_cache(model, 8), [6, 11])

    for row, prompt in enumerate(prompts):
        torch.testing.assert_close(logits[row, 0], checkpoint.last_logits(prompt), atol=1e-4, rtol=1e-4)


def test_greedy_sampled_on_the_device_is_the_argmax(checkpoint):
    """sample_on_device_mode: greedy rows sampled by the model give the argmax of its own logits, at
    prefill and in a padded decode step (the tokens the engine test checks against transformers)."""
    model = checkpoint.tt_model()
    prompts = random_prompts([9, 5], seed=11)
    table = page_table([[1, 2, 3], [4, 5]], width=4)
    greedy = DeviceSamplingParams.from_lists([0.0, 0.0], [0, 0], [1.0, 1.0], [1, 2])
    kv_cache = new_cache(model, 8)
    logits = model.prefill_forward(padded_tokens(prompts), table, new_cache(model, 8), [9, 5])
    tokens = model.prefill_forward(padded_tokens(prompts), table, kv_cache, [9, 5], sampling_params=greedy)
    assert tokens.tolist() == logits[:, 0].argmax(-1).tolist()
    step = torch.tensor([[int(tokens[0])], [0], [int(tokens[1])]])
    start_pos = torch.tensor([9, -1, 5], dtype=torch.int32)
    decode_table = page_table([[1, 2, 3], [], [4, 5]], width=4)
    padded = DeviceSamplingParams.from_lists([0.0] * 3, [0] * 3, [1.0] * 3, [1, 2, 3])
    expected = model.decode_forward(
        step, start_pos, decode_table, [[k.clone(), v.clone()] for k, v in kv_cache]
    )
    sampled = model.decode_forward(step, start_pos, decode_table, kv_cache, sampling_params=padded)
    assert sampled[[0, 2]].tolist() == expected[[0, 2], 0].argmax(-1).tolist()


def test_greedy_decode_in_padded_batch_matches_generate(checkpoint):
    model = checkpoint.tt_model()
    steps, max_batch, width = 8, 6, 10
    prompts = random_prompts([5, 13, 9], seed=3)
    slots = [4, 0, 2]  # request i lives in decode slot slots[i]; slots 1, 3, 5 stay empty
    # Request 0's first block is block 0, so a stray write by an empty slot (whose page table row is
    # all zeros) would corrupt it and change its tokens.
    pool = BlockPool(40, seed=4, first=0)
    rows = [pool.take(blocks_for(len(p) + steps)) for p in prompts]
    kv_cache = new_cache(model, 40)

    logits = model.prefill_forward(
        padded_tokens(prompts), page_table(rows, width), kv_cache, [len(p) for p in prompts]
    )
    generated = [[int(logits[i, 0].argmax())] for i in range(len(prompts))]

    decode_table = torch.zeros(max_batch, width, dtype=torch.int32)
    for request, slot in enumerate(slots):
        decode_table[slot] = page_table([rows[request]], width)[0]
    for _ in range(steps - 1):
        tokens = torch.randint(1, VOCAB, (max_batch, 1))  # garbage in empty slots
        start_pos = torch.full((max_batch,), -1, dtype=torch.int32)
        for request, slot in enumerate(slots):
            tokens[slot, 0] = generated[request][-1]
            start_pos[slot] = len(prompts[request]) + len(generated[request]) - 1
        out = model.decode_forward(tokens, start_pos, decode_table, kv_cache)
        assert out.shape == (max_batch, 1, VOCAB) and out.dtype == torch.float32
        for request, slot in enumerate(slots):
            generated[request].append(int(out[slot, 0].argmax()))

    for request, prompt in enumerate(prompts):
        assert generated[request] == checkpoint.greedy(prompt, steps), f"request {request}"


def test_chunked_prefill_matches_single_pass(checkpoint):
    model = checkpoint.tt_model()
    (prompt,) = random_prompts([13], seed=5)
    table = page_table([BlockPool(16, seed=6).take(blocks_for(13))], width=6)
    tokens = padded_tokens([prompt])

    whole = model.prefill_forward(tokens, table, new_cache(model, 16), [13])
    kv_cache = new_cache(model, 16)
    model.prefill_forward(tokens, table, kv_cache, [5])  # first chunk ends mid-block
    chunked = model.prefill_forward(tokens, table, kv_cache, [13], start_pos=[5])

    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked[0, 0], checkpoint.last_logits(prompt), atol=1e-4, rtol=1e-4)


def test_prefix_cached_and_fresh_requests_in_one_prefill(checkpoint):
    """Request B reuses A's first two cached blocks (prefix caching) and computes only its tail, in
    the same call as a fresh request C."""
    model = checkpoint.tt_model()
    a, c = random_prompts([12, 6], seed=7)
    b = torch.cat([a[:8], random_prompts([7], seed=8)[0]])
    pool = BlockPool(32, seed=9)
    rows_a = pool.take(blocks_for(12))
    kv_cache = new_cache(model, 32)
    model.prefill_forward(padded_tokens([a]), page_table([rows_a], 8), kv_cache, [12])

    rows_b = rows_a[:2] + pool.take(blocks_for(len(b)) - 2)
    rows_c = pool.take(blocks_for(6))
    logits = model.prefill_forward(
        padded_tokens([b, c]), page_table([rows_b, rows_c], 8), kv_cache, [len(b), 6], start_pos=[8, 0]
    )

    torch.testing.assert_close(logits[0, 0], checkpoint.last_logits(b), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[1, 0], checkpoint.last_logits(c), atol=1e-4, rtol=1e-4)


def test_n_layers_truncates(checkpoint):
    model = checkpoint.tt_model(n_layers=1)
    assert len(model.weights.layers) == 1
    reference = (
        type(checkpoint.reference)
        .from_pretrained(
            checkpoint.folder,
            num_hidden_layers=1,
            attn_implementation="eager",
            experts_implementation="eager",
        )
        .eval()
    )
    (prompt,) = random_prompts([6], seed=10)
    logits = model.prefill_forward(padded_tokens([prompt]), page_table([[3, 1]], 4), new_cache(model, 4), [6])
    with torch.inference_mode():
        expected = reference(prompt[None]).logits[0, -1]
    torch.testing.assert_close(logits[0, 0], expected, atol=1e-4, rtol=1e-4)


# ---- one architecture is enough for what follows


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("llama-plain")
    LlamaForCausalLM(LlamaConfig(**_COMMON)).save_pretrained(folder)
    return folder


def test_empty_decode_slots_do_not_touch_the_cache(llama_folder):
    model = TTLlamaForCausalLM.initialize_vllm_model(
        AutoConfig.from_pretrained(llama_folder), CPU_FP32, 4, 64
    )
    kv_cache = new_cache(model, 8)
    for k, v in kv_cache:
        k.normal_()
        v.normal_()
    before = [[t.clone() for t in pair] for pair in kv_cache]
    out = model.decode_forward(
        torch.ones(4, 1, dtype=torch.int64),
        torch.full((4,), -1, dtype=torch.int32),
        torch.zeros(4, 2, dtype=torch.int32),
        kv_cache,
    )
    assert out.shape == (4, 1, VOCAB)
    for pair, saved in zip(kv_cache, before, strict=True):
        assert all(torch.equal(t, s) for t, s in zip(pair, saved, strict=True))


def test_kv_cache_starts_zeroed_and_keeps_its_memory(llama_folder):
    """The CPU KV cache is zero pages from the OS (written only when a block is first used): zero,
    page-aligned, and its mapping lives as long as the tensors do."""
    import gc

    model = TTLlamaForCausalLM.initialize_vllm_model(
        AutoConfig.from_pretrained(llama_folder), CPU_FP32, 4, 64
    )
    kv_cache = new_cache(model, 8)
    gc.collect()  # nothing but the tensors holds the mappings now
    assert all(not t.any() and t.is_contiguous() and t.data_ptr() % 4096 == 0 for p in kv_cache for t in p)
    keys = kv_cache[0][0]
    keys[1].fill_(2.0)
    assert keys.sum().item() == 2.0 * keys[1].numel()


def test_bfloat16_runs_and_returns_float32_logits(llama_folder):
    config = AutoConfig.from_pretrained(llama_folder)
    fp32 = TTLlamaForCausalLM.initialize_vllm_model(config, CPU_FP32, 2, 64)
    bf16 = TTLlamaForCausalLM.initialize_vllm_model(
        config, HostDevice(torch.device("cpu"), torch.bfloat16), 2, 64
    )
    assert bf16.weights.embed.dtype == torch.bfloat16
    (prompt,) = random_prompts([9], seed=11)
    args = (padded_tokens([prompt]), page_table([[2, 0, 5]], 4))
    expected = fp32.prefill_forward(*args, new_cache(fp32, 8), [9])
    kv_cache = new_cache(bf16, 8, torch.bfloat16)
    logits = bf16.prefill_forward(*args, kv_cache, [9])
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected, atol=0.1, rtol=0.1)
    step = bf16.decode_forward(
        torch.tensor([[int(logits[0, 0].argmax())], [0]]),
        torch.tensor([9, -1], dtype=torch.int32),
        torch.tensor([[2, 0, 5, 0], [0, 0, 0, 0]], dtype=torch.int32),
        kv_cache,
    )
    assert step.dtype == torch.float32 and torch.isfinite(step[0]).all()


def test_sampling_params_of_another_type_are_refused(llama_folder):
    # Device sampling itself: tests/unit/test_device_sampling.py.
    model = TTLlamaForCausalLM.initialize_vllm_model(
        AutoConfig.from_pretrained(llama_folder), CPU_FP32, 1, 16
    )
    with pytest.raises(TypeError, match="sampling_params must be a DeviceSamplingParams, got object"):
        model.decode_forward(
            torch.zeros(1, 1, dtype=torch.int64),
            torch.zeros(1, dtype=torch.int32),
            torch.zeros(1, 4, dtype=torch.int32),
            new_cache(model, 4),
            sampling_params=object(),
        )


def test_missing_weights_folder_is_named(tmp_path):
    config = LlamaConfig(**_COMMON)
    empty = tmp_path / "no-weights"
    empty.mkdir()
    config._name_or_path = str(empty)
    with pytest.raises(FileNotFoundError, match=f"No safetensors weights found in '{empty}'"):
        TTLlamaForCausalLM.initialize_vllm_model(config, CPU_FP32, 1, 16)
    config._name_or_path = str(tmp_path / "does-not-exist")
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        TTLlamaForCausalLM.initialize_vllm_model(config, CPU_FP32, 1, 16)


def test_missing_tensors_are_named(llama_folder):
    config = AutoConfig.from_pretrained(llama_folder)
    config.num_hidden_layers = 3  # the checkpoint has 2
    with pytest.raises(ValueError, match=r"lacks tensors the model needs: model\.layers\.2\.input_layernorm"):
        TTLlamaForCausalLM.initialize_vllm_model(config, CPU_FP32, 1, 16)


def test_unsupported_configs_are_refused(llama_folder):
    config = AutoConfig.from_pretrained(llama_folder)
    config.rope_parameters = {"rope_type": "proportional", "factor": 4.0, "rope_theta": 10000.0}
    with pytest.raises(NotImplementedError, match="RoPE type 'proportional' is not implemented"):
        TTLlamaForCausalLM.initialize_vllm_model(config, CPU_FP32, 1, 16)
    config.rope_parameters = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}
    with pytest.raises(NotImplementedError, match="'dynamic' beyond max_position_embeddings=256"):
        TTLlamaForCausalLM.initialize_vllm_model(config, CPU_FP32, 1, 512)
    config.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
    config.layer_types = ["full_attention", "sliding_attention"]
    with pytest.raises(NotImplementedError, match=r"sliding-window attention layers \(sliding_attention\)"):
        TTLlamaForCausalLM.initialize_vllm_model(config, CPU_FP32, 1, 16)
    mistral = MistralConfig(**_COMMON, sliding_window=32, layer_types=["full_attention", "sliding_attention"])
    with pytest.raises(NotImplementedError, match="layer_types mixing full_attention, sliding_attention"):
        TTMistralForCausalLM.initialize_vllm_model(mistral, CPU_FP32, 1, 64)


def test_registry_names_and_classes():
    assert supported_architectures() == [
        "Gemma3ForCausalLM",
        "Gemma3ForConditionalGeneration",
        "GptOssForCausalLM",
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen2_5_VLForConditionalGeneration",
        "Qwen3ForCausalLM",
        "Qwen3MoeForCausalLM",
    ]
    assert tt_architecture("Qwen3ForCausalLM") == "TTQwen3ForCausalLM"
    for name in TT_MODEL_CLASSES:
        cls = load_model_class(name)
        assert cls.__name__ == name and issubclass(cls, HostContractModel)


def test_unknown_architecture_error_lists_supported():
    with pytest.raises(ValueError) as error:
        load_model_class(tt_architecture("GPT2LMHeadModel"))
    assert str(error.value) == (
        "Architecture 'GPT2LMHeadModel' has no TT implementation. Supported architectures: "
        "Gemma3ForCausalLM, Gemma3ForConditionalGeneration, GptOssForCausalLM, LlamaForCausalLM, "
        "MistralForCausalLM, Qwen2ForCausalLM, Qwen2_5_VLForConditionalGeneration, Qwen3ForCausalLM, "
        "Qwen3MoeForCausalLM."
    )


def test_vllm_sees_every_tt_architecture_as_a_text_generation_model():
    """vLLM's registry holds the stand-in (a contract class would fail vLLM's "generation model" check);
    the registry here still loads the real class."""
    from vllm import ModelRegistry

    register_with_vllm()
    register_with_vllm()
    assert set(TT_MODEL_CLASSES) <= set(ModelRegistry.get_supported_archs())
    info = ModelRegistry.models["TTQwen2ForCausalLM"].inspect_model_cls()
    assert info.is_text_generation_model and not info.supports_multimodal and not info.is_pooling_model
    assert load_model_class("TTQwen2ForCausalLM").__name__ == "TTQwen2ForCausalLM"


def test_vllm_sees_an_image_class_as_its_own_multimodal_model_where_its_processor_imports():
    """A class that takes images is shown to vLLM as vLLM's own class for the architecture (its processor);
    where that does not import (no torchvision), the stand-in, and the reason is kept for the refusal."""
    import importlib.util

    from vllm import ModelRegistry

    from tt_vllm_plugin.models.registry import multimodal_view_unavailable

    register_with_vllm()
    name = "TTQwen2_5_VLForConditionalGeneration"
    info = ModelRegistry.models[name].inspect_model_cls()
    if importlib.util.find_spec("torchvision") is None:
        assert not info.supports_multimodal
        assert "No module named 'torchvision'" in multimodal_view_unavailable(name)
    else:
        assert info.is_text_generation_model and info.supports_multimodal
        assert multimodal_view_unavailable(name) is None


def test_sharded_checkpoint_really_is_sharded(checkpoint):
    index = checkpoint.folder / "model.safetensors.index.json"
    if "max_shard_size" in checkpoint.case.save_kwargs:
        assert len(set(json.loads(index.read_text())["weight_map"].values())) > 1
    else:
        assert not index.exists()


def test_gemma3_configs_it_cannot_compute_are_refused(caplog):
    from tt_vllm_plugin.models.host.gemma3.architectures import TTGemma3ForCausalLM

    def config(**kwargs) -> Gemma3TextConfig:
        return Gemma3TextConfig(**dict(_COMMON, num_hidden_layers=2), head_dim=32, **kwargs)

    with pytest.raises(NotImplementedError, match="hidden_activation 'gelu_python_tanh' is not implemented"):
        TTGemma3ForCausalLM.check_config(config(hidden_activation="gelu_python_tanh"), 64)
    with pytest.raises(NotImplementedError, match="use_bidirectional_attention"):
        TTGemma3ForCausalLM.check_config(config(use_bidirectional_attention=True), 64)
    dynamic = {"rope_type": "dynamic", "factor": 2.0}
    with pytest.raises(NotImplementedError, match=r"'dynamic' \(full_attention layers\) beyond"):
        TTGemma3ForCausalLM.check_config(config(rope_scaling=dynamic, sliding_window_pattern=2), 512)
    # transformers' Gemma 3 never applies attn_logit_softcapping; neither do we, and we say so.
    with caplog.at_level("WARNING"):
        TTGemma3ForCausalLM.check_config(config(attn_logit_softcapping=50.0), 64)
    assert "attn_logit_softcapping=50.0 is not applied" in caplog.text
