"""The host Llama-family model behind the TT model contract (see ``contract.py``).

:class:`HostLlamaFamilyModel` is the decoder (``decoder.py``) plus loading itself onto the host device;
the contract hooks every host family shares (KV cache, ``prefill_forward`` / ``decode_forward`` over the
paged cache, sampling on its "device", the async decode read) are ``host/paged_model.py``'s. The
per-architecture classes (``architectures.py``) say which configs and optional tensors each member of
the family has.
"""

from __future__ import annotations

from typing import Any

from tt_vllm_plugin.device.host import HostDevice
from tt_vllm_plugin.models.host.checkpoint import PackedModulesMapping, model_folder
from tt_vllm_plugin.models.host.llama.decoder import LlamaFamilyDecoder
from tt_vllm_plugin.models.host.llama.weights import (
    PACKED_MODULES,
    FamilyLayout,
    MlpLoader,
    load_model_weights,
)
from tt_vllm_plugin.models.host.paged_model import HostPagedModel


class HostLlamaFamilyModel(LlamaFamilyDecoder, HostPagedModel):
    """The shared Llama-family decoder implementing the TT model contract (``host/paged_model.py``)."""

    # Checkpoint modules the loader packs into the decoder's qkv_proj and gate_up_proj (checkpoint.py).
    packed_modules_mapping: PackedModulesMapping = PACKED_MODULES

    # ---- construction

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
        """Refuse configs whose math this implementation does not do, instead of computing wrongly."""
        act = getattr(config, "hidden_act", "silu")
        if act != "silu":
            raise NotImplementedError(f"{cls.__name__}: hidden_act '{act}' is not implemented (only 'silu').")
        layer_types = getattr(config, "layer_types", None) or []
        other = sorted({kind for kind in layer_types if kind != "full_attention"})
        if other or getattr(config, "use_sliding_window", False):
            kinds = ", ".join(other) or "use_sliding_window"
            raise NotImplementedError(
                f"{cls.__name__}: sliding-window attention layers ({kinds}) are not implemented "
                "for host models."
            )

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config: Any,
        mesh_device: Any,
        max_batch_size: int,
        max_seq_len: int,
        n_layers: int | None = None,
        tt_data_parallel: int = 1,
        optimizations: str = "performance",
    ) -> HostLlamaFamilyModel:
        """Load the checkpoint ``hf_config`` came from onto the host device.

        ``mesh_device`` is a :class:`~tt_vllm_plugin.device.host.HostDevice`. ``max_batch_size``,
        ``tt_data_parallel`` and ``optimizations`` are accepted for the contract; the host computes all
        rows at once, so they change nothing observable.
        """
        if not isinstance(mesh_device, HostDevice):
            raise TypeError(f"{cls.__name__} runs on a HostDevice, got {type(mesh_device).__name__}.")
        cls.check_config(hf_config, max_seq_len)
        num_layers = int(hf_config.num_hidden_layers)
        if n_layers is not None:
            num_layers = min(num_layers, int(n_layers))
        weights = load_model_weights(
            model_folder(hf_config),
            num_layers,
            cls.family_layout(hf_config),
            bool(getattr(hf_config, "tie_word_embeddings", False)),
            mesh_device.dtype,
            mesh_device.torch_device,
            cls.packed_modules_mapping,
            cls.mlp_loader(hf_config),
        )
        return cls(hf_config, weights, mesh_device.torch_device, mesh_device.dtype, max_seq_len)
