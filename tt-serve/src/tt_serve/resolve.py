"""Which backend serves MODEL, and why: four sources in a fixed precedence, every step reported.

1. ``--backend`` on the command line;
2. the server config file's entry for the model (``--config``);
3. the model's own metadata (``tt_serve.backend``, see ``models.py``);
4. hardware detection, consulted only when none of the above decides. It never picks a backend whose
   plugin is not installed: with a Tenstorrent card, ``metal`` (needs ttnn) then ``forge``; without
   one, ``host``. "Installed" means installed in the backend's own Python environment.

All sources are read (cheaply) even after one decides, so a conflict is visible in the steps and in
the reason instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tt_serve.catalog import Backend, Catalog
from tt_serve.config import ModelEntry, ServerConfig
from tt_serve.errors import ExitCode, ServeError
from tt_serve.hardware import HardwareReport
from tt_serve.models import MetadataError, ModelRef, metadata_places, read_backend_metadata
from tt_serve.pycompat import StrEnum


class Source(StrEnum):
    CLI = "cli"
    CONFIG = "config"
    METADATA = "metadata"
    HARDWARE = "hardware"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Source.CLI: "command line",
    Source.CONFIG: "config file",
    Source.METADATA: "model metadata",
    Source.HARDWARE: "hardware detection",
}


@dataclass(frozen=True)
class Step:
    source: Source
    finding: str  # what this source said, in words
    backend: str | None  # the backend it asks for, if any
    decides: bool = False


@dataclass(frozen=True, eq=False)
class Resolution:
    model: ModelRef
    backend: Backend
    source: Source
    reason: str
    steps: tuple[Step, ...]
    config_entry: ModelEntry | None  # the config entry matching the model (its args apply whoever decides)

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model.name,
            "model_target": self.model.target,
            "backend": self.backend.name,
            "distribution": self.backend.distribution,
            "entry_point": self.backend.entry_point,
            # The gateway swaps the engines of such a backend stop-then-start.
            "exclusive_device": self.backend.exclusive_device,
            # The gateway gives the engines of such a backend their own Tenstorrent card(s).
            "hardware": self.backend.hardware.value,
            "source": self.source.value,
            "reason": self.reason,
            "steps": [
                {"source": s.source.value, "finding": s.finding, "backend": s.backend, "decides": s.decides}
                for s in self.steps
            ],
        }


def resolve(
    model: ModelRef,
    *,
    cli_backend: str | None,
    config: ServerConfig,
    catalog: Catalog,
    hardware: Callable[[], HardwareReport],
    is_installed: Callable[[Backend], bool],
) -> Resolution:
    asks: list[Step] = [_cli_step(cli_backend, catalog)]
    entry = config.match(model.name) if config.path else None
    asks.append(_config_step(model, config, entry))
    metadata_step, metadata_error = _metadata_step(model, catalog)
    if metadata_error is not None:
        if not any(s.backend for s in asks):  # the broken metadata would decide: stop and say so
            raise ServeError(metadata_error, ExitCode.RESOLUTION)
        metadata_step = Step(Source.METADATA, f"ignored, invalid: {metadata_error}", None)
    asks.append(metadata_step)

    deciding = next((s for s in asks if s.backend is not None), None)
    steps: list[Step] = []
    for step in asks:
        if deciding is None or step is deciding or step.backend is None:
            steps.append(Step(step.source, step.finding, step.backend, step is deciding))
        elif step.backend == deciding.backend:
            steps.append(Step(step.source, f"{step.finding} (agrees)", step.backend))
        else:
            steps.append(
                Step(step.source, f"{step.finding} (overridden by the {deciding.source.label})", step.backend)
            )

    if deciding is not None:
        steps.append(Step(Source.HARDWARE, f"not consulted: decided by the {deciding.source.label}", None))
        overridden = [s for s in asks if s.backend not in (None, deciding.backend)]
        reason = f"{deciding.source.label}: {deciding.finding}"
        if overridden:
            reason += "; overrides " + "; ".join(f"{s.source.label}: {s.finding}" for s in overridden)
        return Resolution(model, catalog[deciding.backend], deciding.source, reason, tuple(steps), entry)

    hw_step = _hardware_step(hardware(), catalog, is_installed)
    steps.append(hw_step)
    assert hw_step.backend is not None
    reason = f"{Source.HARDWARE.label}: {hw_step.finding}"
    return Resolution(model, catalog[hw_step.backend], Source.HARDWARE, reason, tuple(steps), entry)


def _cli_step(cli_backend: str | None, catalog: Catalog) -> Step:
    if cli_backend is None:
        return Step(Source.CLI, "no --backend given", None)
    if cli_backend not in catalog:
        raise ServeError(catalog.unknown(cli_backend, "--backend"), ExitCode.RESOLUTION)
    return Step(Source.CLI, f"--backend {cli_backend}", cli_backend)


def _config_step(model: ModelRef, config: ServerConfig, entry: ModelEntry | None) -> Step:
    if config.path is None:
        return Step(Source.CONFIG, "no --config given", None)
    if entry is None:
        return Step(Source.CONFIG, f"{config.path}: no entry matches {model.name!r}", None)
    if entry.backend is None:
        return Step(Source.CONFIG, f"{config.path}: {entry.key} matches but sets no backend", None)
    return Step(
        Source.CONFIG, f"{config.path}: {entry.key} maps {model.name!r} to {entry.backend!r}", entry.backend
    )


def _metadata_step(model: ModelRef, catalog: Catalog) -> tuple[Step, str | None]:
    """The metadata's step, or the error invalid metadata causes (fatal only where it would decide)."""
    if model.folder is None:
        return Step(
            Source.METADATA, "not a local folder nor in the Hugging Face cache: no metadata read", None
        ), None
    try:
        found = read_backend_metadata(model.folder)
    except MetadataError as error:
        return Step(Source.METADATA, "", None), f"Model metadata: {error}"
    if found is None:
        return Step(Source.METADATA, f"{model.folder} has no {metadata_places()}", None), None
    if found.backend not in catalog:
        return Step(Source.METADATA, "", None), catalog.unknown(found.backend, f"Model metadata {found.file}")
    return Step(Source.METADATA, f"{found.file} asks for {found.backend!r}", found.backend), None


