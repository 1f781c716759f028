"""transformers' greedy Qwen2.5-VL continuations: the reference the host model must match token for token."""

from __future__ import annotations

from typing import Any

import torch


def transformers_vlm_greedy(
    model_dir: str, prompts: list[tuple[str, list[Any]]], max_new_tokens: int
) -> list[list[int]]:
    """Greedy token ids after each (text, images) prompt, one prompt at a time (no padding)."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    outputs = []
    with torch.inference_mode():
        for text, images in prompts:
            inputs = processor(text=[text], images=images or None, return_tensors="pt")
            generated = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0
            )
            outputs.append(generated[0, inputs["input_ids"].shape[1] :].tolist())
    return outputs
