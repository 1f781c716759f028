"""RoPE types of the host models (models/host/rope.py) against transformers' own rotary embeddings: the
cos/sin tables every position gets (inverse frequencies and attention scaling together), per type and, for
Gemma 3, per layer type; and the refusals where transformers' result depends on how a sequence is split
into forward calls."""

from __future__ import annotations

import pytest
import torch
from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config
from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

from tt_vllm_plugin.models.host.ops import fused_kernels_available
from tt_vllm_plugin.models.host.rope import rope_frequencies, rotary_embedding

HEAD_DIM = 64
MAX_POS = 256
_SMALL = dict(hidden_size=256, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=MAX_POS)

ROPES = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "llama3": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "yarn": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    # GPT-OSS's shape: no truncation, explicit betas.
    "yarn-untruncated": {
        "rope_type": "yarn",
        "rope_theta": 150000.0,
        "factor": 32.0,
        "original_max_position_embeddings": 4096,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "truncate": False,
    },
    # DeepSeek's shape: the attention factor from mscale / mscale_all_dim.
    "yarn-mscale": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 40.0,
        "original_max_position_embeddings": 64,
        "mscale": 0.707,
        "mscale_all_dim": 1.0,
    },
    "yarn-attention-factor": {
        "rope_type": "yarn",
        "rope_theta": 1000000.0,
        "factor": 2.0,
        "original_max_position_embeddings": 128,
        "attention_factor": 0.8,
    },
    "dynamic": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 1.7},
    "longrope": {
        "rope_type": "longrope",
        "rope_theta": 10000.0,
        "original_max_position_embeddings": 128,
        "short_factor": [1.0 + 0.05 * i for i in range(HEAD_DIM // 2)],
        "long_factor": [2.0 + 0.5 * i for i in range(HEAD_DIM // 2)],
    },
}


def assert_tables_match(ours, cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor) -> None:
    torch.testing.assert_close(ours.cos[positions], cos, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.sin[positions], sin, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(ROPES))
@pytest.mark.parametrize("config_cls", [LlamaConfig, Qwen2Config])
def test_tables_match_transformers(name, config_cls):
    config = config_cls(**_SMALL, rope_parameters=dict(ROPES[name]))
    reference_cls = LlamaRotaryEmbedding if config_cls is LlamaConfig else Qwen2RotaryEmbedding
    reference = reference_cls(config)
    # Within the length every type is served at (longrope: its original length).
    length = 128 if name == "longrope" else MAX_POS
    positions = torch.arange(length)
    x = torch.zeros(1, length, HEAD_DIM)
    cos, sin = reference(x, positions[None])
    ours = rotary_embedding(config, HEAD_DIM, length, torch.float32, torch.device("cpu"), fused=False)
    assert_tables_match(ours, cos[0], sin[0], positions)
    freqs = rope_frequencies(config, HEAD_DIM, length)
    torch.testing.assert_close(freqs.inv_freq, reference.original_inv_freq, atol=0, rtol=0)
    assert freqs.attention_scaling == pytest.approx(reference.attention_scaling, abs=0)


def test_old_style_rope_scaling_is_read():
    config = LlamaConfig(**_SMALL)
    config.rope_parameters = None
    config.rope_scaling = {"type": "linear", "factor": 2.0}
    config.rope_theta = 5000.0
    inv_freq = rope_frequencies(config, HEAD_DIM, 64).inv_freq
    expected = 1.0 / (5000.0 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM)) / 2.0
    torch.testing.assert_close(inv_freq, expected)


@pytest.mark.parametrize(
    "full_rope",
    [
        None,  # Gemma 3 1B: default RoPE everywhere
        {"rope_type": "linear", "factor": 8.0},  # Gemma 3 4B+: linear scaling on the global layers
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
    ],
    ids=["default", "linear", "yarn"],
)
def test_gemma3_local_and_global_rope_match_transformers(full_rope):
    kwargs = dict(_SMALL, head_dim=HEAD_DIM, num_hidden_layers=6)
    if full_rope is not None:
        kwargs["rope_scaling"] = full_rope  # goes to the full-attention layers, as transformers documents
    config = Gemma3TextConfig(**kwargs)
    reference = Gemma3RotaryEmbedding(config)
    positions = torch.arange(MAX_POS)
    x = torch.zeros(1, MAX_POS, HEAD_DIM)
    for layer_type, theta in (("sliding_attention", 10000.0), ("full_attention", 1000000.0)):
        assert config.rope_parameters[layer_type]["rope_theta"] == theta
        cos, sin = reference(x, positions[None], layer_type)
        ours = rotary_embedding(
            config, HEAD_DIM, MAX_POS, torch.float32, torch.device("cpu"), False, layer_type=layer_type
        )
        assert_tables_match(ours, cos[0], sin[0], positions)


def test_dynamic_beyond_max_position_embeddings_is_refused():
    config = LlamaConfig(**_SMALL, rope_parameters=dict(ROPES["dynamic"]))
    rope_frequencies(config, HEAD_DIM, MAX_POS)  # within: served
    with pytest.raises(NotImplementedError, match=r"'dynamic' beyond max_position_embeddings=256 .* <= 256"):
        rope_frequencies(config, HEAD_DIM, MAX_POS + 1)


def test_longrope_beyond_its_original_length_is_refused():
    config = LlamaConfig(**_SMALL, rope_parameters=dict(ROPES["longrope"]))
    with pytest.raises(NotImplementedError, match="'longrope' beyond original_max_position_embeddings=128"):
        rope_frequencies(config, HEAD_DIM, 129)


def test_unknown_types_and_partial_rotation_are_refused():
    config = LlamaConfig(**_SMALL)
    config.rope_parameters = {"rope_type": "proportional", "rope_theta": 10000.0}
    with pytest.raises(NotImplementedError, match="RoPE type 'proportional' is not implemented"):
        rope_frequencies(config, HEAD_DIM, 64)
    config.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    with pytest.raises(NotImplementedError, match="partial_rotary_factor"):
        rope_frequencies(config, HEAD_DIM, 64)


@pytest.mark.skipif(
    not fused_kernels_available(torch.device("cpu")), reason="vLLM's CPU kernels are not loaded"
)
def test_fused_kernel_applies_the_attention_scaling():
    config = LlamaConfig(**_SMALL, rope_parameters=dict(ROPES["yarn-mscale"]))
    assert rope_frequencies(config, HEAD_DIM, MAX_POS).attention_scaling != 1.0
    fused, plain = (
        rotary_embedding(config, HEAD_DIM, MAX_POS, torch.float32, torch.device("cpu"), fused)
        for fused in (True, False)
    )
    positions = torch.tensor([0, 3, 64, 65, 255])
    q, k = torch.randn(2, 5, 4 * HEAD_DIM, generator=torch.Generator().manual_seed(3))
    expected = plain.at(positions)(q.clone(), k.clone())
    got = fused.at(positions)(q.clone(), k.clone())
    for ours, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(ours, reference, atol=2e-6, rtol=2e-6)


def test_gpt_oss_yarn_matches_transformers():
    """GPT-OSS's own config (YaRN without truncation): its rotary embedding keeps half-width tables."""
    from transformers import GptOssConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssRotaryEmbedding

    config = GptOssConfig(
        hidden_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=HEAD_DIM, num_hidden_layers=2
    )
    assert config.rope_parameters["rope_type"] == "yarn" and config.rope_parameters["truncate"] is False
    positions = torch.arange(0, 8192, 37)
    cos, sin = GptOssRotaryEmbedding(config)(torch.zeros(1, 1, HEAD_DIM), positions[None])
    ours = rotary_embedding(config, HEAD_DIM, 8192, torch.float32, torch.device("cpu"), fused=False)
    half = HEAD_DIM // 2
    torch.testing.assert_close(ours.cos[positions, :half], cos[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.sin[positions, :half], sin[0], atol=1e-6, rtol=1e-6)
