"""Small random-weight checkpoints of the sliding-window and mixture-of-experts families, with the embedded
model's tokenizer, for the benchmarks (offline_throughput.py --random-model ARCH): SmolLM2-135M's shape
(hidden 576, 9 heads of 64, 3 KV heads), 12 layers, windows of 64 tokens so that 32-token prompts plus 128
output tokens run past them. The MoE families (no released checkpoint fits this machine: Qwen3-30B-A3B and
gpt-oss-20b) get 32 experts of width 256 per layer, top 4, untied embeddings; GPT-OSS keeps transformers'
default SwiGLU constants (vLLM's own GPT-OSS has them built in), so both platforms compute the same model.

    .venv/bin/python benchmarks/random_model.py Gemma3ForCausalLM   # prints the folder
"""

from __future__ import annotations

import sys
from pathlib import Path

WINDOW = 64
SHAPE = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=12,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    max_position_embeddings=2048,
)
ARCHITECTURES = ("Gemma3ForCausalLM", "MistralForCausalLM", "Qwen3MoeForCausalLM", "GptOssForCausalLM")
EXPERTS = dict(num_experts_per_tok=4, tie_word_embeddings=False)


def _config(arch: str, vocab_size: int, bos: int | None, eos: int | None):
    from transformers import Gemma3TextConfig, GptOssConfig, MistralConfig, Qwen3MoeConfig

    common = dict(SHAPE, vocab_size=vocab_size, bos_token_id=bos, eos_token_id=eos, tie_word_embeddings=True)
    if arch == "Gemma3ForCausalLM":
        # Gemma 3's 5 local : 1 global layer pattern, its local and global RoPE bases.
        return Gemma3TextConfig(**common, sliding_window=WINDOW, query_pre_attn_scalar=64)
    if arch == "MistralForCausalLM":
        return MistralConfig(**common, sliding_window=WINDOW)
    if arch == "Qwen3MoeForCausalLM":
        return Qwen3MoeConfig(
            **{**common, **EXPERTS}, num_experts=32, moe_intermediate_size=256, norm_topk_prob=True
        )
    if arch == "GptOssForCausalLM":  # alternating sliding and full layers, sinks, biases, YaRN
        return GptOssConfig(
            **{**common, **EXPERTS, "intermediate_size": 256}, num_local_experts=32, sliding_window=WINDOW
        )
    raise SystemExit(f"unknown architecture {arch}; choose from {', '.join(ARCHITECTURES)}")


def random_model_folder(arch: str) -> Path:
    """The checkpoint's folder (built once, under the plugin's cache)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tt_vllm_plugin.models.default import cache_root, default_model_path

    folder = cache_root() / "bench-random" / f"{arch}-w{WINDOW}"
    if (folder / "config.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    config = _config(arch, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    config.architectures = [arch]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    print(random_model_folder(sys.argv[1] if len(sys.argv) > 1 else ARCHITECTURES[0]))
