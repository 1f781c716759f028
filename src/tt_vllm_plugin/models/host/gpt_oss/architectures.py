"""GPT-OSS (``GptOssForCausalLM``) on the host device.

transformers' GPT-OSS is the Llama-family decoder (RMSNorm, rotate-half RoPE, GQA attention, residuals)
with, per layer:

- biases on q, k, v and o (``attention_bias``, on in the released configs);
- attention sinks, one learned logit per head (``host/sinks.py``, both attention backends);
- a sliding window on the ``sliding_attention`` layers of ``layer_types`` (alternating in the released
  configs), full attention on the others (``host/sliding_window.py``; the KV cache stays a full cache);
- YaRN RoPE with its attention factor (``host/rope.py``);
- a mixture of experts as every feed-forward block (``weights.py``): router with a bias, top-k logits
  softmaxed, clamped SwiGLU experts with biases.

Its RMSNorm computes ``(weight * x).to(dtype)`` where Llama's computes ``weight * x.to(dtype)``: the
same in float32 (the reference dtype); in bfloat16 the host rounds like Llama's, while transformers keeps
GPT-OSS's norms in float32 (``_keep_in_fp32_modules``).

Unquantised checkpoints only: the released ones store their experts in MXFP4 (``quantization_config``),
which the host does not dequantise; such a config is refused with the reason.
"""

from __future__ import annotations

from typing import Any

from tt_vllm_plugin.models.host.gpt_oss.weights import GptOssMlpLoader
from tt_vllm_plugin.models.host.llama.model import HostLlamaFamilyModel
from tt_vllm_plugin.models.host.llama.weights import FamilyLayout, MlpLoader


class TTGptOssForCausalLM(HostLlamaFamilyModel):
    """GPT-OSS (gpt-oss-20b, gpt-oss-120b) with unquantised weights."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        attention_bias = bool(getattr(config, "attention_bias", True))
        return FamilyLayout(qkv_bias=attention_bias, o_bias=attention_bias, sinks=True)

    @classmethod
    def mlp_loader(cls, config: Any) -> MlpLoader | None:
        return GptOssMlpLoader.from_config(config)

    @classmethod
    def check_config(cls, config: Any, max_seq_len: int) -> None:
        quantization = getattr(config, "quantization_config", None)
        if quantization:
            method = quantization.get("quant_method") if isinstance(quantization, dict) else quantization
            raise NotImplementedError(
                f"{cls.__name__}: quantized checkpoints ({method}) are not implemented for host models; "
                "use a checkpoint with unquantised (bf16/fp32) weights."
            )
        super().check_config(config, max_seq_len)
