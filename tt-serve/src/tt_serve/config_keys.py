"""Every key of tt-serve's config file, one table per section: its type, its default and what it does.

The parsers (``config.py`` for models, backends and trust; ``gateway/settings.py`` for ``[gateway]``)
take their allowed keys from here, so a key is refused unless it is described, and the documentation's
config reference (``docs/reference/config.md``, written by ``docs/gen_reference.py``) is this table.
Imports nothing of the package, so anything may import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    name: str
    type: str
    default: str
    meaning: str


@dataclass(frozen=True)
class Section:
    path: str  # as the file spells it, NAME standing for a name the user chooses
    meaning: str
    keys: tuple[Key, ...]

    def names(self) -> set[str]:
        return {key.name for key in self.keys}


TOP = Section(
    "(top level)",
    "The file's sections; any other top-level key is refused.",
    (
        Key("models", "table of tables", "{}", "per-model defaults for `tt-serve serve` and gateway models"),
        Key(
            "backends", "table of tables", "{}", "backends added to the catalog, or catalog backends changed"
        ),
        Key("trust", "table", "{}", "which plugin distributions may be launched"),
        Key("gateway", "table", "none", "`tt-serve gateway`: where it listens and which models it runs"),
    ),
)

MODEL = Section(
    'models."NAME"',
    "Defaults for a model as given on the command line: exact names first, then globs (fnmatch, "
    "case-sensitive) in file order. Command-line values win.",
    (
        Key("backend", "string", "resolved", "the backend that serves the model (a catalog name)"),
        Key(
            "vllm_args",
            "list of strings, or table",
            "[]",
            'vLLM serve arguments: `["--max-model-len", "8192"]` or `{ max-model-len = 8192 }` '
            "(`true` gives the flag, `false` its `--no-` form)",
        ),
        Key(
            "tt",
            "table",
            "{}",
            "TT options, merged into `--additional-config '{\"tt\": {...}}'` and validated by the plugin "
            "in its own environment",
        ),
        Key("env", "table of strings", "{}", "environment variables for the server process"),
    ),
)

BACKEND = Section(
    'backends."NAME"',
    "A catalog backend (`host`, `metal`, `forge`) changes only the keys given; any other name adds a "
    "backend, which needs `distribution` and `hardware`.",
    (
        Key("distribution", "string", "the catalog's", "the installed distribution that provides the plugin"),
        Key("entry_point", "string", '"tt"', "its entry-point name in the `vllm.platform_plugins` group"),
        Key(
            "vllm",
            "PEP 440 specifier",
            "the plugin's range",
            "the vLLM releases it works with; default: tt-vllm-plugin's own `SUPPORTED_VLLM`, else the "
            "distribution's own requirement on vllm",
        ),
        Key("hardware", '"tenstorrent" or "none"', "the catalog's", "whether the backend needs a card"),
        Key(
            "install",
            "string",
            '"pip install DISTRIBUTION"',
            "the install command shown when the plugin is missing",
        ),
        Key(
            "env", "table of strings", "the catalog's", "variables set for the server (e.g. `TT_VLLM_DEVICE`)"
        ),
        Key("description", "string", "the catalog's", "one line shown by `tt-serve backends`"),
        Key(
            "python",
            "path",
            "the catalog's, else tt-serve's own",
            "the interpreter of the backend's Python environment; `~` and `$VARS` expanded, relative to "
            "the config file (`metal` defaults to `$TT_METAL_HOME/python_env/bin/python` when it exists)",
        ),
        Key(
            "exclusive_device",
            "bool",
            "true when hardware is tenstorrent",
            "an engine holds a device no second engine can open: swaps stop the old engine first",
        ),
    ),
)

TRUST = Section(
    "trust",
    "Which plugins tt-serve launches (`--allow-untrusted` overrides, with a warning).",
    (
        Key("allow", "list of strings", "the catalog's distributions", "the distributions allowed to serve"),
        Key(
            "pins",
            "table of tables",
            "{}",
            "per distribution: the version and RECORD fingerprint it must have (`trust.pins.NAME`)",
        ),
        Key(
            "general_plugins",
            "list of strings",
            "[]",
            "distributions whose `vllm.general_plugins` may run in servers (besides the chosen plugin's "
            "own and vLLM's); every other one is hidden from the server",
        ),
    ),
)

PIN = Section(
    'trust.pins."DISTRIBUTION"',
    "A pinned distribution is allowed only while it matches.",
    (
        Key("version", "PEP 440 specifier", "none", 'e.g. "==0.9.0"'),
        Key(
            "record_sha256",
            "64 hex digits",
            "none",
            "the SHA-256 of its installed RECORD, as `tt-serve backends --json` prints it",
        ),
    ),
)

GATEWAY = Section(
    "gateway",
    "`tt-serve gateway`: one front door, one engine process per model.",
    (
        Key("host", "string", '"127.0.0.1"', "where the gateway listens; engines always listen on 127.0.0.1"),
        Key("port", "integer 1-65535", "8000", "the gateway's port"),
        Key(
            "drain_timeout_s",
            "positive number",
            "30",
            "how long a swap or removal lets in-flight requests on the old engine finish",
        ),
        Key("start_timeout_s", "positive number", "300", "how long a new engine may take to become healthy"),
        Key(
            "hold_requests_s",
            "number, 0 or more",
            "0",
            "while a model loads: 0 answers 503 + Retry-After at once; N holds requests up to N s",
        ),
        Key(
            "max_request_bytes",
            "positive integer",
            "33554432 (32 MiB)",
            "the largest request body the OpenAI routes and the admin API take (images come base64-encoded "
            "inside it); a larger one is answered 413 naming this key",
        ),
        Key("log_dir", "path", "a fresh temporary folder", "engine logs and status files"),
        Key("engine_env_drop", "list of globs", "[]", "variables never passed to engines"),
        Key(
            "engine_env_keep",
            "list of globs",
            '["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]',
            "secret-named variables engines still get (replaces the default)",
        ),
        Key("models", "list of tables", "[]", "the models served (`[[gateway.models]]`)"),
        Key(
            "cards",
            '"auto" or list of ids',
            '"auto"',
            "the host's Tenstorrent cards (auto: /dev/tenstorrent/*)",
        ),
        Key(
            "device_root",
            "path",
            '"/"',
            "where `dev/tenstorrent` and `sys/class/tenstorrent` are (tests point it at a folder)",
        ),
        Key("cluster", "table", "none (one host)", "cluster mode (`tt-serve[ray]`): `[gateway.cluster]`"),
    ),
)

GATEWAY_MODEL = Section(
    "[[gateway.models]]",
    "One model behind the gateway. The `[models.X]` entries still apply to it as defaults (its `model` "
    "is matched against them); the gateway entry's own values win.",
    (
        Key("name", "string", "required", 'what clients send as "model" (letters, digits and `. _ : / -`)'),
        Key("model", "string", "required", "alias, folder or Hugging Face id, as for `tt-serve serve`"),
        Key("backend", "string", "resolved", "as `tt-serve serve` resolves it when absent"),
        Key(
            "vllm_args",
            "list of strings, or table",
            "[]",
            "engine arguments, as in `[models.X]`; `--host`, `--port`, `--served-model-name`, `--model` "
            "and `--uds` belong to the gateway",
        ),
        Key("tt", "table", "{}", "TT options"),
        Key("env", "table of strings", "{}", "this engine's own variables, passed as given"),
        Key(
            "cards",
            "integer, or list of ids",
            "what MESH_DEVICE implies",
            "the cards the engine needs; else one for a backend that needs hardware, else none",
        ),
        Key("replicas", "positive integer", "1", "cluster mode only: replicas, each on its own cards"),
    ),
)

CLUSTER = Section(
    "gateway.cluster",
    "Cluster mode: each model a Ray Serve application whose replicas ask Ray for cards (`TTNPU`).",
    (
        Key("address", "string", '"auto"', "the Ray cluster to join (e.g. `127.0.0.1:6379`)"),
        Key(
            "serve_port",
            "positive integer",
            "8100",
            "Ray Serve's HTTP proxy on the head node, on 127.0.0.1 (the gateway's upstream)",
        ),
    ),
)

SECTIONS: tuple[Section, ...] = (TOP, MODEL, BACKEND, TRUST, PIN, GATEWAY, GATEWAY_MODEL, CLUSTER)
