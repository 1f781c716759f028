"""The server config file (``--config FILE``, TOML or YAML): per-model defaults, extra backends, trust.

Example (TOML; the YAML form has the same keys)::

    [models."smollm2-135m-instruct"]          # a model name as given on the command line, or a glob
    backend = "host"
    vllm_args = ["--max-model-len", "2048"]   # or a table: { max-model-len = 2048, enforce-eager = true }
    tt = { kv_cache_tokens = 8192 }           # TT options, passed as --additional-config '{"tt": {...}}'
    env = { MESH_DEVICE = "N150" }

    [backends.metal]                          # a catalog backend: only the keys given change
    python = "/opt/tt-metal/python_env/bin/python"   # its environment's interpreter
    exclusive_device = true                   # a swap stops the old engine before starting the new one

    [backends.forge-nightly]                  # add a backend
    distribution = "vllm_tt"
    entry_point = "tt"
    vllm = "==0.26.0"                         # optional: default is the distribution's own vllm pin
    hardware = "tenstorrent"                  # or "none"
    install = "pip install vllm_tt --pre --extra-index-url https://pypi.eng.aws.tenstorrent.com/"

    [trust]
    allow = ["tt-vllm-plugin", "vllm_tt"]     # replaces the default (the built-in catalog's distributions)
    general_plugins = ["my-vllm-hooks"]       # vllm.general_plugins allowed to run in servers (default none
                                              # besides the chosen plugin's own and vLLM's)
    [trust.pins.vllm_tt]                      # a pinned distribution is allowed
    version = "==0.9.0"
    record_sha256 = "..."                     # from `tt-serve backends --json`

Model names match exactly first, then globs (fnmatch, case-sensitive) in file order. Every error names
the file and the key, because a silently ignored key in a deployment file costs an afternoon.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tt_serve import config_keys, envs
from tt_serve.catalog import Backend, Catalog, HardwareNeed, builtin_backends
from tt_serve.config_reader import ConfigReader, args_from_mapping, key_path, kind
from tt_serve.errors import ExitCode, ServeError

if TYPE_CHECKING:
    from tt_serve.gateway.settings import GatewaySettings

CONFIG_ENV = envs.TT_SERVE_CONFIG.name

# The allowed keys of each section, with their meaning, live in config_keys.py (the docs' reference too).
_TOP_KEYS = config_keys.TOP.names()
_MODEL_KEYS = config_keys.MODEL.names()
_BACKEND_KEYS = config_keys.BACKEND.names()
_TRUST_KEYS = config_keys.TRUST.names()
_PIN_KEYS = config_keys.PIN.names()


@dataclass(frozen=True, eq=False)
class ModelEntry:
    pattern: str
    backend: str | None
    vllm_args: tuple[str, ...] = ()
    tt: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return key_path("models", self.pattern)


@dataclass(frozen=True)
class Pin:
    version: str | None = None  # PEP 440 specifier, e.g. "==0.9.0"
    record_sha256: str | None = None  # fingerprint of the installed distribution's RECORD


@dataclass(frozen=True, eq=False)
class TrustSettings:
    allow: tuple[str, ...] | None = None  # None: the built-in catalog's distributions
    pins: Mapping[str, Pin] = field(default_factory=dict)
    # Distributions whose vllm.general_plugins may run inside servers (besides the chosen plugin's own
    # and vLLM's); every other general plugin is hidden from the server.
    general_plugins: tuple[str, ...] = ()


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


def _parse_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ServeError(f"{path}: cannot read the config file: {error.strerror}", ExitCode.CONFIG) from None
    if suffix == ".toml":
        from tt_serve.pycompat import tomllib

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


def _model_entry(reader: ConfigReader, pattern: str, value: Any) -> ModelEntry:
    key = key_path("models", pattern)
    table = reader.table(value, key, _MODEL_KEYS)
    backend = reader.string(table["backend"], key_path(key, "backend")) if "backend" in table else None
    args: list[str] = []
    if "vllm_args" in table:
        raw = table["vllm_args"]
        args_key = key_path(key, "vllm_args")
        if isinstance(raw, list):
            for i, item in enumerate(raw):
                if not isinstance(item, str | int | float) or isinstance(item, bool):
                    raise reader.fail(f"{args_key}[{i}]", f"must be a string, got {kind(item)}")
            args = [str(item) for item in raw]
        elif isinstance(raw, dict):
            args = args_from_mapping(raw)
        else:
            raise reader.fail(args_key, f"must be a list of arguments or a table, got {kind(raw)}")
    tt = reader.table(table.get("tt", {}), key_path(key, "tt"))
    env = reader.string_map(table.get("env", {}), key_path(key, "env"))
    return ModelEntry(pattern, backend, tuple(args), dict(tt), env)


def _backend(reader: ConfigReader, name: str, value: Any, origin: str) -> Backend:
    """A new backend, or a catalog backend with the keys the table gives changed (the rest kept)."""
    key = key_path("backends", name)
    table = reader.table(value, key, _BACKEND_KEYS)
    base = builtin_backends().get(name)
    if base is None:
        for required in ("distribution", "hardware"):
            if required not in table:
                raise reader.fail(key_path(key, required), "is required")
    distribution = (
        reader.string(table["distribution"], key_path(key, "distribution"))
        if "distribution" in table
        else base.distribution
    )
    need = base.hardware if base is not None and "hardware" not in table else None
    if need is None:
        hardware = reader.string(table["hardware"], key_path(key, "hardware"))
        try:
            need = HardwareNeed(hardware)
        except ValueError:
            choices = ", ".join(repr(h.value) for h in HardwareNeed)
            raise reader.fail(
                key_path(key, "hardware"), f"must be one of {choices}, got {hardware!r}"
            ) from None
    python = None
    if "python" in table:
        python = _interpreter_path(reader.string(table["python"], key_path(key, "python")), reader.path)
    exclusive = base.exclusive_device if base is not None else need is HardwareNeed.TENSTORRENT
    if "exclusive_device" in table:
        exclusive = reader.boolean(table["exclusive_device"], key_path(key, "exclusive_device"))
    return Backend(
        name=name,
        distribution=distribution,
        entry_point=reader.string(table["entry_point"], key_path(key, "entry_point"))
        if "entry_point" in table
        else (base.entry_point if base is not None else "tt"),
        vllm=reader.specifier(table["vllm"], key_path(key, "vllm"))
        if "vllm" in table
        else (base.vllm if base is not None else None),
        hardware=need,
        install=reader.string(table["install"], key_path(key, "install"))
        if "install" in table
        else (base.install if base is not None else f"pip install {distribution}"),
        env=reader.string_map(table["env"], key_path(key, "env"))
        if "env" in table
        else (base.env if base is not None else {}),
        description=str(table.get("description", base.description if base is not None else "")),
        origin=origin if base is None else f"built-in, changed by {origin}",
        python=python if python is not None else (base.python if base is not None else None),
        exclusive_device=exclusive,
        vllm_range_attribute=base.vllm_range_attribute
        if base is not None and distribution == base.distribution
        else None,
    )


def _interpreter_path(text: str, config_path: Path) -> str:
    """``~`` and ``$VARIABLES`` expanded; a relative path is relative to the config file's folder.
    Normalised but not resolved: a venv's ``bin/python`` is a symlink, and only the link is the venv."""
    path = Path(os.path.expandvars(text)).expanduser()
    return os.path.normpath(path if path.is_absolute() else (config_path.parent / path).absolute())


