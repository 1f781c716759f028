"""Random-weight checkpoints of the mixture-of-experts families, for throughput runs where no released
checkpoint fits a 2-core machine (Qwen3-30B-A3B and gpt-oss-20b need 60-120 GB in float32).

    .venv/bin/python benchmarks/random_checkpoints.py {qwen3-moe,gpt-oss} OUT_FOLDER

Small but shaped like the released models (every layer a mixture of 32 experts, top 4; GPT-OSS with
alternating 128-token windows, sinks, biases and YaRN), about 0.1 B parameters, no tokenizer
(offline_throughput.py then sends token ids). GPT-OSS keeps transformers' default SwiGLU limit (7.0):
vLLM's own GPT-OSS hard-codes it, so both platforms compute the same model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SHAPE = dict(
    vocab_size=8192,
    hidden_size=512,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=64,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
)


def config_of(family: str):
    from transformers import GptOssConfig, Qwen3MoeConfig

    if family == "qwen3-moe":
        return Qwen3MoeConfig(
            **SHAPE,
            intermediate_size=1024,
            moe_intermediate_size=256,
            num_experts=32,
            num_experts_per_tok=4,
            norm_topk_prob=True,
        )
    return GptOssConfig(
        **SHAPE, intermediate_size=256, num_local_experts=32, num_experts_per_tok=4, sliding_window=128
    )


def save(family: str, folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    config = config_of(family)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # peakier logits than the default init, as tests/e2e/random_models.py
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.05)
            elif name.endswith("sinks"):
                param.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=["qwen3-moe", "gpt-oss"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    folder = save(args.family, args.out)
    print(folder)


if __name__ == "__main__":
    main()
