"""Time one mixture-of-experts layer's experts in-process, A/B: plain torch vs vLLM's CPU fused-MoE kernel.

    .venv/bin/python benchmarks/host_moe_experts.py [--dtype float32] [--tokens 1,4,32,256] [--rounds 5]

Both implementations (models/host/moe.py ``TorchExperts``, models/host/fused_moe.py ``FusedExperts``) are
built from the same random weights (32 experts, hidden 512, expert width 256, top 4: the shape of
benchmarks/random_checkpoints.py) for SwiGLU (Qwen3-MoE) and GPT-OSS's clamped SwiGLU (1.702 / 7.0, with
biases), and timed in alternating rounds (medians), so contention from other work hits both alike. Also
prints the largest difference between the two relative to the output's magnitude.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from tt_vllm_plugin import envs
from tt_vllm_plugin.models.host.moe import ClampedSwiGLU, Experts, stacked_experts
from tt_vllm_plugin.models.host.ops import HostOps

EXPERTS, HIDDEN, INTER, TOP_K = 32, 512, 256, 4


def build(dtype: torch.dtype, clamped: ClampedSwiGLU | None) -> tuple[Experts, Experts]:
    gen = torch.Generator().manual_seed(0)
    gate_up = torch.randn(EXPERTS, 2 * INTER, HIDDEN, generator=gen) * 0.05
    down = torch.randn(EXPERTS, HIDDEN, INTER, generator=gen) * 0.05
    biases = [torch.randn(EXPERTS, 2 * INTER, generator=gen), torch.randn(EXPERTS, HIDDEN, generator=gen)]
    tensors = [t.to(dtype) for t in (gate_up, down, *(b * 0.1 for b in biases))]
    if clamped is None:
        tensors = tensors[:2] + [None, None]
    kernel = stacked_experts(*tensors, clamped=clamped)
    os.environ[envs.TT_VLLM_HOST_MOE.name] = "torch"
    try:
        plain = stacked_experts(*tensors, clamped=clamped)
    finally:
        del os.environ[envs.TT_VLLM_HOST_MOE.name]
    return plain, kernel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--tokens", default="1,4,32,256")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20, help="calls per round")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    ops = HostOps(True)
    print(f"{args.dtype}, {torch.get_num_threads()} threads; ms per call (median of {args.rounds} rounds)")
    print(f"{'activation':<12}{'tokens':>8}{'torch ms':>11}{'kernel ms':>11}{'speed-up':>10}{'max diff':>12}")
    for name, clamped in (("swiglu", None), ("clamped", ClampedSwiGLU(1.702, 7.0))):
        plain, kernel = build(dtype, clamped)
        if type(kernel) is type(plain):
            raise SystemExit("vLLM's fused-MoE kernel does not apply here (no CPU kernels loaded?)")
        for tokens in (int(t) for t in args.tokens.split(",")):
            gen = torch.Generator().manual_seed(tokens)
            x = torch.randn(tokens, HIDDEN, generator=gen).to(dtype)
            weights = torch.rand(tokens, TOP_K, generator=gen).to(dtype)
            ids = torch.stack([torch.randperm(EXPERTS, generator=gen)[:TOP_K] for _ in range(tokens)])
            times: dict[str, list[float]] = {"torch": [], "kernel": []}
            for _ in range(args.rounds):
                for label, experts in (("torch", plain), ("kernel", kernel)):
                    start = time.perf_counter()
                    for _ in range(args.calls):
                        experts(x, weights, ids, ops)
                    times[label].append((time.perf_counter() - start) / args.calls * 1000)
            expected = plain(x, weights, ids, ops).float()
            diff = float((kernel(x, weights, ids, ops).float() - expected).abs().max() / expected.abs().max())
            t_plain, t_kernel = statistics.median(times["torch"]), statistics.median(times["kernel"])
            print(
                f"{name:<12}{tokens:>8}{t_plain:>11.2f}{t_kernel:>11.2f}{t_plain / t_kernel:>9.1f}x"
                f"{diff:>12.1e}"
            )


if __name__ == "__main__":
    main()