def _trust(reader: ConfigReader, value: Any) -> TrustSettings:
    table = reader.table(value, "trust", _TRUST_KEYS)
    allow = _names(reader, table["allow"], "trust.allow") if "allow" in table else None
    general = _names(reader, table.get("general_plugins", []), "trust.general_plugins")
    pins: dict[str, Pin] = {}
    for dist, pin_value in reader.table(table.get("pins", {}), "trust.pins").items():
        key = key_path("trust", "pins", dist)
        pin = reader.table(pin_value, key, _PIN_KEYS)
        version = reader.specifier(pin["version"], key_path(key, "version")) if "version" in pin else None
        digest = None
        if "record_sha256" in pin:
            digest = reader.string(pin["record_sha256"], key_path(key, "record_sha256")).lower()
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise reader.fail(key_path(key, "record_sha256"), "must be 64 hexadecimal digits (a SHA-256)")
        pins[dist] = Pin(version, digest)
    return TrustSettings(allow, pins, general)


def _names(reader: ConfigReader, raw: Any, key: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise reader.fail(key, f"must be a list of distribution names, got {kind(raw)}")
    return tuple(reader.string(item, f"{key}[{i}]") for i, item in enumerate(raw))


def load_config(path: str | Path) -> ServerConfig:
    path = Path(path).expanduser()
    reader = ConfigReader(path)
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
        from tt_serve.gateway.settings import parse_gateway

        gateway = parse_gateway(reader, gateway_section, list(Catalog(backends)))
    config = ServerConfig(path, models, backends, trust, gateway)
    catalog = config.catalog()
    for entry in models:
        if entry.backend is not None and entry.backend not in catalog:
            raise reader.fail(
                key_path(entry.key, "backend"),
                f"{entry.backend!r} is not a known backend. Known backends: {', '.join(catalog)}",
            )
    return config
