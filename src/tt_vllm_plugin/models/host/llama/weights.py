"""The Llama family's weights: which checkpoint tensors a model needs, and how they become its layers.

Reading and packing are generic (``host/checkpoint.py``); what is the family's own is the tensor names,
the optional tensors an architecture has (:class:`FamilyLayout`), the packed modules
(:data:`PACKED_MODULES`: q/k/v into one matrix, gate/up into another) and each layer's feed-forward
block (:class:`MlpLoader`: the dense Llama MLP unless a family brings another).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from tt_vllm_plugin.models.host.checkpoint import QKV_GATE_UP, PackedModulesMapping, load_checkpoint
from tt_vllm_plugin.models.host.linear import HostLinear
from tt_vllm_plugin.models.host.mlp import FeedForward, GatedMLP

# Checkpoint module -> (packed module, slice): q/k/v and gate/up (host/checkpoint.py).
PACKED_MODULES: PackedModulesMapping = QKV_GATE_UP


@dataclass(frozen=True)
class FamilyLayout:
    """Which optional tensors an architecture has (what differs inside the Llama family)."""

    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    sinks: bool = False  # attention sinks, one logit per head (GPT-OSS; host/sinks.py)


@dataclass
class LayerWeights:
    input_norm: torch.Tensor
    qkv: HostLinear  # q, k, v projections stacked on the output dim
    o: HostLinear
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    post_norm: torch.Tensor
    mlp: FeedForward  # the dense gated MLP, or a mixture of experts (host/moe.py)
    sinks: torch.Tensor | None = None  # (heads,)


@dataclass
class ModelWeights:
    embed: torch.Tensor
    layers: list[LayerWeights]
    norm: torch.Tensor
    lm_head: HostLinear  # over the embedding itself when tied


class MlpLoader(Protocol):
    """Which checkpoint tensors a layer's feed-forward block reads, and the block built from them; a
    family whose layers are not all dense gated MLPs (Qwen3-MoE) brings its own."""

    def tensor_names(self, index: int) -> list[str]: ...

    def build(self, tensors: dict[str, torch.Tensor], index: int) -> FeedForward:
        """The block of layer ``index``, consuming its (packed) entries of ``tensors``."""
        ...


def take_linear(tensors: dict[str, torch.Tensor], module: str, bias: bool) -> HostLinear:
    """``module``'s weight (and bias) out of ``tensors``, prepacked for the GEMM kernel; the plain
    weight is dropped then (it would double the memory)."""
    return HostLinear(
        tensors.pop(module + ".weight"), tensors.pop(module + ".bias") if bias else None, keep_weight=False
    )


@dataclass(frozen=True)
class DenseMlpLoader:
    """The Llama MLP, ``model.layers.N.mlp.{gate,up,down}_proj``, gate and up packed (PACKED_MODULES)."""

    bias: bool = False

    def tensor_names(self, index: int) -> list[str]:
        prefix = f"model.layers.{index}.mlp."
        names = [f"{prefix}{p}_proj.weight" for p in ("gate", "up", "down")]
        if self.bias:
            names += [f"{prefix}{p}_proj.bias" for p in ("gate", "up", "down")]
        return names

    def build(self, tensors: dict[str, torch.Tensor], index: int) -> FeedForward:
        prefix = f"model.layers.{index}.mlp."
        return GatedMLP(
            take_linear(tensors, prefix + "gate_up_proj", self.bias),
            take_linear(tensors, prefix + "down_proj", self.bias),
        )


def attention_tensor_names(index: int, layout: FamilyLayout) -> list[str]:
    """A layer's tensors besides its feed-forward block: norms, attention projections, q/k norms."""
    prefix = f"model.layers.{index}."
    names = [prefix + "input_layernorm.weight", prefix + "post_attention_layernorm.weight"]
    names += [f"{prefix}self_attn.{p}_proj.weight" for p in "qkvo"]
    if layout.qkv_bias:
        names += [f"{prefix}self_attn.{p}_proj.bias" for p in "qkv"]
    if layout.o_bias:
        names.append(prefix + "self_attn.o_proj.bias")
    if layout.qk_norm:
        names += [prefix + "self_attn.q_norm.weight", prefix + "self_attn.k_norm.weight"]
    if layout.sinks:
        names.append(prefix + "self_attn.sinks")
    return names


def build_layer(
    tensors: dict[str, torch.Tensor], index: int, layout: FamilyLayout, mlp: FeedForward
) -> LayerWeights:
    """One layer's weights from the packed checkpoint tensors, consuming its entries of ``tensors``;
    ``mlp`` is its feed-forward block, already built."""
    prefix = f"model.layers.{index}."

    def take(name: str) -> torch.Tensor:
        return tensors.pop(prefix + name)

    def optional(name: str, present: bool) -> torch.Tensor | None:
        return take(name) if present else None

    return LayerWeights(
        input_norm=take("input_layernorm.weight"),
        qkv=take_linear(tensors, prefix + "self_attn.qkv_proj", layout.qkv_bias),
        o=take_linear(tensors, prefix + "self_attn.o_proj", layout.o_bias),
        q_norm=optional("self_attn.q_norm.weight", layout.qk_norm),
        k_norm=optional("self_attn.k_norm.weight", layout.qk_norm),
        post_norm=take("post_attention_layernorm.weight"),
        mlp=mlp,
        sinks=optional("self_attn.sinks", layout.sinks),
    )


def load_model_weights(
    folder: Path,
    num_layers: int,
    layout: FamilyLayout,
    tie_word_embeddings: bool,
    dtype: torch.dtype,
    device: torch.device,
    packed_modules_mapping: PackedModulesMapping = PACKED_MODULES,
    mlp_loader: MlpLoader | None = None,
) -> ModelWeights:
    """Load the first ``num_layers`` decoder layers plus embedding, final norm and LM head; the
    layers' packed modules must be the ones :func:`build_layer` reads (``qkv_proj``, ``gate_up_proj``).
    Each layer's feed-forward block comes from ``mlp_loader`` (default: the dense Llama MLP)."""
    mlp_loader = mlp_loader or DenseMlpLoader(layout.mlp_bias)
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not tie_word_embeddings:
        names.append("lm_head.weight")
    for index in range(num_layers):
        names += attention_tensor_names(index, layout) + mlp_loader.tensor_names(index)
    tensors = load_checkpoint(folder, names, packed_modules_mapping, dtype, device)
    layers = [
        build_layer(tensors, index, layout, mlp_loader.build(tensors, index)) for index in range(num_layers)
    ]
    embed = tensors["model.embed_tokens.weight"]
    return ModelWeights(
        embed=embed,
        layers=layers,
        norm=tensors["model.norm.weight"],
        # Tied: the embedding stays needed, so the LM head keeps the same tensor as its plain weight.
        lm_head=HostLinear(embed if tie_word_embeddings else tensors["lm_head.weight"]),
    )
