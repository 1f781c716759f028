"""Models users bring, with the same variables, meaning and precedence as Tenstorrent's plugin
(tenstorrent/vllm-tt-plugin ``src/vllm_tt_plugin/platform.py`` @ 01078a07128216ae085a966749974376cea8e721:
``_tt_model_class_overrides``, ``_iter_extra_model_bundles``, ``_register_models_from_extra_dir``,
``_builtin_models_enabled``, ``register_tt_models``), so a bundle or override written for it works here:

1. ``TT_MODEL_CLASS_OVERRIDES="Arch=module.path:Class,..."`` comes first and wins: each entry serves the TT
   name (``Arch`` with a ``TT`` prefix, either spelling accepted) and is registered with vLLM under the bare
   name too; of two entries for one name the later wins (PF registers them unconditionally, in order).
2. ``EXTRA_MODELS_DIR``: every ``<folder>/vllm_metadata.json`` (``arch``, ``main_class`` = ``module:Class``)
   serves ``TT<arch>`` unless something before it does (folders in sorted order, the first winning); the
   folder is appended to ``sys.path`` (never inserted first: an installed package of the same name wins).
   Folders without the file are skipped, as PF does (tt-inference-server points it at a whole
   ``models/demos`` tree).
3. The built-in map last, unless ``TT_VLLM_BUILTIN_MODELS`` is 0, false, no or off.

Where PF only warns and skips (a bundle whose metadata cannot be read or lacks a key, an
``EXTRA_MODELS_DIR`` that is not a folder), this is an error naming the file or variable: a model skipped
silently is served by the built-in class instead, which nobody asked for. Errors are raised by
:func:`load` and reach the user from the platform's config check (``register()`` must not raise: vLLM
swallows it, see ``activation.py``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tt_vllm_plugin import envs

TT_PREFIX = "TT"
METADATA_FILE = "vllm_metadata.json"
_OFF = ("0", "false", "no", "off")  # PF _builtin_models_enabled
_TARGET = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


class UserModelError(ValueError):
    pass


@dataclass(frozen=True)
class UserModel:
    """One class a user named, and where they named it (for error messages)."""

    target: str  # "module.path:Class"
    origin: str


@dataclass(frozen=True)
class UserModels:
    """What the environment asks for, by TT name, in precedence order."""

    overrides: dict[str, UserModel] = field(default_factory=dict)
    bare_names: dict[str, UserModel] = field(default_factory=dict)  # vLLM's registry only
    bundles: dict[str, UserModel] = field(default_factory=dict)
    builtin_enabled: bool = True

    def served(self) -> dict[str, UserModel]:
        """TT name -> class: overrides over bundles."""
        return {**self.bundles, **self.overrides}


def tt_name(arch: str) -> str:
    return arch if arch.startswith(TT_PREFIX) else TT_PREFIX + arch


def load(environ: Mapping[str, str] | None = None) -> UserModels:
    """Read the three variables; raises :class:`UserModelError` naming what is malformed. Appends the
    bundles' folders to ``sys.path``."""
    overrides: dict[str, UserModel] = {}
    bare: dict[str, UserModel] = {}
    for arch, model in parse_overrides(envs.TT_MODEL_CLASS_OVERRIDES.get(environ)):
        overrides[tt_name(arch)] = model
        if not arch.startswith(TT_PREFIX):
            bare[arch] = model
    bundles: dict[str, UserModel] = {}
    for folder, arch, model in read_bundles(envs.EXTRA_MODELS_DIR.get(environ)):
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
        bundles.setdefault(tt_name(arch), model)
    builtin = envs.TT_VLLM_BUILTIN_MODELS.get(environ).lower() not in _OFF
    return UserModels(overrides, bare, bundles, builtin)


def parse_overrides(raw: str) -> list[tuple[str, UserModel]]:
    """``Arch=module.path:Class`` entries, comma-separated; blanks around them and empty entries are
    ignored (PF ``_tt_model_class_overrides``)."""
    entries = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        arch, sep, target = (part.strip() for part in entry.partition("="))
        origin = f"{envs.TT_MODEL_CLASS_OVERRIDES} entry {entry!r}"
        if not sep or not arch or not _TARGET.match(target):
            raise UserModelError(f"{origin} is not of the form 'Architecture=module.path:ClassName'.")
        entries.append((arch, UserModel(target, origin)))
    return entries


def read_bundles(base: str) -> list[tuple[Path, str, UserModel]]:
    """``(folder, arch, class)`` of every bundle under ``base``, in sorted folder order."""
    if not base:
        return []
    root = Path(base).expanduser()
    if not root.is_dir():
        raise UserModelError(f"{envs.EXTRA_MODELS_DIR}={base!r} is not a directory.")
    bundles = []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        metadata = folder / METADATA_FILE
        if metadata.is_file():
            arch, target = _read_metadata(metadata)
            bundles.append((folder.resolve(), arch, UserModel(target, str(metadata))))
    return bundles


def _read_metadata(path: Path) -> tuple[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserModelError(f"{path}: cannot read it as JSON ({error}).") from None
    arch = data.get("arch") if isinstance(data, dict) else None
    target = data.get("main_class") if isinstance(data, dict) else None
    if not isinstance(arch, str) or not arch or not isinstance(target, str) or not target:
        raise UserModelError(
            f'{path}: needs "arch" (the Hugging Face architecture) and "main_class" ("module:Class").'
        )
    if not _TARGET.match(target):
        raise UserModelError(f'{path}: "main_class" {target!r} is not of the form "module.path:ClassName".')
    return arch, target


def bundle_target(folder: str | os.PathLike[str]) -> tuple[str, str]:
    """``(arch, "module:Class")`` of one bundle folder, its folder appended to ``sys.path`` (the
    conformance suite's ``--tt-model path/to/bundle``)."""
    path = Path(folder).expanduser().resolve()
    arch, target = _read_metadata(path / METADATA_FILE)
    if str(path) not in sys.path:
        sys.path.append(str(path))
    return arch, target
