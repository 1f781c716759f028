"""A step where prompts join running requests is one model call (contract.PREFILL_TAKES_DECODE_ROWS).

With at most 3 sequences and 8 prompts of uneven lengths, new prompts keep arriving while others decode.
Host models declare that their prefill computes a one-token row as a decode would, so the runner folds
such a step's decode rows into its prefill call, as vLLM's own runners run one forward over a step's
tokens. Shown through a real engine (in this process, so the test sees every model call): the folded
steps happen, no step calls the model twice, and every request's greedy tokens are transformers' own.
"""

from __future__ import annotations

import pytest

from tests.e2e.in_process import in_process_llm
from tests.e2e.reference import transformers_greedy

pytestmark = pytest.mark.engine

PROMPTS = [f"Write the numbers from {n} to {n + 30}, one per line:" for n in range(8)]
MAX_TOKENS = [9, 3, 14, 6, 11, 4, 8, 12]  # uneven, so prompts join while others are mid-decode


def _generate(model: str, fold: bool) -> tuple[list[list[str]], list[list[int]], list[list[int]]]:
    """Each step's model calls ("prefill:<rows>:<one-token rows>" or "decode:<rows>"), the prompts'
    token ids, and the generated tokens, with the runner folding decode rows or not."""
    from vllm import SamplingParams

    with in_process_llm(
        model=model,
        dtype="float32",
        max_model_len=256,
        max_num_seqs=3,
        enable_prefix_caching=False,
        seed=0,
        additional_config={"tt": {"kv_cache_tokens": 2048}},
    ) as llm:
        steps: list[list[str]] = []

        def watch(worker) -> None:
            runner, model = worker.model_runner, worker.model_runner.tt_model
            assert runner.fold_decode, "host models declare prefill_takes_decode_rows"
            runner.fold_decode = fold
            execute, prefill, decode = runner.execute_model, model.prefill_forward, model.decode_forward

            def watched_execute(*args, **kwargs):
                steps.append([])
                return execute(*args, **kwargs)

            def watched_prefill(tokens, page_table, kv_cache, prompt_lens, *args, start_pos, **kwargs):
                one_token = int(sum(1 for n, s in zip(prompt_lens, start_pos, strict=True) if n - s == 1))
                steps[-1].append(f"prefill:{len(prompt_lens)}:{one_token}")
                return prefill(
                    tokens, page_table, kv_cache, prompt_lens, *args, start_pos=start_pos, **kwargs
                )

            def watched_decode(tokens, start_pos, *args, **kwargs):
                steps[-1].append(f"decode:{int((start_pos >= 0).sum())}")
                return decode(tokens, start_pos, *args, **kwargs)

            runner.execute_model = watched_execute
            model.prefill_forward, model.decode_forward = watched_prefill, watched_decode

        llm.collective_rpc(watch)
        params = [SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True) for n in MAX_TOKENS]
        outputs = llm.generate(PROMPTS, params, use_tqdm=False)
        prompt_ids = [list(o.prompt_token_ids) for o in outputs]
        return steps, prompt_ids, [list(o.outputs[0].token_ids) for o in outputs]


@pytest.fixture(scope="module")
def folded(default_model_path):
    return _generate(default_model_path, fold=True)


def test_a_step_with_prompts_and_decodes_is_one_prefill_call(folded):
    steps, _, _ = folded
    calls = [call for step in steps for call in step]
    assert all(len(step) <= 1 for step in steps), [step for step in steps if len(step) > 1]
    folded_calls = [call for call in calls if call.startswith("prefill") and not call.endswith(":0")]
    assert folded_calls, f"no prompt joined running requests: {calls}"
    assert any(call.startswith("decode") for call in calls)  # steps without prompts still decode


def test_folded_steps_give_transformers_tokens(folded, default_model_path):
    _, prompt_ids, tokens = folded
    assert [len(t) for t in tokens] == MAX_TOKENS
    expected = transformers_greedy(default_model_path, prompt_ids, max(MAX_TOKENS))
    for prompt, want, got in zip(PROMPTS, expected, tokens, strict=True):
        assert got == want[: len(got)], prompt


def test_without_folding_the_same_steps_call_prefill_then_decode(folded, default_model_path):
    steps, _, tokens = _generate(default_model_path, fold=False)
    assert any(len(step) == 2 for step in steps)  # a prefill and a decode in one step
    assert all(not call.startswith("prefill") or call.endswith(":0") for step in steps for call in step)
    assert tokens == folded[2]
