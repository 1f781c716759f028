"""Every environment variable the plugin reads, in one registry (as vllm-spyre's ``envs.py``): its
name, its default and who reads it.

Modules import the names from here instead of spelling them. tt-serve (a distribution of its own,
which never imports the plugin) sets some of them for the servers it launches; its ``tt_serve.envs``
owns those names and ``tests/test_shared_protocol.py`` fails if the two registries disagree.
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


# ---- the plugin (read in the vLLM server and engine processes) ------------------------------------
TT_VLLM_DEVICE = EnvVar(
    "TT_VLLM_DEVICE", "auto", "auto | host | ttnn: the device the platform runs on (activation.py)"
)
TT_VLLM_HOST_TORCH_DEVICE = EnvVar(
    "TT_VLLM_HOST_TORCH_DEVICE", "cpu", "cpu | cuda: the torch device of the host device (device/host.py)"
)
TT_VLLM_HOST_COMPUTE_DTYPE = EnvVar(
    "TT_VLLM_HOST_COMPUTE_DTYPE",
    "auto",
    "auto | model: model keeps bf16/fp16 where the CPU would emulate it (device/cpu_dtype.py)",
)
TT_VLLM_HOST_ATTENTION = EnvVar(
    "TT_VLLM_HOST_ATTENTION", "auto", "auto | torch: torch forces the host models' plain-torch attention"
)
TT_VLLM_ALLOW_UNTESTED_VLLM = EnvVar(
    "TT_VLLM_ALLOW_UNTESTED_VLLM",
    None,
    "1: start on a vLLM newer than the supported range anyway, with a warning (version_check.py)",
)
TT_VLLM_HOST_MOE = EnvVar(
    "TT_VLLM_HOST_MOE", "auto", "auto | torch: torch forces the host models' plain-torch experts (moe.py)"
)
TT_VLLM_CACHE = EnvVar(
    "TT_VLLM_CACHE", None, "cache root for the embedded model and downloads (default ~/.cache/tt-vllm-plugin)"
)
TT_VLLM_METRICS_DIR = EnvVar(
    "TT_VLLM_METRICS_DIR", None, "set by the platform: where engine processes write tt_vllm_* metrics"
)
TT_VLLM_FAULT_INJECT = EnvVar(
    "TT_VLLM_FAULT_INJECT", None, 'tests only: "step=N[,mode=raise|exit][,attempt=K]" fails a model step'
)
TT_VLLM_EXIT_REPORTS = EnvVar(
    "TT_VLLM_EXIT_REPORTS", "hide", "hide | show: Triton's nanobind leak report at exit (quiet_exit.py)"
)
TT_VLLM_ENGINE_FAILURE_FILE = EnvVar(
    "TT_VLLM_ENGINE_FAILURE_FILE", None, "set by tt-serve: where the worker writes why its engine failed"
)
# ---- models users bring, as Tenstorrent's plugin reads them (models/user_models.py) ----------------
TT_MODEL_CLASS_OVERRIDES = EnvVar(
    "TT_MODEL_CLASS_OVERRIDES", None, '"Arch=module.path:Class,...": serve Arch with that class (wins)'
)
EXTRA_MODELS_DIR = EnvVar(
    "EXTRA_MODELS_DIR", None, "a folder of model bundles, each <name>/vllm_metadata.json (arch, main_class)"
)
TT_VLLM_BUILTIN_MODELS = EnvVar(
    "TT_VLLM_BUILTIN_MODELS", "1", "0/false/no/off: serve only the models above, not the built-in map"
)
# ---- tt-metal and Tenstorrent's tooling (read by ttnn too) ----------------------------------------
MESH_DEVICE = EnvVar(
    "MESH_DEVICE", None, "the mesh to open: a system name (N300, T3K, TG, ...) or (rows, cols)"
)
TT_VISIBLE_DEVICES = EnvVar("TT_VISIBLE_DEVICES", None, "comma-separated chip ids this process may open")
# ---- set by tt-serve for the server it launches (tt_serve.envs owns these names) -------------------
TT_SERVE_BACKEND = EnvVar(
    "TT_SERVE_BACKEND", None, "set by tt-serve: the backend a server runs (metrics label)"
)
TT_SERVE_ATTEMPT = EnvVar(
    "TT_SERVE_ATTEMPT", "1", "set by tt-serve: 1 for the first server, 2 after a restart"
)
TT_SERVE_STATUS_FILE = EnvVar(
    "TT_SERVE_STATUS_FILE", None, "set by tt-serve: where the worker appends its start-up phases"
)

REGISTRY: tuple[EnvVar, ...] = tuple(value for value in list(globals().values()) if isinstance(value, EnvVar))
