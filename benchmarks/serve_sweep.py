"""Online serving sweep: vLLM's own `vllm bench serve` against our plugin (host device) and vLLM's native CPU
platform, at several request rates, one server after the other in the same run.

The full sweep (the figures for benchmarks/RESULTS.md; run it on a quiet machine, about 16 minutes):

    .venv/bin/python benchmarks/serve_sweep.py

On x86, vLLM's native CPU platform keeps one core per worker for its scheduler process
(``VLLM_CPU_NUM_OF_RESERVED_CPU``): on a 2-core machine it computes on one. ``--backends
plugin,native,native-all-cores`` adds the same platform computing on every core, as the plugin does
(about 8 more minutes).

The same plus our plugin with prefill batching off (one request per prefill call, as Tenstorrent's
tt_transformers runner prefills), about 7 more minutes:

    .venv/bin/python benchmarks/serve_sweep.py --prefill-batching on,off

A short check (about 4 minutes, most of it the native server's torch.compile at start):

    .venv/bin/python benchmarks/serve_sweep.py --prefill-batching on,off --rates 1,inf --num-prompts 8 \\
        --input-len 64 --output-len 32 --out /tmp/serve_sweep_short.json

Fair comparison: both servers are `python -m vllm.entrypoints.openai.api_server` with the same arguments
(model folder, dtype, --max-model-len, --max-num-seqs, --max-num-batched-tokens, --kv-cache-memory-bytes,
--seed) and OMP_NUM_THREADS = the core count (vLLM's CPU platform drops to one torch thread otherwise). They
differ only in TT_VLLM_DEVICE: `host` activates the plugin, `auto` makes it step aside (no Tenstorrent card)
so vLLM picks its own CPU platform; each server's log is checked for which platform ran. Native then binds
its own threads and keeps one core for its scheduler (above); `native-all-cores` differs from `native` only
in VLLM_CPU_NUM_OF_RESERVED_CPU=0. The native server
keeps vLLM's default torch.compile (~110 s at start, excluded from the figures); --native-enforce-eager runs
it eager instead (skips the compile; not what native users run). Every server gets the same requests at a
given rate: the random dataset with seed --seed + the rate's index, fixed input/output lengths, ignore_eos,
temperature 0. Each rate has its own seed so that its prompts are new to the server: with one request set
for every rate, prefix caching (on in both platforms) served the later rates' prompts from the KV cache and
their TTFT measured cache hits. The first rate of each server starts with warm-up requests (vLLM's warm-up
sends the rate's first prompt, so that one request is a cache hit). The benchmark client shares the
machine's cores with the server, equally for every server.

On a Tenstorrent card (not run by this project: no card here), `--backends ttnn` serves through the plugin's
ttnn device instead, with tt-metal's model for the architecture and the KV pool the model sizes itself
(no --kv-cache-memory-bytes); MESH_DEVICE, HF_MODEL and PYTHONPATH (a tt-metal checkout) come from the
environment, as for any ttnn run (docs/getting-started/tenstorrent.md). Tenstorrent's published
Llama-3.1-8B rows on an N150 are printed beside its table:

    MESH_DEVICE=N150 HF_MODEL=/path/to/Llama-3.1-8B-Instruct PYTHONPATH=$TT_METAL_HOME \
        .venv/bin/python benchmarks/serve_sweep.py --backends ttnn --model /path/to/Llama-3.1-8B-Instruct \
        --dtype bfloat16 --rates 1,2,inf

`vllm bench serve` itself: vllm-cpu's `vllm` console script (and `python -m vllm.entrypoints.cli.main`) stop
on a lookup of a distribution named "vllm"; `bench serve` is vllm.benchmarks.serve's add_cli_args and main,
which this script runs in a child process (`serve_sweep.py --vllm-bench-serve ARGS...`, the same arguments).

Writes the parsed `--save-result` JSON of every run to --out (default benchmarks/results/serve_sweep.json)
and PNG plots next to it: <stem>_throughput.png, <stem>_ttft.png (mean and P99), <stem>_itl.png (mean and
P99), one line per server/variant against the offered request rate.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the e2e tests' server helper (start, health wait, stop) is reused

BENCH_FLAG = "--vllm-bench-serve"
GIB = 2**30
# Log lines that tell which platform a server ran (tt_vllm_plugin.platform / tt_vllm_plugin.activation).
PLUGIN_ACTIVE = "Platform tt (tt-vllm-plugin) active on the host device"
PLUGIN_ACTIVE_TTNN = "Platform tt (tt-vllm-plugin) active on the ttnn device"
# Tenstorrent's published serving figures for Llama-3.1-8B-Instruct through vLLM on one N150
# (../shared/notes/tenstorrent-contract.md, from the seed document): offered rate -> figures.
PUBLISHED_N150_LLAMA_8B = {
    "1": {"p99_ttft_ms": 479.0},
    "2": {"request_throughput": 1.78, "output_throughput": 376.65, "p99_ttft_ms": 9569.0},
}
PLUGIN_INACTIVE = "tt-vllm-plugin not activating"
# The columns of the printed table: (title, bench result key, format).
COLUMNS = [
    ("req/s", "request_throughput", ".2f"),
    ("out tok/s", "output_throughput", ".1f"),
    ("total tok/s", "total_token_throughput", ".1f"),
    ("TTFT mean", "mean_ttft_ms", ".0f"),
    ("TTFT med", "median_ttft_ms", ".0f"),
    ("TTFT P99", "p99_ttft_ms", ".0f"),
    ("TPOT mean", "mean_tpot_ms", ".1f"),
    ("TPOT med", "median_tpot_ms", ".1f"),
    ("TPOT P99", "p99_tpot_ms", ".1f"),
    ("ITL mean", "mean_itl_ms", ".1f"),
    ("ITL med", "median_itl_ms", ".1f"),
    ("ITL P99", "p99_itl_ms", ".1f"),
    ("duration s", "duration", ".1f"),
]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    env: dict[str, str]
    server_args: tuple[str, ...] = ()
    expect_log: str = PLUGIN_ACTIVE
    refuse_log: str | None = None
    # The KV pool comes from the model (tt-metal's get_max_tokens_all_users), not --kv-cache-memory-bytes.
    kv_from_model: bool = False


def variants(args: argparse.Namespace) -> list[Variant]:
    chosen: list[Variant] = []
    for backend in args.backends:
        if backend == "plugin":
            for batching in args.prefill_batching:
                extra: tuple[str, ...] = ()
                name, description = "plugin", "tt plugin, host device (batched prefill)"
                if batching == "off":
                    extra = ("--additional-config", json.dumps({"tt": {"prefill_batching": False}}))
                    name, description = "plugin-prefill-1", "tt plugin, host device, one request per prefill"
                env = {"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "host"}
                chosen.append(Variant(name, description, env, extra))
        elif backend == "ttnn":
            chosen.append(
                Variant(
                    "ttnn",
                    f"tt plugin, ttnn device (MESH_DEVICE={os.environ.get('MESH_DEVICE', 'unset')})",
                    {"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "ttnn"},
                    expect_log=PLUGIN_ACTIVE_TTNN,
                    kv_from_model=True,
                )
            )
        else:
            eager = ("--enforce-eager",) if args.native_enforce_eager else ()
            how = "eager" if eager else "torch.compile"
            env = {"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "auto"}  # the plugin steps aside
            if backend == "native-all-cores":
                # vLLM keeps one core per worker for its scheduler process unless told to keep none.
                env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
                how += ", every core computing"
            chosen.append(
                Variant(
                    backend,
                    f"vLLM native CPU platform ({how})",
                    env,
                    eager,
                    expect_log=PLUGIN_INACTIVE,
                    refuse_log=PLUGIN_ACTIVE,
                )
            )
    return chosen


def server_args(args: argparse.Namespace, variant: Variant) -> list[str]:
    """The vLLM server arguments every variant shares (the KV space: every variant that does not size
    its own KV pool)."""
    kv = [] if variant.kv_from_model else ["--kv-cache-memory-bytes", str(args.kv_cache_bytes)]
    return [
        "--dtype",
        args.dtype,
        "--max-model-len",
        str(max(1024, args.input_len + args.output_len)),
        "--max-num-seqs",
        str(args.max_num_seqs),
        # Set explicitly: vLLM's default differs by platform.
        "--max-num-batched-tokens",
        str(args.max_num_batched_tokens),
        *kv,
        "--seed",
        str(args.seed),
        "--uvicorn-log-level",
        "warning",
    ]


def bench_command(
    args: argparse.Namespace, base_url: str, rate: str, seed: int, result: Path, warmups: int
) -> list[str]:
    return [
        sys.executable,
        __file__,
        BENCH_FLAG,
        "--backend",
        "vllm",
        "--base-url",
        base_url,
        "--endpoint",
        "/v1/completions",
        "--model",
        args.model,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(args.input_len),
        "--random-output-len",
        str(args.output_len),
        "--num-prompts",
        str(args.num_prompts),
        "--seed",
        str(seed),
        "--request-rate",
        rate,
        "--ignore-eos",
        "--temperature",
        "0",
        "--num-warmups",
        str(warmups),
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
        "--disable-tqdm",
        "--save-result",
        "--result-dir",
        str(result.parent),
        "--result-filename",
        result.name,
    ]


def run_variant(args: argparse.Namespace, variant: Variant, work: Path) -> dict:
    from tests.e2e.server import free_port, running_server, vllm_api_server_command

    port = free_port()
    command = vllm_api_server_command(args.model, port, *server_args(args, variant), *variant.server_args)
    env = {"OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false", **variant.env}
    log_path = work / f"{variant.name}.server.log"
    print(f"== {variant.name}: {variant.description}; server log {log_path}", file=sys.stderr, flush=True)
    start = time.monotonic()
    record: dict = {
        "description": variant.description,
        "server_command": shlex.join(command),
        "server_env": env,
        "runs": [],
    }
    with running_server(command, log_path, port, env=env, timeout=args.start_timeout) as server:
        record["server_start_s"] = round(time.monotonic() - start, 1)
        log = server.log()
        if variant.expect_log not in log or (variant.refuse_log and variant.refuse_log in log):
            raise SystemExit(f"{variant.name}: the server did not run the expected platform; see {log_path}")
        for i, rate in enumerate(args.rates):
            result = work / f"{variant.name}_rate_{rate}.json"
            warmups = args.warmups if i == 0 else 0
            bench = bench_command(args, server.base_url, rate, args.seed + i, result, warmups)
            load = os.getloadavg()[0]
            step_times_before = step_times(server.base_url)
            print(f"   rate {rate} req/s ...", file=sys.stderr, flush=True)
            done = subprocess.run(
                bench,
                env={**os.environ, "VLLM_PLUGINS": ""},  # the client needs no platform plugin
                capture_output=True,
                text=True,
                timeout=args.rate_timeout,
            )
            (work / f"{variant.name}_rate_{rate}.bench.log").write_text(done.stdout + done.stderr)
            if done.returncode != 0 or not result.exists():
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
                raise SystemExit(f"{variant.name} rate {rate}: vllm bench serve failed:\n{tail}")
            figures = json.loads(result.read_text())
            figures["offered_rate"] = rate
            figures["load_average_1m_before"] = round(load, 2)
            figures.update(step_time_split(step_times_before, step_times(server.base_url)))
            record["runs"].append(figures)
            print("   " + table_row(variant.name, figures), file=sys.stderr, flush=True)
    return record


# The plugin's per-step timing series (worker/metrics.py): model time vs the rest of the runner's step.
STEP_SERIES = {
    "prefill_model_s": "tt_vllm_prefill_model_seconds_sum",
    "decode_model_s": "tt_vllm_decode_model_seconds_sum",
    "decode_wait_s": "tt_vllm_decode_wait_seconds_sum",  # async decode: waiting for the output
    "host_overhead_s": "tt_vllm_step_host_overhead_seconds_sum",
    "steps": "tt_vllm_steps_total",
}


def step_times(base_url: str) -> dict[str, float]:
    """The plugin's cumulative step timings from /metrics (all zero on a server without the plugin)."""
    from tests.e2e.server import metric_total

    return {key: metric_total(base_url, series) for key, series in STEP_SERIES.items()}


