"""Each supported architecture through vllm.LLM with the tt platform, against transformers.

Random-weight models keep this fast; they need no tokenizer (token ids in, token ids out). One engine per
architecture runs a batch of short prompts, then the long-prompt batches of long_prompts.py: prompts
longer than the sliding windows of the models that have them (Gemma 3, Mistral, Qwen2 here), a prefix
reused from the prefix cache, and prefill in chunks of a 32-token step budget. The engine core runs in
this process so the test sees each prefill_forward call (start positions and lengths).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.in_process import in_process_llm
from tests.e2e.long_prompts import FIRST, MAX_BATCHED_TOKENS, PREFIX_TOKENS, SECOND
from tests.e2e.long_prompts import MAX_TOKENS as LONG_MAX_TOKENS
from tests.e2e.random_models import architecture_configs, save_random_model
from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine

PROMPTS = [[5, 17, 301, 44, 9], [100, 200, 300], list(range(3, 70)), [7]]
MAX_TOKENS = 12


@dataclass
class Run:
    expected: list[list[int]]  # transformers: PROMPTS, then FIRST, then SECOND
    short: list[list[int]]
    first: list[list[int]]
    second: list[list[int]]
    second_cached_tokens: list[int]
    prefills: list[list[tuple[int, int]]]  # per prefill_forward call: (start_pos, prompt_len) per row


@pytest.fixture(scope="module", params=sorted(architecture_configs()))
def run(request, tmp_path_factory) -> Run:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    arch = request.param
    folder = str(save_random_model(arch, Path(tmp_path_factory.mktemp(arch))))
    expected = transformers_greedy(folder, PROMPTS, MAX_TOKENS)
    expected += transformers_greedy(folder, FIRST + SECOND, LONG_MAX_TOKENS)

    with in_process_llm(
        model=folder,
        skip_tokenizer_init=True,
        dtype="float32",
        max_model_len=256,
        max_num_seqs=4,
        max_num_batched_tokens=MAX_BATCHED_TOKENS,
        block_size=16,
        enable_prefix_caching=True,
        additional_config={"tt": {"kv_cache_tokens": 4096}},
    ) as llm:
        prefills: list[list[tuple[int, int]]] = []

        def watch_prefills(worker) -> None:
            model = worker.model_runner.tt_model
            forward = model.prefill_forward

            def watched(tokens, page_table, kv_cache, prompt_lens, start_pos=None, *args, **kwargs):
                starts = [0] * len(prompt_lens) if start_pos is None else [int(s) for s in start_pos]
                prefills.append(list(zip(starts, [int(n) for n in prompt_lens], strict=True)))
                return forward(tokens, page_table, kv_cache, prompt_lens, start_pos, *args, **kwargs)

            model.prefill_forward = watched

        llm.collective_rpc(watch_prefills)

        def generate(prompts: list[list[int]], max_tokens: int):
            params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True, detokenize=False)
            return llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)

        short = generate(PROMPTS, MAX_TOKENS)
        first = generate(FIRST, LONG_MAX_TOKENS)
        second = generate(SECOND, LONG_MAX_TOKENS)
        return Run(
            expected=expected,
            short=[list(o.outputs[0].token_ids) for o in short],
            first=[list(o.outputs[0].token_ids) for o in first],
            second=[list(o.outputs[0].token_ids) for o in second],
            second_cached_tokens=[o.num_cached_tokens or 0 for o in second],
            prefills=prefills,
        )


def test_greedy_matches_transformers(run):
    assert run.short == run.expected[: len(PROMPTS)]


def test_long_prompts_batched_and_chunked_match_transformers(run):
    assert run.first == run.expected[len(PROMPTS) : len(PROMPTS) + len(FIRST)]
    rows = [row for call in run.prefills for row in call]
    assert max(end - start for start, end in rows) <= MAX_BATCHED_TOKENS
    # The 100-token prompt was resumed mid-prompt: chunked prefill, not one pass.
    assert any(0 < start and end <= len(FIRST[1]) for start, end in rows if end > MAX_BATCHED_TOKENS)


def test_prefix_cached_request_matches_transformers(run):
    assert run.second == run.expected[len(PROMPTS) + len(FIRST) :]
    assert run.second_cached_tokens[0] >= PREFIX_TOKENS  # the shared prefix came from the cache
    assert run.second_cached_tokens[1] == 0
    # Only the tail after the cached prefix was computed.
    resumed = [start for call in run.prefills for start, end in call if end == len(SECOND[0])]
    assert resumed and resumed[0] >= PREFIX_TOKENS
