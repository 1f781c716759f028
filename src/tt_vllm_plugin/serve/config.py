"""The server config file (``--config FILE``, TOML or YAML): per-model defaults, extra backends, trust.

Example (TOML; the YAML form has the same keys)::

    [models."smollm2-135m-instruct"]          # a model name as given on the command line, or a glob
    backend = "host"
    vllm_args = ["--max-model-len", "2048"]   # or a table: { max-model-len = 2048, enforce-eager = true }
    tt = { kv_cache_tokens = 8192 }           # TT options, passed as --additional-config '{"tt": {...}}'
    env = { MESH_DEVICE = "N150" }

    [backends.forge-nightly]                  # add (or override) a catalog backend
    distribution = "vllm_tt"
    entry_point = "tt"
    vllm = "==0.26.0"                         # optional: default is the distribution's own vllm pin
    hardware = "tenstorrent"                  # or "none"
    install = "pip install vllm_tt --pre --extra-index-url https://pypi.eng.aws.tenstorrent.com/"

    [trust]
    allow = ["tt-vllm-plugin", "vllm_tt"]     # replaces the default (the built-in catalog's distributions)
    [trust.pins.vllm_tt]                      # a pinned distribution is allowed
    version = "==0.9.0"
    record_sha256 = "..."                     # from `tt-serve backends --json`

Model names match exactly first, then globs (fnmatch, case-sensitive) in file order. Every error names
the file and the key, because a silently ignored key in a deployment file costs an afternoon.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tt_vllm_plugin.serve.catalog import Backend, Catalog, HardwareNeed
from tt_vllm_plugin.serve.errors import ExitCode, ServeError

if TYPE_CHECKING:
    from tt_vllm_plugin.serve.gateway.settings import GatewaySettings

CONFIG_ENV = "TT_SERVE_CONFIG"

_TOP_KEYS = {"models", "backends", "trust", "gateway"}
_MODEL_KEYS = {"backend", "vllm_args", "tt", "env"}
_BACKEND_KEYS = {"distribution", "entry_point", "vllm", "hardware", "install", "env", "description"}
_TRUST_KEYS = {"allow", "pins"}
_PIN_KEYS = {"version", "record_sha256"}
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, eq=False)
class ModelEntry:
    pattern: str
    backend: str | None
    vllm_args: tuple[str, ...] = ()
    tt: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return _key("models", self.pattern)


@dataclass(frozen=True)
class Pin:
    version: str | None = None  # PEP 440 specifier, e.g. "==0.9.0"
    record_sha256: str | None = None  # fingerprint of the installed distribution's RECORD


@dataclass(frozen=True, eq=False)
class TrustSettings:
    allow: tuple[str, ...] | None = None  # None: the built-in catalog's distributions
    pins: Mapping[str, Pin] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ServerConfig:
    path: Path | None = None
    models: tuple[ModelEntry, ...] = ()
    backends: Mapping[str, Backend] = field(default_factory=dict)
    trust: TrustSettings = field(default_factory=TrustSettings)
    gateway: GatewaySettings | None = None  # the [gateway] section (tt-serve gateway), if any

    @property
    def label(self) -> str:
        return f"config file {self.path}" if self.path else "no config file"

    def catalog(self) -> Catalog:
        return Catalog(self.backends)

    def match(self, model: str) -> ModelEntry | None:
        """The entry for MODEL as given on the command line: exact name first, then the first glob."""
        for entry in self.models:
            if entry.pattern == model:
                return entry
        for entry in self.models:
            if fnmatch.fnmatchcase(model, entry.pattern):
                return entry
        return None


def _key(prefix: str, *parts: str) -> str:
    """``prefix`` (already a key path) extended by raw names, quoted as TOML quotes them."""
    return ".".join([prefix, *(p if _BARE_KEY.match(p) else json.dumps(p) for p in parts)])


class _Reader:
    """Validation helpers that put the file and the key into every message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ServeError:
        return ServeError(f"{self.path}: {key}: {problem}", ExitCode.CONFIG)

    def table(self, value: Any, key: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key or "(top level)", f"must be a table/mapping, got {_kind(value)}")
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise self.fail(
                    _key(key, unknown[0]) if key else unknown[0],
                    f"unknown key; allowed keys here: {', '.join(sorted(allowed))}",
                )
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"must be a non-empty string, got {_kind(value)}")
        return value

    def string_map(self, value: Any, key: str) -> dict[str, str]:
        table = self.table(value, key)
        for name, item in table.items():
            if not isinstance(item, str):
                raise self.fail(_key(key, name), f"must be a string, got {_kind(item)}")
        return dict(table)

    def specifier(self, value: Any, key: str) -> str:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        text = self.string(value, key)
        try:
            SpecifierSet(text)
        except InvalidSpecifier:
            raise self.fail(key, f"{text!r} is not a version specifier (e.g. '>=0.32,<0.33')") from None
        return text


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _parse_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ServeError(f"{path}: cannot read the config file: {error.strerror}", ExitCode.CONFIG) from None
    if suffix == ".toml":
        from tt_vllm_plugin.pycompat import tomllib

        try:
            return tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ServeError(f"{path}: invalid TOML: {error}", ExitCode.CONFIG) from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(raw) or {}
        except yaml.YAMLError as error:
            raise ServeError(f"{path}: invalid YAML: {error}", ExitCode.CONFIG) from None
    raise ServeError(
        f"{path}: unknown config file type {suffix or '(no extension)'!r}; use .toml, .yaml or .yml",
        ExitCode.CONFIG,
    )