def step_time_split(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per-rate deltas: seconds of model time and of runner overhead, and overhead's share of the step."""
    delta = {key: after[key] - before[key] for key in STEP_SERIES}
    if delta["steps"] <= 0:
        return {}
    model = delta["prefill_model_s"] + delta["decode_model_s"] + delta["decode_wait_s"]
    total = model + delta["host_overhead_s"]
    return {
        "plugin_steps": int(delta["steps"]),
        "plugin_model_s": round(model, 3),
        "plugin_host_overhead_s": round(delta["host_overhead_s"], 3),
        "plugin_host_overhead_share": round(delta["host_overhead_s"] / total, 4) if total else 0.0,
        "plugin_mean_step_ms": round(1000 * total / delta["steps"], 2),
    }


def ratio_lines(results: dict[str, dict], baseline: str = "native") -> list[str]:
    """Each plugin variant against the native platform at the same rate, and its runner overhead share."""
    if baseline not in results:
        return []
    native = {run["offered_rate"]: run for run in results[baseline]["runs"]}
    lines = [f"\nvs {baseline} at the same rate: output tok/s ratio, P99 TTFT ratio; plugin runner overhead"]
    for name, record in results.items():
        if name.startswith("native"):
            continue
        for run in record["runs"]:
            base = native.get(run["offered_rate"])
            if base is None:
                continue
            throughput = run["output_throughput"] / base["output_throughput"]
            ttft = run["p99_ttft_ms"] / base["p99_ttft_ms"]
            split = ""
            if "plugin_steps" in run:
                split = (
                    f"; {run['plugin_steps']} steps, mean {run['plugin_mean_step_ms']:.1f} ms, "
                    f"{100 * run['plugin_host_overhead_share']:.0f}% outside the model"
                )
            rate = run["offered_rate"]
            lines.append(f"{name} rate {rate}: throughput {throughput:.2f}x, P99 TTFT {ttft:.2f}x{split}")
    return lines


def published_lines(results: dict[str, dict]) -> list[str]:
    """A ttnn run's figures beside Tenstorrent's published N150 Llama-3.1-8B ones, rate by rate (only a
    like-for-like comparison with that model on that card)."""
    record = results.get("ttnn")
    if record is None:
        return []
    lines = [
        "\nttnn vs Tenstorrent's published Llama-3.1-8B-Instruct figures on one N150 (compare only with that "
        "model on that card):"
    ]
    for run in record["runs"]:
        published = PUBLISHED_N150_LLAMA_8B.get(run["offered_rate"])
        if published is None:
            continue
        cells = [f"{key} {run[key]:.2f} (published {value:g})" for key, value in published.items()]
        lines.append(f"rate {run['offered_rate']}: " + ", ".join(cells))
    return lines


def table_header() -> str:
    cells = ["variant", "rate", *(title for title, _, _ in COLUMNS), "ok"]
    return "| " + " | ".join(cells) + " |\n|" + "---|" * len(cells)


def table_row(name: str, figures: dict) -> str:
    cells = [name, str(figures["offered_rate"])]
    cells += [format(figures.get(key, float("nan")), spec) for _, key, spec in COLUMNS]
    cells.append(f"{figures['completed']}/{figures['num_prompts']}")
    return "| " + " | ".join(cells) + " |"


def plot(results: dict[str, dict], rates: list[str], stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    # Rates as categories: "inf" has no place on a numeric axis.
    x = list(range(len(rates)))
    panels = {
        "throughput": [("output_throughput", "output tokens/s", "-")],
        "ttft": [("mean_ttft_ms", "mean", "-"), ("p99_ttft_ms", "P99", "--")],
        "itl": [("mean_itl_ms", "mean", "-"), ("p99_itl_ms", "P99", "--")],
    }
    titles = {
        "throughput": ("Output throughput", "output tokens/s", False),
        "ttft": ("Time to first token", "TTFT (ms, log scale)", True),
        "itl": ("Inter-token latency", "ITL (ms)", False),
    }
    written = []
    for panel, series in panels.items():
        title, ylabel, log = titles[panel]
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for index, (name, record) in enumerate(results.items()):
            by_rate = {str(run["offered_rate"]): run for run in record["runs"]}
            for key, label, style in series:
                values = [by_rate[r][key] if r in by_rate else float("nan") for r in rates]
                legend = name if len(series) == 1 else f"{name} {label}"
                axes.plot(x, values, style, marker="o", color=f"C{index}", label=legend)
        axes.set_xticks(x, rates)
        axes.set_xlabel("offered request rate (req/s)")
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        if log:
            axes.set_yscale("log")
        axes.grid(True, alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = stem.with_name(f"{stem.name}_{panel}.png")
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written


def _csv(choices: set[str] | None = None):
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        bad = [item for item in items if choices is not None and item not in choices]
        if not items or bad:
            allowed = ", ".join(sorted(choices or ()))
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {allowed}, got {text!r}")
        return items

    return parse


def _rates(text: str) -> list[str]:
    rates = _csv()(text)
    for rate in rates:
        try:
            if float(rate) <= 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"request rates are positive numbers or inf, got {rate!r}"
            ) from None
    return rates


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--backends",
        type=_csv({"plugin", "native", "native-all-cores", "ttnn"}),
        default="plugin,native",
        help="plugin (host device), native (vLLM's CPU platform; on x86 it keeps one core for its "
        "scheduler), native-all-cores (the same computing on every core), ttnn (a Tenstorrent card)",
    )
    parser.add_argument(
        "--prefill-batching",
        type=_csv({"on", "off"}),
        default="on",
        help="plugin variants: on (batched prefill), off (one request per prefill call), or on,off",
    )
    parser.add_argument("--rates", type=_rates, default="0.5,1,2,4,inf", help="offered request rates, req/s")
    parser.add_argument("--num-prompts", type=int, default=80, help="requests per rate")
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--warmups", type=int, default=8, help="warm-up requests before each server's first rate"
    )
    parser.add_argument("--model", default=None, help="HF folder (default: the embedded model)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--max-num-seqs", type=int, default=32)
    parser.add_argument("--max-num-batched-tokens", type=int, default=2048)
    parser.add_argument("--kv-cache-bytes", type=int, default=GIB, help="KV space of every server")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="OMP_NUM_THREADS")
    parser.add_argument("--native-enforce-eager", action="store_true", help="native without torch.compile")
    parser.add_argument(
        "--start-timeout", type=float, default=900, help="seconds for a server to get healthy"
    )
    parser.add_argument("--rate-timeout", type=float, default=1800, help="seconds for one rate's benchmark")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serve_sweep.json")
    parser.add_argument("--logs", type=Path, default=None, help="keep server and client logs here")
    args = parser.parse_args()
    for name in ("num_prompts", "input_len", "output_len", "max_num_seqs", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.model is None:
        from tt_vllm_plugin.models.default import default_model_path

        args.model = str(default_model_path())
    return args


def main() -> None:
    args = parse_args()
    if importlib.util.find_spec("matplotlib") is None:  # fail now, not after a long sweep
        sys.exit(
            "serve_sweep draws its plots with matplotlib, which is not installed: run `make bench-setup` "
            "(or `.venv/bin/pip install -e '.[bench]'`)."
        )
    chosen = variants(args)
    setup = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "model": args.model,
        "dtype": args.dtype,
        "omp_num_threads": args.threads,
        "kv_cache_memory_bytes": args.kv_cache_bytes,
        "max_num_seqs": args.max_num_seqs,
        "max_num_batched_tokens": args.max_num_batched_tokens,
        "dataset": f"random, seed {args.seed} + rate index, {args.input_len} input / {args.output_len} "
        f"output tokens, ignore_eos, temperature 0, {args.num_prompts} requests per rate",
        "rates": args.rates,
        "command": shlex.join([sys.executable, *sys.argv]),
    }
    kv_space = f"KV space {args.kv_cache_bytes / GIB:g} GiB"
    if any(variant.kv_from_model for variant in chosen):
        kv_space += " (ttnn: the model's own KV budget)"
    fairness = (
        f"Same for every server: model {args.model}, dtype {args.dtype}, "
        f"OMP_NUM_THREADS={args.threads}, {kv_space}, "
        f"max_num_seqs {args.max_num_seqs}, max_num_batched_tokens {args.max_num_batched_tokens}, "
        f"and per rate the same requests ({setup['dataset']})."
    )
    print(fairness, file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    setup["load_average_1m_start"] = round(load, 2)
    if load > 0.5 * (os.cpu_count() or 1):
        # Other work on the cores wrecks these figures: OpenMP threads that spin in barriers collapse
        # when they are descheduled (seen here: ~1 token/s instead of ~50 at a load average of 12).
        cores = os.cpu_count()
        print(f"WARNING: load average {load:.1f} on {cores} cores at the start: other work skews it.")
    results: dict[str, dict] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="serve_sweep_") as tmp:
        work = Path(tmp)
        if args.logs is not None:
            work = args.logs
            work.mkdir(parents=True, exist_ok=True)
        try:
            for variant in chosen:
                results[variant.name] = run_variant(args, variant, work)
        except BaseException:
            kept = Path(tempfile.mkdtemp(prefix="serve_sweep_logs_"))
            for path in work.iterdir():
                (kept / path.name).write_bytes(path.read_bytes())
            print(f"logs kept in {kept}", file=sys.stderr)
            raise
    setup["wall_time_s"] = round(time.monotonic() - started, 1)

    print(f"\n{fairness}")
    for name, record in results.items():
        print(f"{name}: {record['description']}; server healthy after {record['server_start_s']} s")
    print(table_header())
    for name, record in results.items():
        for figures in record["runs"]:
            print(table_row(name, figures))
    for line in ratio_lines(results) + ratio_lines(results, "native-all-cores") + published_lines(results):
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": setup, "fairness": fairness, "results": results}, indent=2))
    print(f"wrote {args.out}")
    for path in plot(results, args.rates, args.out.with_suffix("")):
        print(f"wrote {path}")
    print(f"wall time {setup['wall_time_s'] / 60:.1f} min")


def vllm_bench_serve(argv: list[str]) -> None:
    """`vllm bench serve ARGV`: the parser and main that vLLM's CLI dispatches that subcommand to."""
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    bench_main(parser.parse_args(argv))


if __name__ == "__main__":
    if sys.argv[1:2] == [BENCH_FLAG]:
        vllm_bench_serve(sys.argv[2:])
    else:
        main()
