"""The ``[gateway]`` section of tt-serve's config file: where the gateway listens and which models it runs.

Example (TOML; the YAML form has the same keys)::

    [gateway]
    host = "127.0.0.1"        # the front door; engines always listen on 127.0.0.1
    port = 8000
    drain_timeout_s = 30      # how long a swap/remove waits for in-flight requests on the old engine
    start_timeout_s = 300     # how long an engine may take to become healthy
    hold_requests_s = 0       # while a model loads: 0 answers 503 + Retry-After at once; N holds up to N s
    max_request_bytes = 33554432   # the largest OpenAI request body (base64 images inside); larger: 413
    log_dir = "/var/log/tt-serve"   # engine logs and status files (default: a fresh temporary folder)
    engine_env_drop = ["MY_SITE_*"]      # globs: variables never passed to engines (see environment.py)
    engine_env_keep = ["HF_TOKEN"]       # globs: secret-named variables engines still get
    cards = "auto"            # the host's Tenstorrent cards: "auto" (/dev/tenstorrent/*) or a list of ids
    device_root = "/"         # where dev/tenstorrent and sys/class/tenstorrent are (tests: a folder)

    [gateway.cluster]         # cluster mode (tt-serve[ray]): each model a Ray Serve deployment
    address = "auto"          # the Ray cluster (ray start --head on one host, ray start --address on others)
    serve_port = 8100         # Ray Serve's HTTP proxy on the head node, on 127.0.0.1 (the gateway's upstream)

    [[gateway.models]]
    name = "smol-a"                  # what clients send as "model"
    model = "smollm2-135m-instruct"  # alias, folder or Hugging Face id, as for `tt-serve serve`
    backend = "host"                 # optional: otherwise resolved as `tt-serve serve` resolves it
    vllm_args = ["--max-num-seqs", "8"]   # or a table, as in [models.X]
    tt = { kv_cache_tokens = 8192 }
    env = { OMP_NUM_THREADS = "2" }
    cards = 1                        # or explicit ids [0, 1]; default: what MESH_DEVICE implies, else 1
                                     # for a backend needing a card, else none (placement.py)
    replicas = 1                     # cluster mode: replicas, each on its own cards, anywhere in the cluster

Parsed by ``config.load_config`` through :func:`parse_gateway`, with the same reader, so errors name the
file and the key. The ``[models.X]`` entries still apply to a gateway model as defaults (its ``model``
is matched against them); the gateway entry's own arguments win.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tt_serve import config_keys
from tt_serve.config_reader import ConfigReader, args_from_mapping
from tt_serve.gateway.environment import DEFAULT_KEEP, EngineEnvRule

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# A chat request carries its images base64-encoded in the JSON body: 32 MiB holds a few large photos.
DEFAULT_MAX_REQUEST_BYTES = 32 * 2**20
_GATEWAY_KEYS = config_keys.GATEWAY.names()  # each key's meaning: config_keys.py
_MODEL_KEYS = config_keys.GATEWAY_MODEL.names()
_CLUSTER_KEYS = config_keys.CLUSTER.names()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
# The gateway owns these: an engine listens where the gateway says and is named after the gateway model.
RESERVED_ARGS = ("--host", "--port", "--served-model-name", "--model", "--uds")


@dataclass(frozen=True)
class ModelSpec:
    """One model behind the gateway: what to run and with which arguments (swaps replace fields)."""

    name: str
    model: str
    backend: str | None = None
    engine_args: tuple[str, ...] = ()
    tt: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    # A number of cards, explicit card ids, or None: decided by placement.card_need.
    cards: int | tuple[int, ...] | None = None
    replicas: int = 1  # cluster mode only


@dataclass(frozen=True)
class ClusterSettings:
    address: str = "auto"
    serve_port: int = 8100


@dataclass(frozen=True)
class GatewaySettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    drain_timeout_s: float = 30.0
    start_timeout_s: float = 300.0
    # While a model's engine starts, a request for it waits up to this long for it (0: 503 at once).
    hold_requests_s: float = 0.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    log_dir: str | None = None
    engine_env: EngineEnvRule = field(default_factory=EngineEnvRule)
    models: tuple[ModelSpec, ...] = ()
    cards: tuple[int, ...] | None = None  # None: discover the host's cards
    device_root: str = "/"
    cluster: ClusterSettings | None = None  # None: one host


def reserved_arg_problem(args: Sequence[str]) -> str | None:
    """Why ``args`` cannot be an engine's arguments, or None."""
    for arg in args:
        option = arg.split("=", 1)[0].replace("_", "-")
        if option in RESERVED_ARGS:
            return (
                f"{option} is set by the gateway (engines listen on 127.0.0.1 on a port of their own and "
                "are named after the gateway model); remove it from the engine arguments"
            )
    return None


