"""The Llama family's weights: which checkpoint tensors a model needs, and how they become its layers.

Reading and packing are generic (``host/checkpoint.py``); what is the family's own is the tensor names,
the optional tensors an architecture has (:class:`FamilyLayout`) and the packed modules
(:data:`PACKED_MODULES`: q/k/v into one matrix, gate/up into another).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tt_vllm_plugin.models.host.checkpoint import QKV_GATE_UP, PackedModulesMapping, load_checkpoint
from tt_vllm_plugin.models.host.linear import HostLinear

# Checkpoint module -> (packed module, slice): q/k/v and gate/up (host/checkpoint.py).
PACKED_MODULES: PackedModulesMapping = QKV_GATE_UP


@dataclass(frozen=True)
class FamilyLayout:
    """Which optional tensors an architecture has (what differs inside the Llama family)."""

    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False


@dataclass
class LayerWeights:
    input_norm: torch.Tensor
    qkv: HostLinear  # q, k, v projections stacked on the output dim
    o: HostLinear
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    post_norm: torch.Tensor
    gate_up: HostLinear  # gate and up projections stacked on the output dim
    down: HostLinear


@dataclass
class ModelWeights:
    embed: torch.Tensor
    layers: list[LayerWeights]
    norm: torch.Tensor
    lm_head: HostLinear  # over the embedding itself when tied


def layer_tensor_names(index: int, layout: FamilyLayout) -> list[str]:
    prefix = f"model.layers.{index}."
    names = [prefix + "input_layernorm.weight", prefix + "post_attention_layernorm.weight"]
    names += [f"{prefix}self_attn.{p}_proj.weight" for p in "qkvo"]
    names += [f"{prefix}mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
    if layout.qkv_bias:
        names += [f"{prefix}self_attn.{p}_proj.bias" for p in "qkv"]
    if layout.o_bias:
        names.append(prefix + "self_attn.o_proj.bias")
    if layout.mlp_bias:
        names += [f"{prefix}mlp.{p}_proj.bias" for p in ("gate", "up", "down")]
    if layout.qk_norm:
        names += [prefix + "self_attn.q_norm.weight", prefix + "self_attn.k_norm.weight"]
    return names


def build_layer(tensors: dict[str, torch.Tensor], index: int, layout: FamilyLayout) -> LayerWeights:
    """One layer's weights from the packed checkpoint tensors, consuming its entries of ``tensors``."""
    prefix = f"model.layers.{index}."

    def take(name: str) -> torch.Tensor:
        return tensors.pop(prefix + name)

    def optional(name: str, present: bool) -> torch.Tensor | None:
        return take(name) if present else None

    def linear(module: str, bias: bool) -> HostLinear:
        # Prepacked for the GEMM kernel; the plain weight is dropped then (it would double the memory).
        return HostLinear(take(module + ".weight"), optional(module + ".bias", bias), keep_weight=False)

    return LayerWeights(
        input_norm=take("input_layernorm.weight"),
        qkv=linear("self_attn.qkv_proj", layout.qkv_bias),
        o=linear("self_attn.o_proj", layout.o_bias),
        q_norm=optional("self_attn.q_norm.weight", layout.qk_norm),
        k_norm=optional("self_attn.k_norm.weight", layout.qk_norm),
        post_norm=take("post_attention_layernorm.weight"),
        gate_up=linear("mlp.gate_up_proj", layout.mlp_bias),
        down=linear("mlp.down_proj", layout.mlp_bias),
    )


def load_model_weights(
    folder: Path,
    num_layers: int,
    layout: FamilyLayout,
    tie_word_embeddings: bool,
    dtype: torch.dtype,
    device: torch.device,
    packed_modules_mapping: PackedModulesMapping = PACKED_MODULES,
) -> ModelWeights:
    """Load the first ``num_layers`` decoder layers plus embedding, final norm and LM head; the
    layers' packed modules must be the ones :func:`build_layer` reads (``qkv_proj``, ``gate_up_proj``)."""
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not tie_word_embeddings:
        names.append("lm_head.weight")
    for index in range(num_layers):
        names += layer_tensor_names(index, layout)
    tensors = load_checkpoint(folder, names, packed_modules_mapping, dtype, device)
    layers = [build_layer(tensors, index, layout) for index in range(num_layers)]
    embed = tensors["model.embed_tokens.weight"]
    return ModelWeights(
        embed=embed,
        layers=layers,
        norm=tensors["model.norm.weight"],
        # Tied: the embedding stays needed, so the LM head keeps the same tensor as its plain weight.
        lm_head=HostLinear(embed if tie_word_embeddings else tensors["lm_head.weight"]),
    )
