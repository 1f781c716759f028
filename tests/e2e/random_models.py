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


def architecture_configs() -> dict[str, object]:
    from transformers import (
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
        "Qwen2ForCausalLM": Qwen2Config(**COMMON, tie_word_embeddings=False),
        "Qwen3ForCausalLM": Qwen3Config(**COMMON, head_dim=32, tie_word_embeddings=False),
        "MistralForCausalLM": MistralConfig(**COMMON, sliding_window=None, tie_word_embeddings=False),
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
        # Sliding (window 16), full, sliding layers; sinks, biases, YaRN RoPE (the released configs'
        # parameters); 8 experts, top 2, SwiGLU clamped at 1.0 so the clamp bites at these scales.
        "GptOssForCausalLM": GptOssConfig(
            **{**COMMON, "num_hidden_layers": 3, "intermediate_size": 32},
            head_dim=32,
            num_local_experts=8,
            num_experts_per_tok=2,
            sliding_window=16,
            swiglu_limit=1.0,
            tie_word_embeddings=False,
        ),
    }


def longest_window() -> int:
    """The longest sliding window of any of the configs (0 without any): e2e prompts are longer."""
    return max(
        int(getattr(config, "sliding_window", None) or 0) for config in architecture_configs().values()
    )


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
    model.save_pretrained(folder)
    return folder
