"""This machine's ceilings for a model's decode, measured with the libraries the host models use, so that a
tok/s figure has a denominator.

    .venv/bin/python benchmarks/ceilings.py [--model FOLDER] [--dtype float32|bfloat16] [--batches 32,1]

- **Compute** (what bounds a large batch): the model's own linear layers (every decoder layer's q/k/v, o,
  gate/up and down projections, and the LM head) at M = batch rows, through :class:`HostLinear` (vLLM's
  prepacked oneDNN GEMM, or its AMX small-GEMM, where the host models use them), back to back with nothing
  else: ``batch / time`` is the tok/s no decode step can beat, attention, sampling and scheduling being free.
- **Memory** (what bounds batch 1): every decode step reads all the weights once. Read bandwidth is measured
  by summing a buffer much larger than the caches, in the model's dtype; ``bandwidth / weight bytes`` is the
  tok/s no step can beat at batch 1.

Where the CPU would emulate the model's dtype (bf16 without avx512_bf16/AMX), the host device computes in
float32 (``device/cpu_dtype.py``), and so do the ceilings: the fastest this machine runs that model is its
float32 GEMM. ``compute_dtype`` says which was measured.

Both run with the thread count the benchmark runs with (``OMP_NUM_THREADS``, default all cores) and report
the fastest of several rounds (a ceiling is the best the machine does; on a machine shared with other work
the median measures the other work). ``ceiling(batch)`` is the lower of the two for that batch.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

ROUNDS = 7
BANDWIDTH_BYTES = 1 << 30  # 1 GiB: far beyond any last-level cache of the machines we run on


@dataclass(frozen=True)
class Ceilings:
    dtype: str
    compute_dtype: str  # what the host device computes a model of ``dtype`` in on this CPU
    threads: int
    weight_bytes: int  # bytes a decode step reads at batch 1 (every linear weight and the LM head)
    read_gb_s: float
    gemm_tok_s: dict[int, float]  # batch -> tok/s of the linear layers alone
    bandwidth_tok_s: float  # tok/s at batch 1 if the weights are read once per step at read_gb_s

    def ceiling(self, batch: int) -> float:
        """The tok/s a decode at ``batch`` cannot exceed on this machine."""
        per_step = self.bandwidth_tok_s * batch  # the weights are read once per step, whatever the batch
        return min(self.gemm_tok_s[batch], per_step)

    def bound(self, batch: int) -> str:
        return "compute" if self.gemm_tok_s[batch] <= self.bandwidth_tok_s * batch else "memory"


def linear_shapes(config: Any) -> list[tuple[int, int]]:
    """(out_features, in_features) of every linear layer a decode step runs, in order."""
    hidden = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    intermediate = config.intermediate_size
    layer = [
        ((heads + 2 * kv_heads) * head_dim, hidden),  # q, k, v packed
        (hidden, heads * head_dim),  # o
        (2 * intermediate, hidden),  # gate, up packed
        (hidden, intermediate),  # down
    ]
    return layer * config.num_hidden_layers + [(config.vocab_size, hidden)]


def _fastest_seconds(action, rounds: int = ROUNDS) -> float:
    action()  # warm: first calls build oneDNN primitives and fault pages in
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def gemm_tok_s(config: Any, dtype: torch.dtype, batch: int) -> float:
    from tt_vllm_plugin.models.host.linear import HostLinear

    torch.manual_seed(0)
    layers = [
        HostLinear(torch.randn(n, k, dtype=dtype) * 0.02, keep_weight=False) for n, k in linear_shapes(config)
    ]
    inputs = {k: torch.randn(batch, k, dtype=dtype) for _, k in linear_shapes(config)}

    def step() -> None:
        with torch.inference_mode():
            for layer in layers:
                layer(inputs[layer.in_features])

    return batch / _fastest_seconds(step)


def read_gb_s() -> float:
    """Read bandwidth from memory: a sum over a float32 buffer far larger than the caches (the bytes are
    what count; a reduction in the model's dtype would time its conversion instead)."""
    buffer = torch.ones(BANDWIDTH_BYTES // 4, dtype=torch.float32)
    seconds = _fastest_seconds(buffer.sum)
    return BANDWIDTH_BYTES / seconds / 1e9


def measure(model: str, dtype: str, batches: list[int]) -> Ceilings:
    from transformers import AutoConfig

    from tt_vllm_plugin.device.cpu_dtype import CpuArithmetic, decide_compute_dtype

    config = AutoConfig.from_pretrained(model)
    torch_dtype = decide_compute_dtype(getattr(torch, dtype), CpuArithmetic.of_this_machine()).dtype
    weight_bytes = sum(n * k for n, k in linear_shapes(config)) * torch.finfo(torch_dtype).bits // 8
    bandwidth = read_gb_s()
    return Ceilings(
        dtype=dtype,
        compute_dtype=str(torch_dtype).removeprefix("torch."),
        threads=torch.get_num_threads(),
        weight_bytes=weight_bytes,
        read_gb_s=bandwidth,
        gemm_tok_s={batch: gemm_tok_s(config, torch_dtype, batch) for batch in batches},
        bandwidth_tok_s=bandwidth * 1e9 / weight_bytes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="HF folder (default: the embedded model)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batches", default="32,1")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = parser.parse_args()
    if args.model is None:
        from tt_vllm_plugin.models.default import default_model_path

        args.model = str(default_model_path())
    batches = [int(b) for b in args.batches.split(",")]
    found = measure(args.model, args.dtype, batches)
    if args.json:
        print("CEILINGS " + json.dumps(asdict(found)), flush=True)
        return
    threads = os.environ.get("OMP_NUM_THREADS")
    computed = f"{args.dtype} (computed in {found.compute_dtype})"
    print(f"{args.model}, {computed}, {found.threads} threads (OMP_NUM_THREADS={threads})")
    print(
        f"weights read per step: {found.weight_bytes / 1e6:.0f} MB; read bandwidth {found.read_gb_s:.1f} GB/s"
    )
    for batch in batches:
        print(
            f"batch {batch:>3}: linear layers alone {found.gemm_tok_s[batch]:8.1f} tok/s, weights once per "
            f"step {found.bandwidth_tok_s * batch:8.1f} tok/s -> ceiling {found.ceiling(batch):8.1f} "
            f"({found.bound(batch)})"
        )


if __name__ == "__main__":
    main()
