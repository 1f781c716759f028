"""The backend catalog: which vLLM platform plugin serves a model, and what it needs.

A backend is a named way to run vLLM on Tenstorrent (or host) hardware: a platform-plugin
*distribution* exposing an entry point in vLLM's ``vllm.platform_plugins`` group, the vLLM versions it
works with, the hardware it needs, how to install it, and the environment it runs under. Two built-in
backends come from this project's distribution (``host`` and ``metal`` differ only in
``TT_VLLM_DEVICE``); ``forge`` is tt-xla's plugin. Operators add or override backends in the server
config file (see ``config.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from tt_serve import envs
from tt_serve.pycompat import StrEnum

PLATFORM_PLUGINS_GROUP = (
    "vllm.platform_plugins"  # vllm.plugins.PLATFORM_PLUGINS_GROUP, without importing vLLM
)
OUR_DISTRIBUTION = "tt-vllm-plugin"
TENSTORRENT_INDEX = "https://pypi.eng.aws.tenstorrent.com/"


class HardwareNeed(StrEnum):
    NONE = "none"  # runs on the host (PyTorch CPU)
    TENSTORRENT = "tenstorrent"  # needs a Tenstorrent card


@dataclass(frozen=True, eq=False)
class Backend:
    """One entry of the catalog."""

    name: str
    distribution: str  # the installed distribution that provides the plugin
    entry_point: str  # its entry-point name in the vllm.platform_plugins group
    # PEP 440 specifier for the vLLM release; None: ask the plugin (vllm_range_attribute), else read
    # the distribution's own requirement on vllm (see versions.py).
    vllm: str | None
    hardware: HardwareNeed
    install: str  # the typical install command, shown when the plugin is missing
    env: Mapping[str, str] = field(default_factory=dict)  # set for the server process
    description: str = ""
    origin: str = "built-in"  # or "config file <path>"
    # The interpreter of the Python environment that holds the plugin (and its vLLM); None: found by
    # looking (see environments.py). Metal and Forge plugins need different vLLMs, so a backend is a
    # plugin in an environment of its own.
    python: str | None = None
    # The engine holds a device no second engine can open (a Tenstorrent card): a swap must stop the
    # old engine before it starts the new one.
    exclusive_device: bool = False
    # "module:attribute" the plugin declares its supported vLLM range in, read inside its environment.
    vllm_range_attribute: str | None = None

    @property
    def label(self) -> str:
        return f"Plugin '{self.name}' (distribution {self.distribution})"


# One source of truth with the plugin's own start-up check, read in the backend's environment.
OUR_VLLM_RANGE = "tt_vllm_plugin.version_check:SUPPORTED_VLLM"


def builtin_backends() -> dict[str, Backend]:
    return {
        "host": Backend(
            name="host",
            distribution=OUR_DISTRIBUTION,
            entry_point="tt",
            vllm=None,
            vllm_range_attribute=OUR_VLLM_RANGE,
            hardware=HardwareNeed.NONE,
            install="pip install tt-vllm-plugin (or, in a checkout of this project: pip install -e .)",
            env={envs.TT_VLLM_DEVICE.name: "host"},
            description="this plugin on the host device (PyTorch CPU); no Tenstorrent card needed",
        ),
        "metal": Backend(
            name="metal",
            distribution=OUR_DISTRIBUTION,
            entry_point="tt",
            vllm=None,
            vllm_range_attribute=OUR_VLLM_RANGE,
            hardware=HardwareNeed.TENSTORRENT,
            install="pip install tt-vllm-plugin, plus ttnn from a tt-metal build or release for your card",
            env={envs.TT_VLLM_DEVICE.name: "ttnn"},
            description="this plugin on Tenstorrent hardware through ttnn (tt-metal models)",
            exclusive_device=True,
        ),
        "forge": Backend(
            name="forge",
            distribution="vllm_tt",
            entry_point="tt",
            vllm=None,
            hardware=HardwareNeed.TENSTORRENT,
            install=(
                f"pip install vllm_tt --extra-index-url {TENSTORRENT_INDEX} "
                "(Tenstorrent's package index; vllm_tt is not on PyPI)"
            ),
            description="tt-xla's plugin (TT-Forge compiler, torch-xla/PJRT); pins its own vLLM",
            exclusive_device=True,
        ),
    }


class Catalog(Mapping[str, Backend]):
    """Built-in backends, then the config file's additions and overrides (same name replaces)."""

    def __init__(self, extra: Mapping[str, Backend] | None = None) -> None:
        self._backends = builtin_backends()
        self._builtin_distributions = frozenset(b.distribution for b in self._backends.values())
        self._backends.update(extra or {})

    def __getitem__(self, name: str) -> Backend:
        return self._backends[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._backends)

    def __len__(self) -> int:
        return len(self._backends)

    @property
    def builtin_distributions(self) -> frozenset[str]:
        """The default trust allowlist: the distributions the built-in catalog names."""
        return self._builtin_distributions

    def unknown(self, name: str, where: str) -> str:
        return (
            f"{where} names backend {name!r}, which is not in the catalog. Known backends: {', '.join(self)}."
        )
