"""transformers as the reference for correctness: greedy continuations, one prompt at a time.

Eager attention and eager experts: transformers 5 otherwise picks SDPA and, for mixtures of experts,
``grouped_mm``, which sum in other orders; the eager code is the plain definition our host models follow.
"""

from __future__ import annotations

import torch


def transformers_greedy(model_dir: str, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Greedy token ids transformers generates after each prompt (no padding: one call per prompt)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager"
    )
    model.eval()
    outputs = []
    with torch.inference_mode():
        for ids in prompts:
            input_ids = torch.tensor([ids])
            generated = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=None,  # compare full lengths; vLLM runs with ignore_eos
                pad_token_id=0,
            )
            outputs.append(generated[0, len(ids) :].tolist())
    return outputs