def _hardware_step(hw: HardwareReport, catalog: Catalog, is_installed: Callable[[Backend], bool]) -> Step:
    def installed(name: str) -> bool:
        """In the backend's own Python environment (see environments.py)."""
        return name in catalog and is_installed(catalog[name])

    if hw.present:
        seen = f"Tenstorrent hardware detected ({hw.describe()})"
        if installed("metal") and hw.ttnn_installed:
            also = "; forge is installed too: pass --backend forge to use it" if installed("forge") else ""
            return Step(Source.HARDWARE, f"{seen}; 'metal' is installed{also}", "metal", True)
        if installed("forge"):
            return Step(
                Source.HARDWARE,
                f"{seen}; ttnn is missing so 'metal' cannot run; 'forge' is installed",
                "forge",
                True,
            )
        if installed("metal"):
            return Step(
                Source.HARDWARE,
                f"{seen}; 'metal' is installed (ttnn is not: the checks will say how to fix it)",
                "metal",
                True,
            )
        raise ServeError(
            f"{seen}, but neither 'metal' ({catalog['metal'].distribution}) nor 'forge' "
            f"({catalog['forge'].distribution}) is installed. Install one ({catalog['forge'].install}) "
            "or name a backend with --backend.",
            ExitCode.RESOLUTION,
        )
    seen = f"no Tenstorrent hardware detected ({hw.describe()})"
    if installed("host"):
        return Step(Source.HARDWARE, f"{seen}; 'host' runs this plugin on the host device", "host", True)
    raise ServeError(
        f"{seen}, and the 'host' backend ({catalog['host'].distribution}) is not installed. "
        "Name a backend with --backend.",
        ExitCode.RESOLUTION,
    )
