"""tt-serve: pick the vLLM platform plugin for a model, check it, and run vLLM's OpenAI server with it.

    tt-serve resolve MODEL [--backend B] [--config F] [--json]
    tt-serve serve MODEL [--backend B] [--config F] [--dry-run] [--json] [--model-inputs] [--allow-untrusted]
                         [--restart no|on-failure] [--max-restarts N]
                         [vLLM args] [-- vLLM args]
    tt-serve backends [--config F] [--json]
    tt-serve doctor [--config F] [--quick]
    tt-serve gateway [--config F] [--host H] [--port P] [--admin-token T]
    tt-serve swap NAME [--backend B] [--model M] [--gateway URL] [--admin-token T] [-- engine args]
    tt-serve gateway-status [--gateway URL] [--json]

Arguments after MODEL that tt-serve does not know go to vLLM; everything after ``--`` goes to vLLM
verbatim (use it for vLLM's own ``--config``, which tt-serve's ``--config`` would otherwise take).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tt_serve.config import CONFIG_ENV, ServerConfig, load_config
from tt_serve.errors import ExitCode, ServeError
from tt_serve.restart import DEFAULT_MAX_RESTARTS, RestartMode, RestartPolicy

if TYPE_CHECKING:  # the heavier modules are imported by the command that needs them
    from tt_serve.resolve import Resolution


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tt-serve",
        description="Choose the vLLM plugin backend (metal, forge, host) for a model and run vLLM's "
        "OpenAI-compatible server with exactly that plugin.",
        epilog="exit statuses: "
        + ", ".join(f"{int(code)} {code.name.lower().replace('_', ' ')}" for code in ExitCode)
        + "; serve otherwise exits with the server's status (128+N if it was killed by signal N).",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=help_text, epilog=epilog, allow_abbrev=False
        )
        sub.add_argument(
            "--config",
            metavar="FILE",
            default=os.environ.get(CONFIG_ENV) or None,
            help=f"server config file, TOML or YAML (default: ${CONFIG_ENV})",
        )
        return sub

    resolve = add("resolve", "print which backend would serve MODEL, and why")
    resolve.add_argument("model", metavar="MODEL", help="model alias, local folder or Hugging Face id")
    resolve.add_argument("--backend", metavar="B", help="use this backend (highest precedence)")
    resolve.add_argument("--json", action="store_true", help="print JSON")

    serve = add(
        "serve",
        "start vLLM's OpenAI-compatible server for MODEL with the resolved backend",
        epilog="Arguments after MODEL that tt-serve does not know are passed to vLLM (e.g. --port 8000 "
        "--max-model-len 4096); everything after -- goes to vLLM verbatim (e.g. -- --config vllm.yaml for "
        "vLLM's own --config).",
    )
    serve.add_argument(
        "model", metavar="MODEL", help="model alias (smollm2-135m-instruct), local folder or HF id"
    )
    serve.add_argument("--backend", metavar="B", help="use this backend (highest precedence)")
    serve.add_argument(
        "--dry-run", action="store_true", help="print the environment and command, do not start"
    )
    serve.add_argument("--json", action="store_true", help="with --dry-run: print JSON")
    serve.add_argument(
        "--model-inputs",
        action="store_true",
        help="with --dry-run: also ask the plugin what the model takes (text, images); this imports the "
        "plugin's model classes in the backend's environment (a second or two). The gateway asks it",
    )
    serve.add_argument(
        "--allow-untrusted",
        action="store_true",
        help="run a plugin that is not on the trust allowlist or does not match its pin (explicit override)",
    )
    serve.add_argument(
        "--restart",
        choices=[mode.value for mode in RestartMode],
        default=RestartMode.NO.value,
        help="on-failure: start the server again after any exit tt-serve did not ask for (default: no)",
    )
    serve.add_argument(
        "--max-restarts",
        metavar="N",
        type=_non_negative,
        default=DEFAULT_MAX_RESTARTS,
        help=f"with --restart on-failure: give up after N restarts (default {DEFAULT_MAX_RESTARTS}); "
        "back-off 1, 2, 4 ... s, at most 30 s",
    )

    backends = add("backends", "list the catalog's backends and their state on this machine")
    backends.add_argument("--json", action="store_true", help="print JSON")

    doctor = add("doctor", "check the whole set-up and say what to fix")
    doctor.add_argument("--quick", action="store_true", help="skip the slow probes (ttnn, platform import)")

    from tt_serve.gateway.commands import add_commands

    add_commands(commands, add)  # gateway, swap, gateway-status
    return parser


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number 0 or more, not {text!r}")
    return int(text)


def _error(message: str, code: int) -> int:
    print(f"tt-serve: error: {message}", file=sys.stderr)
    return code


def _config(path: str | None) -> ServerConfig:
    return load_config(path) if path else ServerConfig()


def _resolution(args: argparse.Namespace, config: ServerConfig) -> Resolution:
    from tt_serve.planning import resolution_for

    return resolution_for(args.model, args.backend, config)


def cmd_resolve(args: argparse.Namespace) -> int:
    config = _config(args.config)
    resolution = _resolution(args, config)
    if resolution.model.alias:  # the embedded model's folder is a fact of the backend's environment
        from tt_serve.planning import locate_alias

        resolution = locate_alias(resolution)
    if args.json:
        print(json.dumps(resolution.as_dict(), indent=2))
        return ExitCode.OK
    b = resolution.backend
    target = resolution.model.target
    shown = f" -> {target}" if target and target != resolution.model.name else ""
    print(f"model:      {resolution.model.name}{shown}")
    print(f"backend:    {b.name} (distribution {b.distribution}, entry point {b.entry_point})")
    print(f"decided by: {resolution.source.label}")
    print(f"reason:     {resolution.reason}")
    print("steps:")
    for i, step in enumerate(resolution.steps, 1):
        print(f"  {i}. {step.source.label:<19} {step.finding}{'  <- decides' if step.decides else ''}")
    return ExitCode.OK


def cmd_serve(args: argparse.Namespace, vllm_args: list[str]) -> int:
    from tt_serve.checks import Status
    from tt_serve.launch import run
    from tt_serve.models import prepare_model
    from tt_serve.planning import alias_command, check, model_inputs, plan

    started = time.perf_counter()
    config = _config(args.config)
    resolution, checked = check(
        _resolution(args, config),
        config,
        allow_untrusted=args.allow_untrusted,
        ask_inputs=args.dry_run and args.model_inputs,
    )
    checked.raise_for_failure()
    launch_plan = plan(resolution, config, checked, vllm_args)
    overhead_ms = (time.perf_counter() - started) * 1000
    environment = checked.final.summary() if checked.final is not None else {}

    warnings = [r.detail for r in checked.results if r.status is Status.WARNING]
    if args.dry_run and args.json:
        print(
            json.dumps(
                {
                    "resolution": resolution.as_dict(),
                    "environment": environment,
                    "checks": [
                        {"name": r.name, "status": r.status.value, "detail": r.detail}
                        for r in checked.results
                    ],
                    "platform": checked.platform,
                    "env": dict(launch_plan.env_changes),
                    "command": list(launch_plan.argv),
                    "prepare_model": alias_command(checked) if resolution.model.alias else None,
                    "model_inputs": model_inputs(resolution, checked) if args.model_inputs else None,
                    "overhead_ms": round(overhead_ms, 1),
                },
                indent=2,
            )
        )
        return ExitCode.OK

    out = sys.stdout if args.dry_run else sys.stderr
    print(f"tt-serve: backend {resolution.backend.name}, {resolution.reason}", file=out)
    print(
        f"tt-serve: environment {environment.get('python')} (Python {environment.get('python_version')}, "
        f"{checked.final.vllm_text if checked.final else '?'})",
        file=out,
    )
    for warning in warnings:
        print(f"tt-serve: warning: {warning}", file=out)
    print(
        f"tt-serve: checks passed ({', '.join(r.name for r in checked.results)}); platform "
        f"{checked.platform}; resolution and checks took {overhead_ms:.0f} ms",
        file=out,
    )
    env_text = " ".join(f"{k}={shlex.quote(v)}" for k, v in launch_plan.env_changes.items())
    if args.dry_run:
        if args.model_inputs:
            inputs = model_inputs(resolution, checked)
            takes = ", ".join(inputs["inputs"]) if inputs["inputs"] else f"unknown ({inputs['unknown']})"
            print(f"model takes: {takes}")
        print("environment (set on top of the current one):")
        for name, value in launch_plan.env_changes.items():
            print(f"  {name}={shlex.quote(value)}")
        print("command:")
        print(f"  {shlex.join(launch_plan.argv)}")
        print("as one line:")
        print(f"  env {env_text} {shlex.join(launch_plan.argv)}")
        return ExitCode.OK
    if resolution.model.alias:  # the alias's first use converts the embedded model, in that environment
        prepare_model(resolution.model, alias_command(checked))
    print(f"tt-serve: starting: env {env_text} {shlex.join(launch_plan.argv)}", file=sys.stderr, flush=True)
    return run(launch_plan, RestartPolicy(RestartMode(args.restart), args.max_restarts))


def cmd_backends(args: argparse.Namespace) -> int:
    from tt_serve.inventory import format_table, inventory
    from tt_serve.trust import TrustPolicy

    config = _config(args.config)
    catalog = config.catalog()
    statuses, hw = inventory(catalog, TrustPolicy.build(config, catalog))
    if args.json:
        print(
            json.dumps(
                {
                    "hardware": {
                        "present": hw.present,
                        "device_nodes": list(hw.device_nodes),
                        "detail": hw.describe(),
                    },
                    "backends": [s.as_dict() for s in statuses],
                },
                indent=2,
            )
        )
    else:
        print(format_table(statuses, hw))
    return ExitCode.OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from tt_serve.doctor import diagnose, summary

    found = diagnose(args.config, quick=args.quick)
    for finding in found:
        print(finding.line())
    text, code = summary(found)
    print(text)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" belongs to vLLM, untouched by tt-serve's parser.
    separated = "--" in argv  # swap tells "-- (no arguments)" from no "--"
    tail: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1 :]
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command != "serve" and (unknown or (tail and args.command != "swap")):
        parser.error(f"unrecognized arguments: {' '.join(unknown + tail)}")
    try:
        if args.command == "resolve":
            return int(cmd_resolve(args))
        if args.command == "serve":
            return int(cmd_serve(args, unknown + tail))
        if args.command == "backends":
            return int(cmd_backends(args))
        if hasattr(args, "gateway_command"):  # gateway, swap, gateway-status
            from tt_serve.gateway.commands import run_command

            return run_command(args, tail if separated else None)
        return int(cmd_doctor(args))
    except ServeError as error:
        return _error(error.message, int(error.code))


if __name__ == "__main__":
    sys.exit(main())
