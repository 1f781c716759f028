"""transformers' greedy continuations of an image model (Qwen2.5-VL, Gemma 3): the reference the host
models must match token for token."""

from __future__ import annotations

from typing import Any

import torch


def transformers_vlm_greedy(
    model_dir: str,
    prompts: list[tuple[str, list[Any]]],
    max_new_tokens: int,
    architecture: str = "Qwen2_5_VLForConditionalGeneration",
    processor_kwargs: dict[str, Any] | None = None,
) -> list[list[int]]:
    """Greedy token ids after each (text, images) prompt, one prompt at a time (no padding), the checkpoint
    loaded as transformers' ``architecture``; ``processor_kwargs`` go to each processor call (as vLLM's
    ``mm_processor_kwargs`` do)."""
    import transformers

    processor = transformers.AutoProcessor.from_pretrained(model_dir)
    model = (
        getattr(transformers, architecture)
        .from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
        .eval()
    )
    outputs = []
    with torch.inference_mode():
        for text, images in prompts:
            inputs = processor(
                text=[text], images=images or None, return_tensors="pt", **(processor_kwargs or {})
            )
            generated = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0
            )
            outputs.append(generated[0, inputs["input_ids"].shape[1] :].tolist())
    return outputs


def transformers_chat_greedy(
    model_dir: str,
    chats: list[tuple[str, list[Any]]],
    max_new_tokens: int,
    architecture: str = "Qwen2_5_VLForConditionalGeneration",
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, greedy output ids) per (text, images) chat, as vLLM's OpenAI server should answer it:
    the checkpoint's chat template over ``image_chat.chat_messages``, its processor, then transformers."""
    from transformers import AutoProcessor

    from tests.e2e.image_chat import chat_messages

    processor = AutoProcessor.from_pretrained(model_dir)
    prompts = [
        (
            processor.tokenizer.apply_chat_template(
                chat_messages(text, images), tokenize=False, add_generation_prompt=True
            ),
            images,
        )
        for text, images in chats
    ]
    outputs = transformers_vlm_greedy(model_dir, prompts, max_new_tokens, architecture)
    prompt_ids = [processor(text=[text], images=images or None)["input_ids"][0] for text, images in prompts]
    return list(zip(prompt_ids, outputs, strict=True))
