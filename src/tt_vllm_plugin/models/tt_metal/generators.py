"""Finding tt-metal's vLLM generator classes: which module holds them (both package layouts), which of
the classes in ``inventory.py`` the installed tt-metal has, and loading one by its ``"module:Class"``
target.

Nothing here runs without a tt-metal checkout on ``PYTHONPATH``; the layouts are tested against checkouts
written to disk (tests/contract/tt_metal_checkout.py).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import Any

from tt_vllm_plugin.models.tt_metal import inventory
from tt_vllm_plugin.models.tt_metal.inventory import GeneratorClass

# Where tt-metal keeps its vLLM generators, newest layout first; the first that is there wins. tt-metal
# PR #55977 moved models/tt_transformers to models/ttt_compat with no shim left behind
# (models/ttt_compat/tt/generator_vllm.py @ 3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf; vllm-tt-plugin PR #121
# follows it); releases before it have models/tt_transformers/tt/generator_vllm.py
# (@ 2a43729eb2eb37d76004e978da0af31e33829840). Both layouts are in the field.
GENERATOR_MODULES = ("models.ttt_compat.tt.generator_vllm", "models.tt_transformers.tt.generator_vllm")
TT_PREFIX = "TT"  # Tenstorrent's TT names: "TT" + the Hugging Face architecture


class TTMetalUnavailable(RuntimeError):
    pass


@functools.cache
def generator_module() -> Any:
    """tt-metal's generator_vllm module (the first of :data:`GENERATOR_MODULES` that is there), or an
    error saying why none can be used."""
    name = next((candidate for candidate in GENERATOR_MODULES if _module_exists(candidate)), None)
    if name is None:
        raise TTMetalUnavailable(
            "tt-metal's models are not importable (no module "
            + " or ".join(repr(candidate) for candidate in GENERATOR_MODULES)
            + "): put a tt-metal checkout on PYTHONPATH (its root holds the `models` package) and set "
            "TT_METAL_HOME, or set TT_VLLM_DEVICE=host."
        )
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise TTMetalUnavailable(
            f"{name} failed to import ({type(error).__name__}: {error}); tt-metal's vLLM generators are "
            "written against a particular vLLM version, so check that this tt-metal release supports the "
            "installed vLLM."
        ) from error


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package (models, models.ttt_compat) is missing
        return False


def present_classes() -> dict[GeneratorClass, str]:
    """The classes of the inventory (``inventory.py``) the installed tt-metal has -> ``"module:Class"``:
    generator-module classes by name in that module, the others when their module is there (found
    without importing it)."""
    module = generator_module()
    found: dict[GeneratorClass, str] = {}
    for entry in inventory.GENERATOR_CLASSES:
        if entry.module is None:
            if hasattr(module, entry.name):
                found[entry] = f"{module.__name__}:{entry.name}"
        elif _module_exists(entry.module):
            found[entry] = f"{entry.module}:{entry.name}"
    return found


def served_targets() -> inventory.Served:
    """What the installed tt-metal's classes serve, by TT name (``TT`` + architecture); ``bare_names``
    stay Hugging Face names."""
    found = inventory.served(present_classes())
    text = {TT_PREFIX + arch: target for arch, target in found.text.items()}
    refused = {TT_PREFIX + arch: target for arch, target in found.refused.items()}
    return inventory.Served(text, refused, dict(found.bare_names))


def load_generator_class(target: str) -> type:
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
