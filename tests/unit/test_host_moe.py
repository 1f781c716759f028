"""The host mixture-of-experts layer (models/host/moe.py) against transformers' own MoE modules, with
transformers' eager experts (its plain definition; grouped_mm sums in another order), for both expert
implementations: plain torch and vLLM's CPU fused-MoE kernel (models/host/fused_moe.py)."""

from __future__ import annotations

import pytest
import torch

from tt_vllm_plugin import envs
from tt_vllm_plugin.models.host.fused_moe import FusedExperts, fused_moe_applies
from tt_vllm_plugin.models.host.gpt_oss.weights import GptOssMlpLoader, gpt_oss_experts
from tt_vllm_plugin.models.host.linear import HostLinear
from tt_vllm_plugin.models.host.moe import (
    ClampedSwiGLU,
    Routing,
    SparseMoE,
    TorchExperts,
    stacked_experts,
)
from tt_vllm_plugin.models.host.ops import HostOps, fused_kernels_available
from tt_vllm_plugin.models.host.qwen3_moe.weights import Qwen3MoeMlpLoader

HIDDEN, EXPERTS, INTER = 64, 8, 32
CPU = torch.device("cpu")
OPS = [HostOps(False)] + ([HostOps(True)] if fused_kernels_available(CPU) else [])
KERNEL = fused_moe_applies(CPU, torch.float32, HIDDEN, INTER, None)
# Which experts implementation stacked_experts builds: the kernel where it applies, or plain torch.
IMPLEMENTATIONS = [
    "torch",
    pytest.param("kernel", marks=pytest.mark.skipif(not KERNEL, reason="no vLLM CPU fused-MoE kernel")),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request, monkeypatch) -> str:
    if request.param == "torch":
        monkeypatch.setenv(envs.TT_VLLM_HOST_MOE.name, "torch")
    return request.param


def expected_type(implementation: str) -> type:
    return FusedExperts if implementation == "kernel" else TorchExperts


def qwen3_moe_block(norm_topk_prob: bool, top_k: int = 2, seed: int = 0):
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    config = Qwen3MoeConfig(
        hidden_size=HIDDEN,
        moe_intermediate_size=INTER,
        num_experts=EXPERTS,
        num_experts_per_tok=top_k,
        norm_topk_prob=norm_topk_prob,
    )
    config._experts_implementation = "eager"
    torch.manual_seed(seed)
    block = Qwen3MoeSparseMoeBlock(config).eval()
    with torch.no_grad():
        for param in block.parameters():
            param.normal_(0.0, 0.1)
    return config, block


def ours_from(block, config) -> SparseMoE:
    routing = Routing(config.num_experts_per_tok, softmax_first=True, renormalize=config.norm_topk_prob)
    experts = stacked_experts(block.experts.gate_up_proj.detach(), block.experts.down_proj.detach())
    return SparseMoE(HostLinear(block.gate.weight.detach()), experts, routing)


