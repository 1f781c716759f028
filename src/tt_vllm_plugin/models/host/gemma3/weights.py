"""Gemma 3's weights: which checkpoint tensors the text model needs, and how they become its layers.

Reading and packing are generic (``host/checkpoint.py``: q/k/v and gate/up packed as for Llama). What is
Gemma's own: four norms per layer, per-head q/k norms, and RMSNorm weights stored as offsets from one
(transformers' ``Gemma3RMSNorm`` multiplies by ``1 + w``). They are turned into ``1 + w`` once here (in
float32, then cast to the model dtype), so the shared RMSNorm ops apply them as plain weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tt_vllm_plugin.models.host.checkpoint import QKV_GATE_UP, load_checkpoint
from tt_vllm_plugin.models.host.linear import HostLinear

_NORMS = (
    "input_layernorm",
    "post_attention_layernorm",
    "pre_feedforward_layernorm",
    "post_feedforward_layernorm",
)


@dataclass
class Gemma3LayerWeights:
    input_norm: torch.Tensor  # every norm weight here is already 1 + w
    post_attention_norm: torch.Tensor
    pre_feedforward_norm: torch.Tensor
    post_feedforward_norm: torch.Tensor
    qkv: HostLinear  # q, k, v projections stacked on the output dim
    o: HostLinear
    q_norm: torch.Tensor
    k_norm: torch.Tensor
    gate_up: HostLinear  # gate and up projections stacked on the output dim
    down: HostLinear
    sinks: None = None  # Gemma 3 has no attention sinks (read by host/decoder.py's attention block)


@dataclass
class Gemma3Weights:
    embed: torch.Tensor
    layers: list[Gemma3LayerWeights]
    norm: torch.Tensor
    lm_head: HostLinear  # over the embedding itself when tied (Gemma's default)


def one_plus(weight: torch.Tensor) -> torch.Tensor:
    """``1 + w`` of a Gemma RMSNorm weight, computed in float32 as transformers does."""
    return (1.0 + weight.float()).to(weight.dtype)


def layer_tensor_names(index: int, attention_bias: bool, model_prefix: str = "model.") -> list[str]:
    prefix = f"{model_prefix}layers.{index}."
    names = [f"{prefix}{norm}.weight" for norm in _NORMS]
    names += [f"{prefix}self_attn.{p}_proj.weight" for p in "qkvo"]
    names += [prefix + "self_attn.q_norm.weight", prefix + "self_attn.k_norm.weight"]
    names += [f"{prefix}mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
    if attention_bias:
        names += [f"{prefix}self_attn.{p}_proj.bias" for p in "qkvo"]
    return names


def build_layer(
    tensors: dict[str, torch.Tensor], index: int, attention_bias: bool, model_prefix: str = "model."
) -> Gemma3LayerWeights:
    """One layer's weights from the packed checkpoint tensors, consuming its entries of ``tensors``."""
    prefix = f"{model_prefix}layers.{index}."

    def take(name: str) -> torch.Tensor:
        return tensors.pop(prefix + name)

    def linear(module: str, bias: bool) -> HostLinear:
        # Prepacked for the GEMM kernel; the plain weight is dropped then (it would double the memory).
        return HostLinear(
            take(module + ".weight"), take(module + ".bias") if bias else None, keep_weight=False
        )

    return Gemma3LayerWeights(
        input_norm=one_plus(take("input_layernorm.weight")),
        post_attention_norm=one_plus(take("post_attention_layernorm.weight")),
        pre_feedforward_norm=one_plus(take("pre_feedforward_layernorm.weight")),
        post_feedforward_norm=one_plus(take("post_feedforward_layernorm.weight")),
        qkv=linear("self_attn.qkv_proj", attention_bias),
        o=linear("self_attn.o_proj", attention_bias),
        q_norm=one_plus(take("self_attn.q_norm.weight")),
        k_norm=one_plus(take("self_attn.k_norm.weight")),
        gate_up=linear("mlp.gate_up_proj", False),
        down=linear("mlp.down_proj", False),
    )


def load_gemma3_weights(
    folder: Path,
    num_layers: int,
    attention_bias: bool,
    tie_word_embeddings: bool,
    dtype: torch.dtype,
    device: torch.device,
    model_prefix: str = "model.",
    lm_head: str = "lm_head.weight",
) -> Gemma3Weights:
    """The first ``num_layers`` decoder layers plus embedding, final norm and LM head; the text model's
    tensors are named ``<model_prefix>...`` (the multimodal checkpoints nest it, ``gemma3_mm``)."""
    names = [f"{model_prefix}embed_tokens.weight", f"{model_prefix}norm.weight"]
    if not tie_word_embeddings:
        names.append(lm_head)
    for index in range(num_layers):
        names += layer_tensor_names(index, attention_bias, model_prefix)
    tensors = load_checkpoint(folder, names, QKV_GATE_UP, dtype, device)
    layers = [build_layer(tensors, index, attention_bias, model_prefix) for index in range(num_layers)]
    embed = tensors[f"{model_prefix}embed_tokens.weight"]
    return Gemma3Weights(
        embed=embed,
        layers=layers,
        norm=one_plus(tensors[f"{model_prefix}norm.weight"]),
        # Tied: the embedding (unscaled) is the LM head's weight, as in transformers.
        lm_head=HostLinear(embed if tie_word_embeddings else tensors[lm_head]),
    )
