"""Generate text with vllm.LLM on the tt platform (host device) and the embedded default model.

.venv/bin/python examples/offline_inference.py [--max-tokens N] [prompt ...]
"""

from __future__ import annotations

import argparse
import os

# The platform is chosen when vLLM first starts: select ours, on the host device, before importing it.
os.environ.setdefault("VLLM_PLUGINS", "tt")
os.environ.setdefault("TT_VLLM_DEVICE", "host")

DEFAULT_PROMPTS = ["The capital of France is", "Write a haiku about the sea.", "def fibonacci(n):"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", nargs="*", default=DEFAULT_PROMPTS)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()

    from vllm import LLM, SamplingParams

    from tt_vllm_plugin.models.default import default_model_path

    llm = LLM(model=str(default_model_path()), max_model_len=2048, max_num_seqs=8)
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    for output in llm.generate(args.prompts, params):
        print(f"--- {output.prompt!r}\n{output.outputs[0].text}\n")


if __name__ == "__main__":  # vLLM's engine core starts with multiprocessing spawn
    main()
