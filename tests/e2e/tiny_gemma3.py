"""A tiny random-weight Gemma 3 with images (``Gemma3ForConditionalGeneration``), built offline: config,
weights, tokenizer and transformers' Gemma 3 processor.

Text: hidden 64, 3 layers (sliding, full, sliding; window 24, shorter than the prompts), head_dim 32
(vLLM's CPU attention needs at least 32). Vision: SigLIP at 28 x 28 pixels in 7-pixel patches, pooled to
4 image tokens per image (or per pan-and-scan crop). The tokenizer is a character-level BPE (printable
ASCII and newline) with Gemma's special tokens and Gemma's newline tokens ("\\n" up to "\\n\\n\\n\\n",
which vLLM's Gemma 3 processor merges around an image as Gemma's tokenizer does), and a reduced Gemma chat
template, so vLLM's OpenAI server and transformers build the same prompt from the same chat messages.
The processor keeps Gemma 3's released defaults (no pan-and-scan); a test turns pan-and-scan on as a user
does, with ``mm_processor_kwargs`` on both sides.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

SPECIAL_TOKENS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]
CHARACTERS = sorted(set(string.printable) - set("\t\r\x0b\x0c"))  # "\n" is among them
NEWLINES = ["\n\n", "\n\n\n", "\n\n\n\n"]
TOKEN_ID = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
VOCAB = [*SPECIAL_TOKENS, *CHARACTERS, *NEWLINES]
VOCAB_SIZE = 128  # a little room past the tokens, as real checkpoints have
IMAGE_TOKENS = 4  # per image, and per pan-and-scan crop

# Pan-and-scan as a user turns it on for small pictures (Gemma 3's defaults want 256-pixel crops).
PAN_AND_SCAN = {
    "do_pan_and_scan": True,
    "pan_and_scan_min_crop_size": 10,
    "pan_and_scan_max_num_crops": 3,
    "pan_and_scan_min_ratio_to_activate": 1.2,
}

# Gemma 3's chat template, reduced to what the tests send (user turns of text and images).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<start_of_image>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def gemma3_config():
    from transformers import Gemma3Config

    return Gemma3Config(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "sliding_window": 24,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
            "query_pre_attn_scalar": 24,
            "max_position_embeddings": 1024,
            "rope_parameters": {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
            },
            "bos_token_id": TOKEN_ID["<bos>"],
            "eos_token_id": TOKEN_ID["<end_of_turn>"],
            "pad_token_id": TOKEN_ID["<pad>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 7,
        },
        mm_tokens_per_image=IMAGE_TOKENS,
        boi_token_index=TOKEN_ID["<start_of_image>"],
        eoi_token_index=TOKEN_ID["<end_of_image>"],
        image_token_index=TOKEN_ID["<image_soft_token>"],
        architectures=["Gemma3ForConditionalGeneration"],
    )


def _save_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    merges = [("\n", "\n"), ("\n\n", "\n"), ("\n\n", "\n\n")]
    vocab = {token: i for i, token in enumerate(VOCAB)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)


def _save_processor(folder: Path) -> None:
    from transformers import AutoTokenizer, Gemma3ImageProcessor, Gemma3Processor

    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": 28, "width": 28}),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        chat_template=CHAT_TEMPLATE,
        image_seq_length=IMAGE_TOKENS,
    )
    processor.save_pretrained(folder)


def save_tiny_gemma3(folder: Path, seed: int = 0) -> Path:
    """Write the checkpoint folder (config, safetensors, tokenizer, processor) and return it."""
    from transformers import Gemma3ForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(gemma3_config()).to(torch.float32)
    # Random init leaves weights tiny; scale them (and the (1 + w) norms) so tokens' logits differ
    # clearly and a wrong implementation cannot agree with transformers by accident.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.08)
            elif "norm" in name:
                param.normal_(0.0, 0.3)
    model.save_pretrained(folder)
    _save_tokenizer(folder)
    _save_processor(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder
