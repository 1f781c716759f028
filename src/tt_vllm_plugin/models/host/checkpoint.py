"""Reading a Hugging Face safetensors checkpoint, for any host model.

Generic, as nano-vllm's ``utils/loader.py``: a model names the tensors it needs and declares a
``packed_modules_mapping``, and the loader fuses the checkpoint's separate projections into the packed
modules the model computes with (one bigger matmul instead of several is faster on a CPU). Only the
named tensors are read, each shard file opened once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

# Checkpoint module -> (packed module, its place in the packed module's output rows): nano-vllm's shape.
# ``...self_attn.k_proj.weight`` is the second slice of ``...self_attn.qkv_proj.weight``.
PackedModulesMapping = Mapping[str, tuple[str, int]]

# nano-vllm's packed_modules_mapping for Llama and Qwen, which Gemma's checkpoints name alike: q/k/v into
# one matrix, gate/up into another.
QKV_GATE_UP: PackedModulesMapping = {
    "q_proj": ("qkv_proj", 0),
    "k_proj": ("qkv_proj", 1),
    "v_proj": ("qkv_proj", 2),
    "gate_proj": ("gate_up_proj", 0),
    "up_proj": ("gate_up_proj", 1),
}


def model_folder(hf_config: Any) -> Path:
    """The local folder holding the checkpoint ``hf_config`` was read from.

    A hub id (not a local folder) is looked up in the Hugging Face cache without network access:
    vLLM downloads the checkpoint there before the model is built.
    """
    name = getattr(hf_config, "_name_or_path", None) or getattr(hf_config, "name_or_path", None)
    if not name:
        raise ValueError("hf_config has no _name_or_path: cannot tell where the model weights are.")
    path = Path(str(name)).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name), local_files_only=True))
    except Exception as error:
        raise FileNotFoundError(
            f"Model weights folder '{name}' does not exist and is not in the Hugging Face cache."
        ) from error


def safetensors_locations(folder: Path) -> dict[str, Path]:
    """Tensor name -> file holding it, from ``model.safetensors.index.json`` or the ``*.safetensors``."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: folder / file for name, file in weight_map.items()}
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"No safetensors weights found in '{folder}' (looked for model.safetensors.index.json "
            "and *.safetensors); host models load Hugging Face safetensors checkpoints only."
        )
    locations: dict[str, Path] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            locations.update(dict.fromkeys(handle.keys(), file))
    return locations


def load_tensors(
    folder: Path, names: Sequence[str], dtype: torch.dtype, device: torch.device
) -> dict[str, torch.Tensor]:
    """Read exactly ``names`` (cast to ``dtype``, on ``device``); each shard is opened once."""
    from safetensors import safe_open

    locations = safetensors_locations(folder)
    missing = [name for name in names if name not in locations]
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" ... ({len(missing)} missing in all)" if len(missing) > 10 else ""
        )
        raise ValueError(f"Checkpoint in '{folder}' lacks tensors the model needs: {shown}")
    by_file: dict[Path, list[str]] = {}
    for name in names:
        by_file.setdefault(locations[name], []).append(name)
    tensors: dict[str, torch.Tensor] = {}
    for file, file_names in by_file.items():
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            for name in file_names:
                tensors[name] = handle.get_tensor(name).to(device=device, dtype=dtype)
    return tensors


def pack_modules(tensors: dict[str, torch.Tensor], mapping: PackedModulesMapping) -> dict[str, torch.Tensor]:
    """Replace, in place, the tensors of every module ``mapping`` names by their packed module's:
    ``<parent>.<module>.<param>`` becomes slice ``index`` (along the output rows) of
    ``<parent>.<packed>.<param>`` for each ``module -> (packed, index)``. Other tensors stay as they are.
    Returns ``tensors``."""
    shards: dict[str, dict[int, str]] = {}
    for name in tensors:
        module_path, _, param = name.rpartition(".")
        parent, _, module = module_path.rpartition(".")
        if module in mapping:
            packed, index = mapping[module]
            shards.setdefault(f"{parent}.{packed}.{param}", {})[index] = name
    for packed_name, parts in shards.items():
        # Each shard is dropped as its packed tensor is made, so memory holds one extra module at most.
        tensors[packed_name] = torch.cat([tensors.pop(parts[index]) for index in sorted(parts)], dim=0)
    return tensors


def load_checkpoint(
    folder: Path,
    names: Sequence[str],
    packed_modules_mapping: PackedModulesMapping,
    dtype: torch.dtype,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """The checkpoint tensors ``names``, with the modules ``packed_modules_mapping`` names packed."""
    return pack_modules(load_tensors(folder, names, dtype, device), packed_modules_mapping)