def check_name(name: Any) -> str | None:
    """Why ``name`` cannot be a gateway model name, or None."""
    if not isinstance(name, str) or not _NAME.match(name):
        return (
            f"must be a model name (letters, digits and . _ : / -, starting with a letter or digit), "
            f"got {name!r}"
        )
    return None


def tt_additional_config(args: Sequence[str], tt: Mapping[str, Any]) -> list[str]:
    """``args`` with the TT options merged into --additional-config '{"tt": {...}}' (args' own keys win)."""
    if not tt:
        return list(args)
    args = list(args)
    for i, arg in enumerate(args):
        if arg == "--additional-config" and i + 1 < len(args):
            index, width, text = i, 2, args[i + 1]
            break
        if arg.startswith("--additional-config="):
            index, width, text = i, 1, arg.split("=", 1)[1]
            break
    else:
        return [*args, "--additional-config", json.dumps({"tt": dict(tt)})]
    try:
        given = json.loads(text)
    except ValueError:
        raise ValueError(
            "--additional-config must be a JSON object when the model sets TT options (tt = {...}), so that "
            "the two can be merged"
        ) from None
    if not isinstance(given, dict):
        raise ValueError("--additional-config must be a JSON object")
    merged = {**given, "tt": {**dict(tt), **(given.get("tt") or {})}}
    return [*args[:index], "--additional-config", json.dumps(merged), *args[index + width :]]


def _number(reader: ConfigReader, value: Any, key: str, integer: bool = False) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise reader.fail(key, f"must be {what}, got {type(value).__name__} {value!r}")
    return value


