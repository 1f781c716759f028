"""Every environment variable tt-serve reads or sets, in one registry: name, default, who reads it.

tt-serve and the plugins it launches run in different Python environments and never import each
other, so the variables that cross that boundary are a protocol. tt-serve owns the ``TT_SERVE_*`` ones
(the plugin's ``tt_vllm_plugin.envs`` reads the same names; ``tests/test_shared_protocol.py`` fails if
the two registries disagree), and sets the plugin's ``TT_VLLM_DEVICE`` through its catalog.
Imports nothing of the package, so anything may import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str | None
    description: str

    def get(self, environ: Mapping[str, str] | None = None) -> str:
        """The value, stripped; the default when unset or blank ("" for a variable without one)."""
        value = (os.environ if environ is None else environ).get(self.name, "").strip()
        return value or self.default or ""

    def __str__(self) -> str:
        return self.name


# ---- read by tt-serve itself ----------------------------------------------------------------------
TT_SERVE_CONFIG = EnvVar("TT_SERVE_CONFIG", None, "the config file when --config is not given")
TT_SERVE_GATEWAY = EnvVar("TT_SERVE_GATEWAY", None, "the gateway address for tt-serve's gateway commands")
TT_SERVE_ADMIN_TOKEN = EnvVar(
    "TT_SERVE_ADMIN_TOKEN", None, "the gateway's admin token (a secret: never passed to engines)"
)
TT_SERVE_CACHE = EnvVar(
    "TT_SERVE_CACHE", None, "tt-serve's own cache (placeholder folders); default ~/.cache/tt-serve"
)
# ---- set by tt-serve for the server it launches (the protocol with the plugins) --------------------
TT_SERVE_BACKEND = EnvVar(
    "TT_SERVE_BACKEND", None, "set by tt-serve: the backend a server runs (metrics label)"
)
TT_SERVE_DISTRIBUTION = EnvVar(
    "TT_SERVE_DISTRIBUTION", None, "set by tt-serve: the plugin distribution served"
)
TT_SERVE_ATTEMPT = EnvVar(
    "TT_SERVE_ATTEMPT", "1", "set by tt-serve: 1 for the first server, 2 after a restart"
)
TT_SERVE_STATUS_FILE = EnvVar(
    "TT_SERVE_STATUS_FILE", None, "set by tt-serve: where the server's start-up phases are appended"
)
TT_VLLM_ENGINE_FAILURE_FILE = EnvVar(
    "TT_VLLM_ENGINE_FAILURE_FILE", None, "set by tt-serve: where the worker writes why its engine failed"
)
# ---- the tt-vllm-plugin's own, named in the catalog's backends ------------------------------------
TT_VLLM_DEVICE = EnvVar(
    "TT_VLLM_DEVICE", "auto", "the plugin's device: host for backend host, ttnn for backend metal"
)
TT_VLLM_ALLOW_UNTESTED_VLLM = EnvVar(
    "TT_VLLM_ALLOW_UNTESTED_VLLM",
    None,
    "1 for the server: the plugin, and tt-serve's vllm check, accept a vLLM past the plugin's range",
)

REGISTRY: tuple[EnvVar, ...] = tuple(value for value in list(globals().values()) if isinstance(value, EnvVar))
