"""Offline generation throughput: the tt plugin (host device) vs vLLM's native CPU platform vs transformers.

    .venv/bin/python benchmarks/offline_throughput.py [--systems plugin,native,native-all-cores,transformers]
        [--dtype float32]
        [--batches 32,1] [--output-tokens 128] [--prefill-batching on|off] [--out FILE.json]
        [--model FOLDER | --random-model ARCH (random_model.py)] [--kv-cache-mib 2048]
        [--threads N] [--no-ceilings]

Each system runs in its own child process (vLLM picks its platform once per process), on the same
model folder, dtype, prompts and thread count (OMP_NUM_THREADS = cores, for every system). Greedy
decoding with ignore_eos, so every system produces exactly batch x output-tokens tokens. Prints a table
with ratios against the native platform measured in the same run, and writes JSON.

vLLM's native CPU platform binds its engine's OpenMP threads itself: by default it keeps one core per
worker for its scheduler process (``VLLM_CPU_NUM_OF_RESERVED_CPU``), so on a 2-core machine ``native``
computes on one core. ``native-all-cores`` is the same platform told to reserve none, computing on
every core as the plugin does; the ratio against it compares the platforms' work, the ratio against
``native`` what a user gets from each by default. `--prefill-batching off`
runs the plugin with one request per prefill call (the `prefill_batching` TT option). `--random-model`
runs a small random-weight checkpoint of a sliding-window or mixture-of-experts family instead of the
embedded model (random_model.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROMPT_TOKENS = 32
KV_CACHE_BYTES = 2 * 2**30


def _prompts(tokenizer, batch: int) -> list[list[int]]:
    base = tokenizer.encode(
        "Write a long and detailed story about a lighthouse keeper who discovers a message in a bottle, "
        "and what happens over the following years in the small town by the sea."
    )
    # Distinct prompts of one length: rotate the base so no prefix is shared across the batch.
    return [(base[i % len(base) :] + base[: i % len(base)])[:PROMPT_TOKENS] for i in range(batch)]


def run_vllm(
    model: str,
    dtype: str,
    batches: list[int],
    output_tokens: int,
    additional_config: dict | None = None,
    kv_cache_bytes: int = KV_CACHE_BYTES,
    block_size: int | None = None,
) -> dict[str, float]:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    start = time.perf_counter()
    llm = LLM(
        model=model,
        dtype=dtype,
        max_model_len=1024,
        max_num_seqs=max(batches),
        seed=0,
        kv_cache_memory_bytes=kv_cache_bytes,  # the same KV space for both platforms
        additional_config=additional_config or {},
        **({} if block_size is None else {"block_size": block_size}),
    )
    results = {"engine_start_s": time.perf_counter() - start}
    params = SamplingParams(temperature=0.0, max_tokens=output_tokens, ignore_eos=True)
    tokenizer = llm.get_tokenizer()
    llm.generate([TokensPrompt(prompt_token_ids=_prompts(tokenizer, 1)[0])], params, use_tqdm=False)  # warm
    for batch in batches:
        prompts = [TokensPrompt(prompt_token_ids=p) for p in _prompts(tokenizer, batch)]
        start = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        elapsed = time.perf_counter() - start
        produced = sum(len(o.outputs[0].token_ids) for o in outputs)
        results[f"batch_{batch}_tok_s"] = produced / elapsed
    return results


def run_transformers(model: str, dtype: str, batches: list[int], output_tokens: int) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    hf = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).eval()
    results: dict[str, float] = {}
    for batch in batches:
        ids = torch.tensor(_prompts(tokenizer, batch))  # one length: no padding needed
        start = time.perf_counter()
        with torch.inference_mode():
            out = hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=output_tokens,
                min_new_tokens=output_tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )
        elapsed = time.perf_counter() - start
        results[f"batch_{batch}_tok_s"] = (out.shape[1] - ids.shape[1]) * batch / elapsed
    return results


SYSTEM_ENV = {
    "plugin": {"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "host"},
    "native": {"VLLM_PLUGINS": ""},  # no plugins: vLLM's own CPU platform, its default core binding
    # The same platform computing on every core (it reserves one per worker for its scheduler otherwise).
    "native-all-cores": {"VLLM_PLUGINS": "", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"},
    "transformers": {},
}


def _child(args: argparse.Namespace) -> None:
    batches = [int(b) for b in args.batches.split(",")]
    if args.child == "transformers":
        results = run_transformers(args.model, args.dtype, batches, args.output_tokens)
    else:
        tt = (
            {"tt": {"prefill_batching": False}}
            if args.child == "plugin" and args.prefill_batching == "off"
            else None
        )
        kv_bytes = args.kv_cache_mib * 2**20
        results = run_vllm(args.model, args.dtype, batches, args.output_tokens, tt, kv_bytes, args.block_size)
    print("RESULT " + json.dumps(results), flush=True)


def cpu_summary() -> str:
    """The CPU's model name and the flags that decide its arithmetic, recorded with every figure."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    flags = set(fields.get("flags\t\t", fields.get("flags", "")).split())
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")
    name = fields.get("model name\t", "").strip() or "unknown CPU"
    return f"{name}; {os.cpu_count()} cores; " + " ".join(f for f in wanted if f in flags)


