"""A stand-in tt-metal checkout on disk, in either package layout, whose generator classes are TEST DOUBLES.

tt-metal's ``models`` package is not installed here, so the layout logic (which module the ttnn device
imports, where ``SamplingParams`` is found) is exercised against real packages written into a temporary
folder and put on ``sys.path``, imported by the plugin exactly as a tt-metal checkout on PYTHONPATH would
be. The two layouts (tenstorrent/tt-metal):

- ``ttt_compat``: ``models/ttt_compat/tt/generator_vllm.py`` @ 3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf
  (after PR #55977 renamed ``models/tt_transformers``, with no shim left at the old path);
- ``tt_transformers``: ``models/tt_transformers/tt/generator_vllm.py`` @
  2a43729eb2eb37d76004e978da0af31e33829840.

Both keep ``SamplingParams`` in ``models/common/sampling/sampling_params.py`` in current releases
(@ 421a32c198c9ce77908f704f673da5d0a0ffa3f8) and re-export it from ``<layout>/tt/generator.py``.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tt_vllm_plugin.models.tt_metal import generators
from tt_vllm_plugin.models.tt_metal import sampling as tt_metal_sampling

LAYOUTS = ("ttt_compat", "tt_transformers")


def write_checkout(
    root: Path,
    generators: Mapping[str, Mapping[str, str]],
    sampling_params_in: str | None = None,
    broken: str | None = None,
    modules: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write a ``models`` package under ``root``.

    ``generators``: layout -> {class name in generator_vllm: "module:Class" of the double it re-exports}.
    ``sampling_params_in``: "common" (models/common/sampling/sampling_params.py) or a layout (its
    tt/generator.py) defines a ``SamplingParams`` class; None: none does. ``broken``: a layout whose
    generator_vllm raises ImportError when imported (a tt-metal written for another vLLM). ``modules``:
    other modules of the ``models`` package (dotted name -> {class name: "module:Class"}), e.g.
    ``models.demos.qwen25_vl.tt.generator_vllm``, written with an ``__init__.py`` in every package above.
    """
    files: dict[str, str] = {"models/__init__.py": ""}
    for layout, classes in generators.items():
        lines = [
            f"from {target.split(':')[0]} import {target.split(':')[1]} as {name}"
            for name, target in classes.items()
        ]
        if layout == broken:
            lines.insert(0, "raise ImportError('cannot import name MultiModalDataDict from vllm.inputs')")
        files |= {
            f"models/{layout}/__init__.py": "",
            f"models/{layout}/tt/__init__.py": "",
            f"models/{layout}/tt/generator_vllm.py": "\n".join(lines) + "\n",
            f"models/{layout}/tt/generator.py": "",
        }
    for dotted, classes in (modules or {}).items():
        parts = dotted.split(".")
        for depth in range(1, len(parts)):
            files.setdefault("/".join(parts[:depth]) + "/__init__.py", "")
        files["/".join(parts) + ".py"] = (
            "\n".join(
                f"from {target.split(':')[0]} import {target.split(':')[1]} as {name}"
                for name, target in classes.items()
            )
            + "\n"
        )
    sampling_params = textwrap.dedent(
        """
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class SamplingParams:
            temperature: float | list[float]
            top_k: int | list[int]
            top_p: float | list[float]
        """
    )
    if sampling_params_in == "common":
        files |= {
            "models/common/__init__.py": "",
            "models/common/sampling/__init__.py": "",
            "models/common/sampling/sampling_params.py": sampling_params,
        }
    elif sampling_params_in is not None:
        files[f"models/{sampling_params_in}/tt/generator.py"] = sampling_params
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _forget_models() -> None:
    for name in [name for name in sys.modules if name == "models" or name.startswith("models.")]:
        del sys.modules[name]
    generators.generator_module.cache_clear()
    tt_metal_sampling.tt_metal_sampling_params_class.cache_clear()


@contextmanager
def on_path(root: Path) -> Iterator[Path]:
    """``root`` first on ``sys.path`` with no ``models`` imported before or after, and the plugin's
    cached lookups forgotten both ways."""
    _forget_models()
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        _forget_models()