def args_from_mapping(values: Mapping[str, Any]) -> list[str]:
    """``{max-model-len: 2048, enforce-eager: true, x: false}`` -> vLLM command-line arguments."""
    args: list[str] = []
    for name, value in values.items():
        flag = name if name.startswith("-") else f"--{name}"
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + flag.lstrip("-"))  # vLLM's boolean flags take --no-<name>
        elif isinstance(value, list):
            args += [flag, *(str(v) for v in value)]
        elif isinstance(value, dict):
            args += [flag, json.dumps(value)]
        elif value is not None:
            args += [flag, str(value)]
    return args


def _model_entry(reader: _Reader, pattern: str, value: Any) -> ModelEntry:
    key = _key("models", pattern)
    table = reader.table(value, key, _MODEL_KEYS)
    backend = reader.string(table["backend"], _key(key, "backend")) if "backend" in table else None
    args: list[str] = []
    if "vllm_args" in table:
        raw = table["vllm_args"]
        args_key = _key(key, "vllm_args")
        if isinstance(raw, list):
            for i, item in enumerate(raw):
                if not isinstance(item, str | int | float) or isinstance(item, bool):
                    raise reader.fail(f"{args_key}[{i}]", f"must be a string, got {_kind(item)}")
            args = [str(item) for item in raw]
        elif isinstance(raw, dict):
            args = args_from_mapping(raw)
        else:
            raise reader.fail(args_key, f"must be a list of arguments or a table, got {_kind(raw)}")
    tt = reader.table(table.get("tt", {}), _key(key, "tt"))
    env = reader.string_map(table.get("env", {}), _key(key, "env"))
    return ModelEntry(pattern, backend, tuple(args), dict(tt), env)


def _backend(reader: _Reader, name: str, value: Any, origin: str) -> Backend:
    key = _key("backends", name)
    table = reader.table(value, key, _BACKEND_KEYS)
    for required in ("distribution", "hardware"):
        if required not in table:
            raise reader.fail(_key(key, required), "is required")
    hardware = reader.string(table["hardware"], _key(key, "hardware"))
    try:
        need = HardwareNeed(hardware)
    except ValueError:
        choices = ", ".join(repr(h.value) for h in HardwareNeed)
        raise reader.fail(_key(key, "hardware"), f"must be one of {choices}, got {hardware!r}") from None
    distribution = reader.string(table["distribution"], _key(key, "distribution"))
    return Backend(
        name=name,
        distribution=distribution,
        entry_point=reader.string(table.get("entry_point", "tt"), _key(key, "entry_point")),
        vllm=reader.specifier(table["vllm"], _key(key, "vllm")) if "vllm" in table else None,
        hardware=need,
        install=reader.string(table.get("install", f"pip install {distribution}"), _key(key, "install")),
        env=reader.string_map(table.get("env", {}), _key(key, "env")),
        description=str(table.get("description", "")),
        origin=origin,
    )


def _trust(reader: _Reader, value: Any) -> TrustSettings:
    table = reader.table(value, "trust", _TRUST_KEYS)
    allow = None
    if "allow" in table:
        raw = table["allow"]
        if not isinstance(raw, list):
            raise reader.fail("trust.allow", f"must be a list of distribution names, got {_kind(raw)}")
        allow = tuple(reader.string(item, f"trust.allow[{i}]") for i, item in enumerate(raw))
    pins: dict[str, Pin] = {}
    for dist, pin_value in reader.table(table.get("pins", {}), "trust.pins").items():
        key = _key("trust", "pins", dist)
        pin = reader.table(pin_value, key, _PIN_KEYS)
        version = reader.specifier(pin["version"], _key(key, "version")) if "version" in pin else None
        digest = None
        if "record_sha256" in pin:
            digest = reader.string(pin["record_sha256"], _key(key, "record_sha256")).lower()
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise reader.fail(_key(key, "record_sha256"), "must be 64 hexadecimal digits (a SHA-256)")
        pins[dist] = Pin(version, digest)
    return TrustSettings(allow, pins)


def load_config(path: str | Path) -> ServerConfig:
    path = Path(path).expanduser()
    reader = _Reader(path)
    data = reader.table(_parse_file(path), "")
    reader.table(data, "", _TOP_KEYS)
    gateway_section = data.pop("gateway", None)  # validated by gateway/settings.py, below
    origin = f"config file {path}"
    backends = {
        name: _backend(reader, name, value, origin)
        for name, value in reader.table(data.get("backends", {}), "backends").items()
    }
    models = tuple(
        _model_entry(reader, str(pattern), value)
        for pattern, value in reader.table(data.get("models", {}), "models").items()
    )
    trust = _trust(reader, data.get("trust", {}))
    gateway = None
    if gateway_section is not None:
        from tt_vllm_plugin.serve.gateway.settings import parse_gateway

        gateway = parse_gateway(reader, gateway_section, list(Catalog(backends)))
    config = ServerConfig(path, models, backends, trust, gateway)
    catalog = config.catalog()
    for entry in models:
        if entry.backend is not None and entry.backend not in catalog:
            raise reader.fail(
                _key(entry.key, "backend"),
                f"{entry.backend!r} is not a known backend. Known backends: {', '.join(catalog)}",
            )
    return config
