"""Time the host model's decode step in-process (no vLLM engine), A/B between GEMM backends.

    .venv/bin/python benchmarks/host_decode_step.py [--dtype float32] [--batches 32,1] [--steps 32]
        [--backends auto,torch] [--rounds 3] [--small-ops one-thread,parallel]

``--small-ops one-thread,parallel`` A/Bs the norms, activations and RoPE of a decode step on one
OpenMP thread (the default, ``models/host/ops.py``) against all threads. Every variant lives in one
process and they are timed in alternating rounds, so CPU contention from other work hits them alike;
medians are reported. tok/s here is decode only (no scheduler, no sampling).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tt_vllm_plugin.device.host import open_host_device
from tt_vllm_plugin.models.default import default_model_path
from tt_vllm_plugin.models.host import linear as host_linear
from tt_vllm_plugin.models.host import ops as host_ops
from tt_vllm_plugin.models.host.llama.architectures import TTLlamaForCausalLM

BLOCK = 32
PROMPT = 32


def load(dtype: torch.dtype, backend: str, max_batch: int) -> TTLlamaForCausalLM:
    from transformers import AutoConfig

    original = host_linear.choose_backend
    if backend != "auto":
        host_linear.choose_backend = lambda weight: backend  # type: ignore[assignment,return-value]
    try:
        config = AutoConfig.from_pretrained(str(default_model_path()))
        return TTLlamaForCausalLM.initialize_vllm_model(config, open_host_device(dtype), max_batch, 1024)
    finally:
        host_linear.choose_backend = original


def time_decode(model: TTLlamaForCausalLM, batch: int, steps: int) -> float:
    blocks_per_seq = -(-(PROMPT + steps + 1) // BLOCK)
    shape = (batch * blocks_per_seq, model.num_kv_heads, BLOCK, model.head_dim)
    kv = model.allocate_kv_cache(shape, model.dtype, len(model.weights.layers))
    table = torch.arange(batch * blocks_per_seq, dtype=torch.int32).reshape(batch, blocks_per_seq)
    tokens = torch.randint(0, 1000, (batch, PROMPT))
    model.prefill_forward(tokens, table, kv, [PROMPT] * batch)
    next_tokens = torch.randint(0, 1000, (batch, 1))
    start = time.perf_counter()
    for step in range(steps):
        pos = torch.full((batch,), PROMPT + step, dtype=torch.int32)
        logits = model.decode_forward(next_tokens, pos, table, kv)
        next_tokens = logits[:, 0].argmax(-1, keepdim=True)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batches", default="32,1")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--backends", default="auto,torch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--small-ops", default="one-thread", help="one-thread,parallel: A/B of models/host/ops.py's rule"
    )
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    batches = [int(b) for b in args.batches.split(",")]
    models = {name: load(dtype, name, max(batches)) for name in args.backends.split(",")}
    print(f"torch threads {torch.get_num_threads()}, dtype {args.dtype}")
    for name, model in models.items():
        print(f"  {name}: {model.weights.layers[0].qkv!r}, {model.weights.lm_head!r}")
    figures: dict[tuple[str, int], list[float]] = {}
    serial_below = {"one-thread": host_ops.SERIAL_BELOW_ELEMENTS, "parallel": 0}
    small_ops = args.small_ops.split(",")
    for _ in range(args.rounds):
        for batch in batches:
            for name, model in models.items():
                for mode in small_ops:
                    host_ops.SERIAL_BELOW_ELEMENTS = serial_below[mode]
                    label = name if len(small_ops) == 1 else f"{name}/{mode}"
                    time_decode(model, batch, 2)  # warm (oneDNN builds its primitive per batch size)
                    figures.setdefault((label, batch), []).append(time_decode(model, batch, args.steps))
    for (name, batch), values in figures.items():
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:<16} batch {batch:>3}: median {statistics.median(values):7.1f} tok/s  ({shown})")


if __name__ == "__main__":
    main()
