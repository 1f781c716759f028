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
        help="swap a gateway model's engine (backend, model or engine arguments) without downtime",
        description="Start a new engine for NAME, switch requests to it once healthy, drain and stop the "
        "old one. If the new engine fails, nothing changes and the reason is printed.",
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
    print(
        f"tt-serve: {data['name']} now served by generation {data['generation']} (backend {data['backend']}, "
        f"pid {data['pid']}, engine args {data['engine_args']})"
    )
    return ExitCode.OK


def _cmd_status(args: argparse.Namespace, _tail: list[str] | None) -> int:
    status, data = _request(args, "GET", "/admin/api/state")
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
        if m["last_error"]:
            print(f"    last error: {m['last_error'].splitlines()[0]}")
    return ExitCode.OK
