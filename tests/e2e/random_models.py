"""Small random-weight models of each supported architecture, saved as HF folders."""

from __future__ import annotations

from pathlib import Path

import torch

COMMON = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
)


# Sliding windows shorter than the longer test prompts (and not a multiple of the 16-token KV block), so
# prompts, cached prefixes, chunks and decode steps all cross them.
WINDOW = 20


def architecture_configs() -> dict[str, object]:
    from transformers import (
        Gemma3TextConfig,
        GptOssConfig,
        LlamaConfig,
        MistralConfig,
        Qwen2Config,
        Qwen3Config,
        Qwen3MoeConfig,
    )

    return {
        "LlamaForCausalLM": LlamaConfig(
            **COMMON,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
            tie_word_embeddings=True,
        ),
        # use_sliding_window: layer 0 full, layer 1 sliding (layers from max_window_layers on).
        "Qwen2ForCausalLM": Qwen2Config(
            **COMMON,
            tie_word_embeddings=False,
            use_sliding_window=True,
            sliding_window=WINDOW,
            max_window_layers=1,
        ),
        "Qwen3ForCausalLM": Qwen3Config(**COMMON, head_dim=32, tie_word_embeddings=False),
        "MistralForCausalLM": MistralConfig(**COMMON, sliding_window=WINDOW, tie_word_embeddings=False),
        # Local and global layers with their own RoPE, query_pre_attn_scalar != head_dim, soft-capped logits.
        "Gemma3ForCausalLM": Gemma3TextConfig(
            **{**COMMON, "num_hidden_layers": 3},
            head_dim=32,
            sliding_window=WINDOW,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            query_pre_attn_scalar=24,
            final_logit_softcapping=10.0,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
            },
        ),
        # Three layers: two mixtures of 8 experts (top 2, renormalised) around a dense one (mlp_only_layers).
        "Qwen3MoeForCausalLM": Qwen3MoeConfig(
            **{**COMMON, "num_hidden_layers": 3},
            head_dim=32,
            moe_intermediate_size=32,
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            mlp_only_layers=[1],
            tie_word_embeddings=False,
        ),
        # Sliding (WINDOW), full, sliding layers; sinks, biases, YaRN RoPE (the released configs'
        # parameters); 8 experts, top 2, SwiGLU clamped at 1.0 so the clamp bites at these scales.
        "GptOssForCausalLM": GptOssConfig(
            **{**COMMON, "num_hidden_layers": 3, "intermediate_size": 32},
            head_dim=32,
            num_local_experts=8,
            num_experts_per_tok=2,
            sliding_window=WINDOW,
            swiglu_limit=1.0,
            tie_word_embeddings=False,
        ),
    }


# Architectures whose RMSNorm weights are offsets from one (initialised to zero): given random values too,
# so an implementation without the ``1 + w`` cannot agree by accident.
NORM_OFFSET_ARCHITECTURES = {"Gemma3ForCausalLM"}


def save_random_model(arch: str, folder: Path, seed: int = 0) -> Path:
    from transformers import AutoModelForCausalLM

    config = architecture_configs()[arch]
    config.architectures = [arch]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Random init leaves some weights tiny; scale up so logits differ clearly between tokens and a
    # wrong implementation cannot agree with transformers by accident (experts are stacked in 3-D).
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.08)
            elif name.endswith("sinks"):  # transformers starts them near zero
                param.normal_(0.0, 1.0)
            elif name.endswith("bias"):  # and biases at zero
                param.normal_(0.0, 0.1)
            elif arch in NORM_OFFSET_ARCHITECTURES:
                param.normal_(0.0, 0.3)
    model.save_pretrained(folder)
    return folder
