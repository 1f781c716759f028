"""Llama-3.1-8B-Instruct with vllm.LLM on Tenstorrent hardware (the ttnn device and tt-metal's model).

Needs a machine with a Tenstorrent card, ttnn and a tt-metal checkout (see
docs/getting-started/tenstorrent.md); untested on the project's CI machines, which have neither.

MESH_DEVICE=N150 PYTHONPATH=$TT_METAL_HOME .venv/bin/python examples/llama_3_1_8b_instruct.py \\
    --model /path/to/Llama-3.1-8B-Instruct [--tt-options '{"trace_mode": "decode_only"}'] [prompt ...]
"""

from __future__ import annotations

import argparse
import json
import os

# The platform is chosen when vLLM first starts: select ours, on the ttnn device, before importing it.
os.environ.setdefault("VLLM_PLUGINS", "tt")
os.environ.setdefault("TT_VLLM_DEVICE", "ttnn")

DEFAULT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
DEFAULT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about silicon.",
    "Explain KV caching in two sentences.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", nargs="*", default=DEFAULT_PROMPTS)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Hugging Face id or local folder")
    parser.add_argument("--max-tokens", type=int, default=128)
    # tt-metal's Llama-3.1-8B accepts at most 32768 on a single Wormhole card (N150).
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--max-num-seqs", type=int, default=32)
    parser.add_argument(
        "--tt-options", default="{}", help="TT options as a JSON object (docs/reference/tt-options.md)"
    )
    args = parser.parse_args()

    # tt_transformers finds its weights (and names its caches) through HF_MODEL.
    os.environ.setdefault("HF_MODEL", args.model)

    from vllm import LLM, SamplingParams

    llm = LLM(
        model=args.model,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        additional_config={"tt": json.loads(args.tt_options)},
    )
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    conversations = [[{"role": "user", "content": prompt}] for prompt in args.prompts]
    for prompt, output in zip(args.prompts, llm.chat(conversations, params), strict=True):
        print(f"--- {prompt!r}\n{output.outputs[0].text}\n")


if __name__ == "__main__":  # vLLM's engine core starts with multiprocessing spawn
    main()
