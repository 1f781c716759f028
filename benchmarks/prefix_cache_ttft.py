"""Time to first token with and without a prefix-cache hit, on the tt plugin (host device).

    .venv/bin/python benchmarks/prefix_cache_ttft.py [--prefix-tokens 1000] [--repeats 5]

A request with a long prompt is sent once (cold: the whole prompt is prefilled), then requests that share
its prefix and differ in a short suffix (warm: vLLM's prefix cache supplies the shared blocks and the
runner computes only the suffix). TTFT is the time to generate one token; prints the medians and their
ratio, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("VLLM_PLUGINS", "tt")
os.environ.setdefault("TT_VLLM_DEVICE", "host")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix-tokens", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--out", default="benchmarks/results/prefix_cache_ttft.json")
    args = parser.parse_args()

    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from tt_vllm_plugin.models.default import default_model_path

    llm = LLM(model=str(default_model_path()), dtype=args.dtype, max_model_len=2048, max_num_seqs=4, seed=0)
    tokenizer = llm.get_tokenizer()
    text = "The lighthouse keeper wrote in his log every night about the ships, the weather and the sea. "
    base = tokenizer.encode(text * (args.prefix_tokens // 15 + 1))
    params = SamplingParams(temperature=0.0, max_tokens=1)

    def ttft(prompt: list[int]) -> tuple[float, int]:
        start = time.perf_counter()
        output = llm.generate([TokensPrompt(prompt_token_ids=prompt)], params, use_tqdm=False)[0]
        return time.perf_counter() - start, output.num_cached_tokens or 0

    cold, warm, cached = [], [], []
    for repeat in range(args.repeats):
        # A fresh prefix per repeat (rotated text) so the cold request really misses the cache.
        prefix = (base[repeat:] + base[:repeat])[: args.prefix_tokens]
        seconds, _ = ttft(prefix + tokenizer.encode(" First question?"))
        cold.append(seconds)
        seconds, hit = ttft(prefix + tokenizer.encode(" Second question?"))
        warm.append(seconds)
        cached.append(hit)

    result = {
        "prefix_tokens": args.prefix_tokens,
        "dtype": args.dtype,
        "cold_ttft_s_median": statistics.median(cold),
        "warm_ttft_s_median": statistics.median(warm),
        "speedup": statistics.median(cold) / statistics.median(warm),
        "cached_tokens": cached,
        "cold_ttft_s": cold,
        "warm_ttft_s": warm,
    }
    cold_ms, warm_ms = result["cold_ttft_s_median"] * 1000, result["warm_ttft_s_median"] * 1000
    print(
        f"prefix {args.prefix_tokens} tokens, {args.dtype}: cold TTFT {cold_ms:.0f} ms, warm (prefix "
        f"cached, {statistics.median(cached):.0f} tokens) {warm_ms:.0f} ms, {result['speedup']:.1f}x"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":  # vLLM's engine core starts with multiprocessing spawn
    main()
