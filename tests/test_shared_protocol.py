"""tt-serve and the plugin never import each other (they live in different Python environments), so the
environment variables that cross from one to the other are a protocol spelled in both registries.
This is the test that keeps the two spellings one: every variable either side registers under the
other's prefix must exist on the other side with the same name and default."""

from __future__ import annotations

from tt_serve import envs as serve_envs
from tt_serve.progress import ENGINE_PHASES
from tt_vllm_plugin import envs as plugin_envs
from tt_vllm_plugin.worker.startup_phases import EnginePhase

# What tt-serve sets for a server and the plugin reads there, or the reverse.
SHARED = (
    "TT_SERVE_BACKEND",
    "TT_SERVE_ATTEMPT",
    "TT_SERVE_STATUS_FILE",
    "TT_VLLM_ENGINE_FAILURE_FILE",
    "TT_VLLM_DEVICE",
    "TT_VLLM_ALLOW_UNTESTED_VLLM",
)


def _by_name(module) -> dict:
    return {var.name: var for var in module.REGISTRY}


def test_shared_variables_agree():
    serve, plugin = _by_name(serve_envs), _by_name(plugin_envs)
    for name in SHARED:
        assert name in serve and name in plugin, name
        assert serve[name].default == plugin[name].default, name


def test_every_crossing_variable_is_listed_as_shared():
    """A TT_SERVE_* name the plugin reads, or a TT_VLLM_* name tt-serve sets, is part of the protocol."""
    crossing = {n for n in _by_name(plugin_envs) if n.startswith("TT_SERVE_")}
    crossing |= {n for n in _by_name(serve_envs) if n.startswith("TT_VLLM_")}
    assert crossing == set(SHARED)


def test_the_engine_phases_the_plugin_writes_are_the_ones_tt_serve_reads():
    assert [phase.value for phase in EnginePhase] == [phase.value for phase in ENGINE_PHASES]