def hidden_states(tokens: int, seed: int) -> torch.Tensor:
    return torch.randn(tokens, HIDDEN, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("norm_topk_prob", [True, False])
@pytest.mark.parametrize("ops", OPS, ids=lambda ops: "fused-ops" if ops.fused else "torch-ops")
def test_qwen3_moe_block_matches_transformers(norm_topk_prob, ops, implementation):
    config, block = qwen3_moe_block(norm_topk_prob)
    moe = ours_from(block, config)
    assert type(moe.experts) is expected_type(implementation)
    for tokens in (1, 5, 97):  # a decode step, a short and a long prefill
        x = hidden_states(tokens, seed=tokens)
        with torch.inference_mode():
            expected = block(x[None])[0]
            _, ref_weights, ref_ids = block.gate(x)
            weights, ids = moe.route(x)
            actual = moe(x, ops)
        assert torch.equal(ids, ref_ids)
        torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_every_expert_and_more_than_two_per_token(implementation):
    config, block = qwen3_moe_block(norm_topk_prob=True, top_k=EXPERTS, seed=1)
    moe = ours_from(block, config)
    assert type(moe.experts) is expected_type(implementation)
    x = hidden_states(9, seed=2)
    with torch.inference_mode():
        torch.testing.assert_close(moe(x, HostOps(False)), block(x[None])[0], atol=1e-5, rtol=1e-5)


def test_renormalise_needs_softmax_first():
    with pytest.raises(ValueError, match="softmax-first"):
        Routing(2, softmax_first=False, renormalize=True)


@pytest.mark.parametrize(
    ("layers", "step", "mlp_only"), [(4, 1, []), (6, 2, []), (6, 3, [2]), (5, 1, [0, 3]), (3, 1, [0, 1, 2])]
)
def test_sparse_layers_are_the_ones_transformers_builds(layers, step, mlp_only):
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeDecoderLayer, Qwen3MoeSparseMoeBlock

    config = Qwen3MoeConfig(
        hidden_size=16,
        intermediate_size=16,
        moe_intermediate_size=8,
        num_experts=4,
        num_experts_per_tok=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        num_hidden_layers=layers,
        decoder_sparse_step=step,
        mlp_only_layers=mlp_only,
    )
    loader = Qwen3MoeMlpLoader.from_config(config)
    expected = [
        isinstance(Qwen3MoeDecoderLayer(config, i).mlp, Qwen3MoeSparseMoeBlock) for i in range(layers)
    ]
    assert [loader.is_sparse(i) for i in range(layers)] == expected


def gpt_oss_mlp(alpha: float, limit: float, seed: int = 0):
    from transformers import GptOssConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP

    config = GptOssConfig(
        hidden_size=HIDDEN,
        intermediate_size=INTER,
        num_local_experts=EXPERTS,
        num_experts_per_tok=2,
        swiglu_alpha=alpha,
        swiglu_limit=limit,
    )
    config._experts_implementation = "eager"
    torch.manual_seed(seed)
    mlp = GptOssMLP(config).eval()
    with torch.no_grad():
        for param in mlp.parameters():  # large enough that the clamp bites on both sides
            param.normal_(0.0, 0.4)
    return config, mlp


# The kernel has GPT-OSS's released alpha/limit built in; other values stay on torch whatever is asked.
@pytest.mark.parametrize(("alpha", "limit", "kernel_applies"), [(1.702, 7.0, True), (1.2, 0.8, False)])
def test_gpt_oss_mlp_matches_transformers(alpha, limit, kernel_applies, implementation):
    config, mlp = gpt_oss_mlp(alpha, limit)
    experts = mlp.experts
    loader = GptOssMlpLoader.from_config(config)
    moe = SparseMoE(
        HostLinear(mlp.router.weight.detach(), mlp.router.bias.detach()),
        gpt_oss_experts(
            experts.gate_up_proj.detach(),
            experts.gate_up_proj_bias.detach(),
            experts.down_proj.detach(),
            experts.down_proj_bias.detach(),
            loader.activation,
        ),
        loader.routing,
    )
    assert type(moe.experts) is expected_type(implementation if kernel_applies else "torch")
    for tokens in (1, 6, 83):
        x = hidden_states(tokens, seed=tokens)
        with torch.inference_mode():
            expected, _ = mlp(x[None])
            _, ref_weights, ref_ids = mlp.router(x)
            weights, ids = moe.route(x)
            gate_up = x @ experts.gate_up_proj[0] + experts.gate_up_proj_bias[0]
            actual = moe(x, HostOps(False))
        assert torch.equal(ids, ref_ids)
        torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-6)
        # These weights make outputs of order 10: float32 rounding of sums taken in another order (the
        # checkpoint's x @ W against F.linear of the transposed matrix) is relative to that.
        scale = float(expected.abs().max())
        torch.testing.assert_close(actual, expected[0], atol=2e-6 * scale, rtol=1e-5)
        if tokens == 83:  # the clamp is exercised: gates above the limit, ups beyond it on both sides
            assert (gate_up[:, ::2] > limit).any() and (gate_up[:, 1::2].abs() > limit).any()


def test_gpt_oss_loader_reads_the_config_and_transformers_defaults():
    from types import SimpleNamespace

    loader = GptOssMlpLoader.from_config(SimpleNamespace(num_experts_per_tok=4))
    assert loader.activation == ClampedSwiGLU(alpha=1.702, limit=7.0)
    assert loader.routing == Routing(4, softmax_first=False)
    assert "model.layers.3.mlp.experts.gate_up_proj_bias" in loader.tensor_names(3)


@pytest.mark.skipif(
    not fused_moe_applies(CPU, torch.bfloat16, HIDDEN, INTER, None), reason="no vLLM CPU fused-MoE kernel"
)
@pytest.mark.parametrize("clamped", [None, ClampedSwiGLU(1.702, 7.0)], ids=["swiglu", "clamped"])
def test_kernel_in_bfloat16_agrees_with_the_torch_experts(clamped, monkeypatch):
    gen = torch.Generator().manual_seed(4)
    gate_up, down = (
        torch.randn(EXPERTS, 2 * INTER, HIDDEN, generator=gen),
        torch.randn(EXPERTS, HIDDEN, INTER, generator=gen),
    )
    biases = (torch.randn(EXPERTS, 2 * INTER, generator=gen), torch.randn(EXPERTS, HIDDEN, generator=gen))
    tensors = [t.to(torch.bfloat16) * 0.3 for t in (gate_up, down, *biases)]
    x = hidden_states(40, seed=5).to(torch.bfloat16)
    weights = torch.rand(40, 2, generator=gen).to(torch.bfloat16)
    ids = torch.stack([torch.randperm(EXPERTS, generator=gen)[:2] for _ in range(40)])
    kernel = stacked_experts(*tensors, clamped=clamped)
    monkeypatch.setenv(envs.TT_VLLM_HOST_MOE.name, "torch")
    plain = stacked_experts(*tensors, clamped=clamped)
    assert type(kernel) is FusedExperts and type(plain) is TorchExperts
    expected = plain(x, weights, ids, HostOps(False)).float()
    scale = float(expected.abs().max())
    torch.testing.assert_close(
        kernel(x, weights, ids, HostOps(False)).float(), expected, atol=2e-2 * scale, rtol=2e-2
    )
