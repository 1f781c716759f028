"""A tiny random-weight Qwen2.5-VL checkpoint, built offline: config, weights, tokenizer and processor.

Text: hidden 128, 2 layers, head_dim 32 (vLLM's CPU attention needs at least 32), M-RoPE sections
[4, 6, 6]. Vision: depth 2 with windowed attention in block 0 and full attention in block 1. Image
preprocessing is Qwen's own (transformers' ``Qwen2_5_VLProcessor``): 14-pixel patches merged 2 x 2, so a
112 x 84 image becomes 8 x 6 patches and 12 image tokens. The tokenizer is byte level (256 byte tokens)
with Qwen's special tokens after them and Qwen's chat template, so vLLM's OpenAI server and transformers
build the same prompt from the same chat messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# Qwen's special tokens, in Qwen's order, after the 256 byte tokens.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
TOKEN_ID = {token: 256 + i for i, token in enumerate(SPECIAL_TOKENS)}
VOCAB_SIZE = 320  # a little room past the special tokens, as real checkpoints have

IMAGE_SIZE = (112, 84)  # width, height: 8 x 6 patches of 14 pixels, 12 tokens after the 2 x 2 merge
IMAGE_TOKENS = 12

# Qwen2.5-VL's chat template, reduced to what the tests send (no tools, no video).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are helpful.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def vlm_config():
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
            "bos_token_id": TOKEN_ID["<|endoftext|>"],
            "eos_token_id": TOKEN_ID["<|im_end|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": 128,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,  # 2 x 2 merged patches per window: a 112 x 84 image spans several
            "fullatt_block_indexes": [1],
        },
        image_token_id=TOKEN_ID["<|image_pad|>"],
        video_token_id=TOKEN_ID["<|video_pad|>"],
        vision_start_token_id=TOKEN_ID["<|vision_start|>"],
        vision_end_token_id=TOKEN_ID["<|vision_end|>"],
        tie_word_embeddings=False,
        architectures=["Qwen2_5_VLForConditionalGeneration"],
    )


def _save_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tokenizer = Tokenizer(models.BPE(vocab=byte_vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)


def _save_processor(folder: Path) -> None:
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    # At most 64 image tokens: keeps the encoder budget within a small step budget.
    sizes = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 64}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=sizes),
        video_processor=Qwen2VLVideoProcessor(size=sizes),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(folder)


def save_tiny_qwen2_5_vl(folder: Path, seed: int = 0, processor: bool = True) -> Path:
    """Write the checkpoint folder (config, safetensors, tokenizer and, with ``processor``, Qwen's
    processor, which needs torchvision) and return it."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(vlm_config()).to(torch.float32)
    # Random init leaves weights tiny; scale them so tokens' logits differ clearly and a wrong
    # implementation cannot agree with transformers by accident.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.08)
            elif name.endswith("bias"):
                param.normal_(0.0, 0.1)
    model.save_pretrained(folder)
    _save_tokenizer(folder)
    if processor:
        _save_processor(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


def random_image(seed: int = 0, size: tuple[int, int] = IMAGE_SIZE):
    """A random RGB picture (PIL), ``size`` = (width, height)."""
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy(), mode="RGB")