def _ceilings(args: argparse.Namespace, threads: str) -> dict:
    """benchmarks/ceilings.py in a child with the systems' thread count; per-batch ceiling and bound."""
    here = Path(__file__).with_name("ceilings.py")
    command = [sys.executable, str(here), "--model", args.model, "--dtype", args.dtype]
    command += ["--batches", args.batches, "--json"]
    print("measuring this machine's ceilings ...", file=sys.stderr, flush=True)
    # The OpenMP settings of the plugin's engine (its short spin, unless the user set one), so that the
    # ceiling is measured as the plugin computes; vLLM's native platform ignores the spin count.
    from tt_vllm_plugin.device.host import HOST_GOMP_SPINCOUNT

    env = {**os.environ, "OMP_NUM_THREADS": threads}
    if "OMP_WAIT_POLICY" not in env:
        env.setdefault("GOMP_SPINCOUNT", HOST_GOMP_SPINCOUNT)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("CEILINGS ")), None)
    if done.returncode != 0 or line is None:
        sys.exit(f"ceilings.py failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    found = json.loads(line.removeprefix("CEILINGS "))
    gemm = {int(b): v for b, v in found["gemm_tok_s"].items()}
    batches = [int(b) for b in args.batches.split(",")]
    ceiling = {str(b): min(gemm[b], found["bandwidth_tok_s"] * b) for b in batches}
    bound = {str(b): "compute" if gemm[b] <= found["bandwidth_tok_s"] * b else "memory" for b in batches}
    return {**found, "ceiling": ceiling, "bound": bound}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="plugin,native,native-all-cores,transformers")
    parser.add_argument("--model", default=None, help="HF folder (default: the embedded model)")
    parser.add_argument(
        "--random-model", default=None, help="architecture of a small random checkpoint (random_model.py)"
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batches", default="32,1")
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument(
        "--prefill-batching",
        default="on",
        choices=["on", "off"],
        help="plugin: off = one request per prefill",
    )
    parser.add_argument(
        "--out", default=None, help="JSON file (default: benchmarks/results/offline_throughput_DTYPE.json)"
    )
    parser.add_argument(
        "--no-ceilings", action="store_true", help="skip measuring this machine's ceilings (ceilings.py)"
    )
    parser.add_argument(
        "--kv-cache-mib", type=int, default=KV_CACHE_BYTES // 2**20, help="KV space of both vLLM platforms"
    )
    parser.add_argument(
        "--block-size",
        type=int,
        default=None,
        help="KV cache block size of both vLLM platforms (default: each platform's own)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS of every system (default: the cores); vLLM's native CPU platform binds its "
        "own threads (one core kept for its scheduler process)",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.random_model is not None:
        from random_model import random_model_folder  # benchmarks/ is on sys.path: this script's folder

        args.model = str(random_model_folder(args.random_model))
    if args.model is None:
        from tt_vllm_plugin.models.default import default_model_path

        args.model = str(default_model_path())
    if args.child:
        _child(args)
        return

    threads = str(args.threads or os.cpu_count() or 1)
    results: dict[str, dict[str, float]] = {}
    for system in args.systems.split(","):
        env = {**os.environ, "OMP_NUM_THREADS": threads, **SYSTEM_ENV[system]}
        command = [
            sys.executable,
            __file__,
            "--child",
            system,
            "--model",
            args.model,
            "--dtype",
            args.dtype,
            "--batches",
            args.batches,
            "--output-tokens",
            str(args.output_tokens),
            "--prefill-batching",
            args.prefill_batching,
            "--kv-cache-mib",
            str(args.kv_cache_mib),
            *([] if args.block_size is None else ["--block-size", str(args.block_size)]),
        ]
        print(f"running {system} ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if done.returncode != 0 or line is None:
            errors = [x for x in done.stderr.splitlines() if "Error" in x or "error" in x]
            sys.exit(f"{system} failed (exit {done.returncode}):\n" + "\n".join(errors[-20:]))
        results[system] = json.loads(line.removeprefix("RESULT "))

    ceilings = None if args.no_ceilings else _ceilings(args, threads)
    batches = args.batches.split(",")
    print(f"\nCPU: {cpu_summary()}")
    header = (
        f"{'system':<18}" + "".join(f"{'batch ' + b + ' tok/s':>18}" for b in batches) + f"{'start s':>10}"
    )
    print(f"\nmodel {args.model}, dtype {args.dtype}, {args.output_tokens} output tokens, {threads} threads")
    print(f"plugin prefill batching {args.prefill_batching}")
    print(header)
    for system, figures in results.items():
        row = f"{system:<18}" + "".join(f"{figures[f'batch_{b}_tok_s']:>18.1f}" for b in batches)
        row += f"{figures.get('engine_start_s', float('nan')):>10.1f}"
        print(row)
    for baseline in ("native", "native-all-cores"):
        if baseline not in results:
            continue
        for system, figures in results.items():
            if system.startswith("native"):
                continue
            ratios = ", ".join(
                f"batch {b}: {figures[f'batch_{b}_tok_s'] / results[baseline][f'batch_{b}_tok_s']:.2f}x"
                for b in batches
            )
            print(f"{system} vs {baseline}: {ratios}")
    if ceilings is not None:
        print(
            f"ceilings ({args.dtype} computed in {ceilings['compute_dtype']}, benchmarks/ceilings.py): "
            + ", ".join(
                f"batch {b}: {ceilings['ceiling'][b]:.1f} tok/s ({ceilings['bound'][b]})" for b in batches
            )
            + f"; read bandwidth {ceilings['read_gb_s']:.1f} GB/s"
        )
        for system, figures in results.items():
            if system == "transformers":
                continue
            shares = ", ".join(
                f"batch {b}: {100 * figures[f'batch_{b}_tok_s'] / ceilings['ceiling'][b]:.0f}%"
                for b in batches
            )
            print(f"{system} share of the ceiling: {shares}")
    short_dtype = {"float32": "fp32", "bfloat16": "bf16"}[args.dtype]
    suffix = "_prefill1" if args.prefill_batching == "off" else ""  # never overwrite the batched figures
    model = f"_{args.random_model}" if args.random_model else ""
    out = Path(args.out or f"benchmarks/results/offline_throughput{model}_{short_dtype}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"args": vars(args), "threads": threads, "cpu": cpu_summary(), "results": results}
    if ceilings is not None:
        record["ceilings"] = ceilings
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
