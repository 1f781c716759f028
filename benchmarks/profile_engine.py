"""Where the time of `vllm.LLM.generate` goes, per process and per kind of work, sampled with py-spy.

    .venv/bin/python benchmarks/profile_engine.py [--system plugin|native] [--dtype float32] [--batch 32]
        [--output-tokens 128] [--rate 250] [--keep FILE.txt]

Runs the offline benchmark's workload (offline_throughput.py: greedy, ignore_eos, 32-token prompts), warms
it up, then records one generate call with ``py-spy record --pid <front end> --subprocesses --idle`` and
sorts the samples by process (the ``vllm.LLM`` front end, the engine core) and by what the innermost
recognised frame does: matmuls, attention, the other model ops, sampling, the runner's Python, vLLM's
scheduler, output handling and IPC, and waiting (idle: the innermost frame is a wait). OpenMP worker
threads are not Python threads and are not sampled; the Python thread that launched their work is.
Needs py-spy (``pip install py-spy``; not a project dependency), which takes a little CPU itself:
compare the shares, and take tok/s from an unprofiled run.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (category, substrings of a frame, innermost match wins); order breaks ties within one frame.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("matmul", ("onednn_mm", "weight_packed_linear", "host/linear.py")),
    ("attention", ("paged_attention", "cpu_attention", "cpu_attn", "attend")),
    ("sampling", ("sampler", "sampling.py", "host_sampler", "device_sampling", "argmax", "topk_topp")),
    ("norms, activation, RoPE", ("host/ops.py", "rms_norm", "silu_and_mul", "rotate")),
    ("model other", ("models/host",)),
    ("runner", ("tt_vllm_plugin/worker", "gpu_model_runner", "cpu_model_runner", "input_batch")),
    ("scheduler", ("v1/core/sched", "kv_cache_manager", "block_pool")),
    ("output / IPC", ("output_processor", "detokenizer", "msgspec", "serial_utils", "zmq", "pickle")),
]
IDLE_FRAMES = ("epoll_wait", "futex", "poll", "select", "wait", "sleep", "recv", "sem_")


def categorise(code: list[str]) -> str:
    """The kind of work of one sample's frames (outermost first): the innermost frame that names one,
    skipping torch's op dispatch (``torch/_ops.py``, ``vllm/_custom_ops.py``), which says nothing."""
    if not code or any(word in code[-1].lower() for word in IDLE_FRAMES):
        return "idle (waiting)"
    for frame in reversed(code):
        low = frame.lower()
        if "torch/_ops.py" in low or "_custom_ops.py" in low:
            continue
        for name, needles in CATEGORIES:
            if any(n in low for n in needles):
                return name
    return "other Python / torch"


def summarise(raw: Path) -> dict[str, collections.Counter]:
    """py-spy raw (collapsed) output -> samples per (process, category)."""
    per_process: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        # py-spy nests a child's frames under its parents' "process PID:cmdline" elements.
        where = max(i for i, frame in enumerate(frames) if frame.startswith("process "))
        process = _process_label(frames[where])
        if "resource_tracker" in frames[where]:
            continue  # multiprocessing's helper: blocked in a read that py-spy cannot tell from work
        code = frames[where + 1 :]
        # Only each process's main thread: vLLM's IO threads (zmq in/out) wait almost all the time.
        if any(frame.startswith("Thread._bootstrap ") for frame in code):
            continue
        per_process[process][categorise(code)] += int(count)
    return per_process


def _process_label(frame: str) -> str:
    pid, _, cmdline = frame.removeprefix("process ").partition(":")
    if "profile_engine.py" in cmdline:
        return f"{pid} front end (vllm.LLM)"
    return f"{pid} {cmdline.strip(chr(34))[-60:]}"


def _workload(args: argparse.Namespace) -> None:
    """The profiled run: warm up, attach py-spy to this process and its children, generate, stop py-spy."""
    sys.path.insert(0, str(Path(__file__).parent))
    from offline_throughput import _prompts
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from tt_vllm_plugin.models.default import default_model_path

    llm = LLM(
        model=str(default_model_path()),
        dtype=args.dtype,
        max_model_len=1024,
        max_num_seqs=max(args.batch, 1),
        seed=0,
        kv_cache_memory_bytes=256 * 2**20,
    )
    params = SamplingParams(temperature=0.0, max_tokens=args.output_tokens, ignore_eos=True)
    prompts = [TokensPrompt(prompt_token_ids=p) for p in _prompts(llm.get_tokenizer(), args.batch)]
    llm.generate(prompts, params, use_tqdm=False)  # warm: every batch size's oneDNN primitives built
    command = [args.spy, "record", "--pid", str(os.getpid()), "--subprocesses", "--idle"]
    command += ["--format", "raw", "-r", str(args.rate), "-o", args.raw]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)  # py-spy attaches to every process
    start = time.perf_counter()
    llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    spy.wait(timeout=60)
    print(f"RESULT {args.batch * args.output_tokens / elapsed:.1f} tok/s in {elapsed:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="plugin", choices=["plugin", "native"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--keep", default=None, help="keep py-spy's raw output in this file")
    parser.add_argument("--summarise", default=None, help="only summarise an earlier raw file")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spy", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--raw", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        _workload(args)
        return
    if args.summarise:
        _print(summarise(Path(args.summarise)))
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        sys.exit("py-spy not found: pip install py-spy")
    raw = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="profile_engine_")) / "raw.txt"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
        "VLLM_PLUGINS": "tt" if args.system == "plugin" else "",
        **({"TT_VLLM_DEVICE": "host"} if args.system == "plugin" else {}),
    }
    child = [sys.executable, __file__, "--workload", "--dtype", args.dtype, "--batch", str(args.batch)]
    child += ["--output-tokens", str(args.output_tokens), "--rate", str(args.rate)]
    child += ["--spy", spy, "--raw", str(raw)]
    done = subprocess.run(child, env=env, capture_output=True, text=True)
    result = next((x for x in done.stdout.splitlines() if x.startswith("RESULT")), None)
    if done.returncode != 0 or result is None:
        sys.exit(f"profiled run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    print(
        f"{args.system}, {args.dtype}, batch {args.batch} x {args.output_tokens}: {result[7:]} (under py-spy)"
    )
    _print(summarise(raw))


def _print(per_process: dict[str, collections.Counter]) -> None:
    for process, counts in sorted(per_process.items(), key=lambda item: -sum(item[1].values())):
        total = sum(counts.values())
        busy = total - counts.get("idle (waiting)", 0)
        print(f"\n{process[:90]}, main thread: {total} samples, {100 * busy / total:.0f}% busy")
        for name, count in counts.most_common():
            print(f"  {name:<22} {100 * count / total:5.1f}%")


if __name__ == "__main__":
    main()
