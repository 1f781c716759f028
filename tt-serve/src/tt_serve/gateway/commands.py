"""The gateway's tt-serve subcommands: ``gateway`` (run it), ``swap`` and ``gateway-status`` (talk to it).

    tt-serve gateway [--config F] [--host H] [--port P] [--admin-token T]
    tt-serve swap NAME [--backend B] [--model M] [--gateway URL] [--admin-token T] [-- engine args]
    tt-serve gateway-status [--gateway URL] [--json]

``swap`` without ``--`` keeps the model's engine arguments; ``--`` followed by arguments replaces them
(``--`` alone clears them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from tt_serve import envs
from tt_serve.errors import ExitCode, ServeError
from tt_serve.gateway.auth import TOKEN_ENV
from tt_serve.gateway.settings import DEFAULT_PORT

GATEWAY_ENV = envs.TT_SERVE_GATEWAY.name
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
SWAP_TIMEOUT_S = 3600  # the gateway bounds the start and the drain itself


def add_commands(commands: Any, add: Callable[[str, str, str | None], argparse.ArgumentParser]) -> None:
    """Register the subcommands; ``add`` is tt-serve's helper (it adds --config)."""
    gateway = add(
        "gateway",
        "run one OpenAI-compatible front for several models, each in a vLLM engine of its own backend",
        "Models come from the [gateway] section of --config. The admin API (add/remove/swap) needs "
        f"--admin-token or ${TOKEN_ENV} (prefer the variable: a command line is visible to other users); "
        "without it the gateway is read-only.",
    )
    gateway.add_argument("--host", help="address to listen on (default: the config's, else 127.0.0.1)")
    gateway.add_argument("--port", type=int, help=f"port (default: the config's, else {DEFAULT_PORT})")
    gateway.add_argument("--admin-token", metavar="T", help=f"admin bearer token (default: ${TOKEN_ENV})")
    gateway.set_defaults(gateway_command=_cmd_gateway)

    swap = commands.add_parser(
        "swap",
        help="swap a gateway model's engine (backend, model or engine arguments)",
        description="Start a new engine for NAME, switch requests to it once healthy, drain and stop the "
        "old one (no downtime). When the old or the new backend holds an exclusive device, the old engine "
        "drains and stops first and requests get 503 + Retry-After (or are held) until the new one serves. "
        "If the new engine fails, the old configuration keeps (or is again) serving and the reason is "
        "printed.",
        epilog="Everything after -- replaces the model's engine arguments (-- alone clears them); without "
        "-- they are kept.",
        allow_abbrev=False,
    )
    swap.add_argument("name", metavar="NAME", help="the model's name in the gateway")
    swap.add_argument("--backend", metavar="B", help="the new backend")
    swap.add_argument("--model", metavar="M", help="a new model (alias, folder or Hugging Face id)")
    _client_options(swap)
    swap.set_defaults(gateway_command=_cmd_swap)

    status = commands.add_parser("gateway-status", help="show a running gateway's models", allow_abbrev=False)
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    _client_options(status)
    status.set_defaults(gateway_command=_cmd_status)


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateway",
        metavar="URL",
        default=os.environ.get(GATEWAY_ENV) or DEFAULT_URL,
        help=f"the gateway's address (default: ${GATEWAY_ENV}, else {DEFAULT_URL})",
    )
    parser.add_argument("--admin-token", metavar="T", help=f"admin bearer token (default: ${TOKEN_ENV})")


def run_command(args: argparse.Namespace, tail: list[str] | None) -> int:
    """Dispatch; ``tail`` is what followed ``--`` (None when there was no ``--``)."""
    return int(args.gateway_command(args, tail))


def _cmd_gateway(args: argparse.Namespace, _tail: list[str] | None) -> int:
    from tt_serve.gateway.server import run_gateway

    return run_gateway(args.config, args.host, args.port, args.admin_token or os.environ.get(TOKEN_ENV))


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    import httpx

    token = args.admin_token or os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = args.gateway.rstrip("/") + path
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=SWAP_TIMEOUT_S)
    except httpx.HTTPError as error:
        raise ServeError(
            f"cannot reach the gateway at {args.gateway}: {error}. Is it running? (--gateway URL or "
            f"${GATEWAY_ENV})",
            ExitCode.PROBLEMS,
        ) from None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {"error": {"message": response.text}}


def _error_message(data: Any) -> str:
    error = data.get("error") if isinstance(data, dict) else None
    return str(error.get("message")) if isinstance(error, dict) else json.dumps(data)


def _cmd_swap(args: argparse.Namespace, tail: list[str] | None) -> int:
    body: dict[str, Any] = {}
    if args.backend:
        body["backend"] = args.backend
    if args.model:
        body["model"] = args.model
    if tail is not None:
        body["engine_args"] = tail
    if not body:
        raise ServeError(
            "nothing to swap: give --backend, --model and/or -- engine arguments", ExitCode.USAGE
        )
    print(
        f"tt-serve: swapping {args.name} ({json.dumps(body)}); waiting for the new engine...", file=sys.stderr
    )
    status, data = _request(args, "POST", f"/admin/api/models/{args.name}/swap", body)
    if status != 200:
        raise ServeError(
            f"swap refused by the gateway (HTTP {status}): {_error_message(data)}", ExitCode.PROBLEMS
        )
    swap = data.get("swap") or {}
    how = (
        f"; stop-then-start (exclusive device): {swap['downtime_s']:.1f} s without a serving engine"
        if swap.get("mode") == "stop-then-start"
        else ""
    )
    print(
        f"tt-serve: {data['name']} now served by generation {data['generation']} (backend {data['backend']}, "
        f"pid {data['pid']}, engine args {data['engine_args']}){how}"
    )
    return ExitCode.OK


def progress_line(progress: dict[str, Any]) -> str:
    """One engine's start-up progress as gateway-status prints it."""
    doing = f"waiting for {progress['waiting_for']}" if progress.get("waiting_for") else progress["label"]
    in_phase = progress.get("phase_elapsed_s")
    phase = f", {in_phase:.0f} s in this phase" if in_phase is not None else ""
    return f"generation {progress['generation']}: {doing} ({progress['elapsed_s']:.0f} s since start{phase})"


def _cmd_status(args: argparse.Namespace, _tail: list[str] | None) -> int:
    status, data = _request(args, "GET", "/admin/api/state")  # with the token (if any): log tails too
    if status != 200:
        raise ServeError(f"the gateway answered HTTP {status}: {_error_message(data)}", ExitCode.PROBLEMS)
    if args.json:
        print(json.dumps(data, indent=2))
        return ExitCode.OK
    print(f"gateway {args.gateway} ({'read-only' if data['read_only'] else 'admin enabled'})")
    for m in data["models"]:
        swapping = "  (swap in progress)" if m["name"] in data["swaps_in_progress"] else ""
        print(
            f"  {m['name']:<20} {m['state']:<9} backend {m['backend'] or '?':<6} gen {m['generation']:<3} "
            f"pid {m['pid']} port {m['port']}  {m['model']} {' '.join(m['engine_args'])}{swapping}"
        )
        if m["state"] == "starting":
            print(f"    loading: {progress_line(m['progress'])}")
        if m.get("pending"):
            print(f"    replacement: {progress_line(m['pending']['progress'])}")
        if m["last_error"]:
            print(f"    last error: {m['last_error'].splitlines()[0]}")
    return ExitCode.OK
