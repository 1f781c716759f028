"""The host Llama-family model behind the TT model contract (see ``contract.py``).

:class:`HostLlamaFamilyModel` is the decoder (``decoder.py``) plus the contract hooks every host family
shares (``host/contract_hooks.py``: loading, KV cache, prefill, decode, sampling on the device, the async
decode read). What is the family's own here: which configs it takes, which optional tensors and sliding
windows an architecture has (the per-architecture classes in ``architectures.py`` refine them) and how
its checkpoint is read (``weights.py``).
"""

from __future__ import annotations

from typing import Any

from tt_vllm_plugin.device.host import HostDevice
from tt_vllm_plugin.models.host.checkpoint import PackedModulesMapping, model_folder
from tt_vllm_plugin.models.host.contract_hooks import HostContractModel
from tt_vllm_plugin.models.host.llama.decoder import LlamaFamilyDecoder
from tt_vllm_plugin.models.host.llama.weights import (
    PACKED_MODULES,
    FamilyLayout,
    MlpLoader,
    ModelWeights,
    load_model_weights,
)
from tt_vllm_plugin.models.host.rope import rope_frequencies


class HostLlamaFamilyModel(HostContractModel, LlamaFamilyDecoder):
    """The shared Llama-family decoder implementing the TT model contract (see ``contract.py``)."""

    # Checkpoint modules the loader packs into the decoder's qkv_proj and gate_up_proj (checkpoint.py).
    packed_modules_mapping: PackedModulesMapping = PACKED_MODULES

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        """Optional tensors of this architecture; Llama's follow its config flags."""
        attention_bias = bool(getattr(config, "attention_bias", False))
        return FamilyLayout(
            qkv_bias=attention_bias, o_bias=attention_bias, mlp_bias=bool(getattr(config, "mlp_bias", False))
        )

    @classmethod
    def mlp_loader(cls, config: Any) -> MlpLoader | None:
        """Each layer's feed-forward block; None: the dense Llama MLP (``FamilyLayout.mlp_bias``)."""
        return None

    @classmethod
    def check_config(cls, config: Any, max_seq_len: int) -> None:
        act = getattr(config, "hidden_act", "silu")
        if act != "silu":
            raise NotImplementedError(f"{cls.__name__}: hidden_act '{act}' is not implemented (only 'silu').")
        cls.layer_windows(config, int(config.num_hidden_layers))
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
        rope_frequencies(config, head_dim, max_seq_len)  # refuses RoPE it cannot serve exactly

    @classmethod
    def load_weights(cls, config: Any, num_layers: int, device: HostDevice) -> ModelWeights:
        return load_model_weights(
            model_folder(config),
            num_layers,
            cls.family_layout(config),
            bool(getattr(config, "tie_word_embeddings", False)),
            device.dtype,
            device.torch_device,
            cls.packed_modules_mapping,
            cls.mlp_loader(config),
        )