def _globs(reader: ConfigReader, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise reader.fail(key, f"must be a list of variable names or globs, got {type(value).__name__}")
    return tuple(reader.string(item, f"{key}[{i}]") for i, item in enumerate(value))


def parse_cards(value: Any) -> int | tuple[int, ...]:
    """A model's ``cards``: a count (0 or more) or a non-empty list of distinct card ids; ValueError."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value)
        and len(set(value)) == len(value)
    ):
        return tuple(value)
    raise ValueError(f"must be a number of cards (0 or more) or a list of distinct card ids, got {value!r}")


def _model(reader: ConfigReader, index: int, value: Any) -> ModelSpec:
    key = f"gateway.models[{index}]"
    table = reader.table(value, key, _MODEL_KEYS)
    for required in ("name", "model"):
        if required not in table:
            raise reader.fail(f"{key}.{required}", "is required")
    problem = check_name(table["name"])
    if problem:
        raise reader.fail(f"{key}.name", problem)
    backend = reader.string(table["backend"], f"{key}.backend") if "backend" in table else None
    raw = table.get("vllm_args", [])
    if isinstance(raw, dict):
        args = args_from_mapping(raw)
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise reader.fail(f"{key}.vllm_args[{i}]", f"must be a string, got {type(item).__name__}")
        args = [str(item) for item in raw]
    else:
        raise reader.fail(f"{key}.vllm_args", "must be a list of arguments or a table")
    problem = reserved_arg_problem(args)
    if problem:
        raise reader.fail(f"{key}.vllm_args", problem)
    cards = None
    if "cards" in table:
        try:
            cards = parse_cards(table["cards"])
        except ValueError as error:
            raise reader.fail(f"{key}.cards", str(error)) from None
    return ModelSpec(
        name=table["name"],
        model=reader.string(table["model"], f"{key}.model"),
        backend=backend,
        engine_args=tuple(args),
        tt=dict(reader.table(table.get("tt", {}), f"{key}.tt")),
        env=reader.string_map(table.get("env", {}), f"{key}.env"),
        cards=cards,
        replicas=int(_number(reader, table.get("replicas", 1), f"{key}.replicas", integer=True)),
    )


def parse_gateway(reader: ConfigReader, value: Any, known_backends: Sequence[str]) -> GatewaySettings:
    table = reader.table(value, "gateway", _GATEWAY_KEYS)
    host = reader.string(table.get("host", DEFAULT_HOST), "gateway.host")
    port = int(_number(reader, table.get("port", DEFAULT_PORT), "gateway.port", integer=True))
    if port > 65535:
        raise reader.fail("gateway.port", f"must be a TCP port (1-65535), got {port}")
    raw_models = table.get("models", [])
    if not isinstance(raw_models, list):
        raise reader.fail("gateway.models", "must be a list of tables ([[gateway.models]] in TOML)")
    models: list[ModelSpec] = []
    for index, item in enumerate(raw_models):
        spec = _model(reader, index, item)
        if any(m.name == spec.name for m in models):
            raise reader.fail(
                f"gateway.models[{index}].name", f"{spec.name!r} is already used by another model"
            )
        if spec.backend is not None and spec.backend not in known_backends:
            raise reader.fail(
                f"gateway.models[{index}].backend",
                f"{spec.backend!r} is not a known backend. Known backends: {', '.join(known_backends)}",
            )
        taken = [
            (i, other.name)
            for other in models
            if isinstance(other.cards, tuple) and isinstance(spec.cards, tuple)
            for i in other.cards
            if i in spec.cards
        ]
        if taken:
            raise reader.fail(
                f"gateway.models[{index}].cards",
                f"card {taken[0][0]} is already given to model {taken[0][1]!r}: one card serves one engine",
            )
        models.append(spec)
    log_dir = reader.string(table["log_dir"], "gateway.log_dir") if "log_dir" in table else None
    hold = table.get("hold_requests_s", 0)
    if isinstance(hold, bool) or not isinstance(hold, int | float) or hold < 0:
        raise reader.fail(
            "gateway.hold_requests_s",
            f"must be a number of seconds, 0 or more, got {type(hold).__name__} {hold!r}",
        )
    engine_env = EngineEnvRule(
        drop=_globs(reader, table.get("engine_env_drop", []), "gateway.engine_env_drop"),
        keep=_globs(reader, table.get("engine_env_keep", list(DEFAULT_KEEP)), "gateway.engine_env_keep"),
    )
    raw_cards = table.get("cards", "auto")
    if raw_cards == "auto":
        cards = None
    elif isinstance(raw_cards, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in raw_cards
    ):
        cards = tuple(sorted(set(raw_cards)))
    else:
        raise reader.fail("gateway.cards", f'must be "auto" or a list of card ids, got {raw_cards!r}')
    cluster = None
    if "cluster" in table:
        raw = reader.table(table["cluster"], "gateway.cluster", _CLUSTER_KEYS)
        serve_port = int(
            _number(reader, raw.get("serve_port", 8100), "gateway.cluster.serve_port", integer=True)
        )
        cluster = ClusterSettings(
            reader.string(raw.get("address", "auto"), "gateway.cluster.address"), serve_port
        )
    for index, spec in enumerate(models):
        if spec.replicas > 1 and cluster is None:
            raise reader.fail(
                f"gateway.models[{index}].replicas",
                "more than one replica needs cluster mode ([gateway.cluster]); on one host add another model",
            )
    return GatewaySettings(
        host=host,
        port=port,
        drain_timeout_s=float(_number(reader, table.get("drain_timeout_s", 30), "gateway.drain_timeout_s")),
        start_timeout_s=float(_number(reader, table.get("start_timeout_s", 300), "gateway.start_timeout_s")),
        hold_requests_s=float(hold),
        max_request_bytes=int(
            _number(
                reader,
                table.get("max_request_bytes", DEFAULT_MAX_REQUEST_BYTES),
                "gateway.max_request_bytes",
                integer=True,
            )
        ),
        log_dir=log_dir,
        engine_env=engine_env,
        models=tuple(models),
        cards=cards,
        device_root=reader.string(table.get("device_root", "/"), "gateway.device_root"),
        cluster=cluster,
    )
