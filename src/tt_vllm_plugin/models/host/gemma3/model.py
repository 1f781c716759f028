"""The host Gemma 3 text model behind the TT model contract (see ``contract.py``).

:class:`HostGemma3Model` is the decoder (``decoder.py``) plus the contract hooks every host family shares
(``host/contract_hooks.py``). What is Gemma's own here: which configs it takes and how its checkpoint is
read (``weights.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from tt_vllm_plugin.device.host import HostDevice
from tt_vllm_plugin.models.host.checkpoint import model_folder
from tt_vllm_plugin.models.host.contract_hooks import HostContractModel
from tt_vllm_plugin.models.host.gemma3.decoder import Gemma3Decoder
from tt_vllm_plugin.models.host.gemma3.weights import Gemma3Weights, load_gemma3_weights
from tt_vllm_plugin.models.host.rope import rope_frequencies
from tt_vllm_plugin.models.host.sliding_window import windows_by_layer_type

logger = logging.getLogger(__name__)

# transformers' ACT2FN name of the tanh-approximated GELU Gemma uses (torch's own, not the Python formula).
GELU_TANH = "gelu_pytorch_tanh"


class HostGemma3Model(HostContractModel, Gemma3Decoder):
    """Gemma 3 text implementing the TT model contract (see ``contract.py``)."""

    @classmethod
    def check_config(cls, config: Any, max_seq_len: int) -> None:
        act = getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", GELU_TANH)
        if act != GELU_TANH:
            raise NotImplementedError(
                f"{cls.__name__}: hidden_activation '{act}' is not implemented (only '{GELU_TANH}')."
            )
        if getattr(config, "use_bidirectional_attention", False):
            raise NotImplementedError(
                f"{cls.__name__}: use_bidirectional_attention (EmbeddingGemma) is not a causal "
                "language model."
            )
        num_layers = int(config.num_hidden_layers)
        windows_by_layer_type(config, num_layers, cls.__name__)
        for kind in sorted(set(config.layer_types[:num_layers])):
            rope_frequencies(config, int(config.head_dim), max_seq_len, layer_type=kind)
        softcap = getattr(config, "attn_logit_softcapping", None)
        if softcap is not None:
            logger.warning(
                "%s: attn_logit_softcapping=%s is not applied, as transformers' Gemma 3 (and vLLM's) does "
                "not apply it to attention.",
                cls.__name__,
                softcap,
            )

    @classmethod
    def load_weights(cls, config: Any, num_layers: int, device: HostDevice) -> Gemma3Weights:
        return load_gemma3_weights(
            model_folder(config),
            num_layers,
            bool(getattr(config, "attention_bias", False)),
            bool(getattr(config, "tie_word_embeddings", True)),
            device.dtype,
            device.torch_device,
        )
