"""``tt-serve serve --dry-run --model-inputs``: what the model takes (text, images), as the plugin's TT class
declares it, asked in the backend's environment (tt_vllm_plugin/models/inputs.py); the gateway shows it in
the model's entry. Without the flag nothing is asked (the dry run stays fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MODEL = "smollm2-135m-instruct"


def _folder(tmp_path: Path, architecture: str) -> Path:
    folder = tmp_path / architecture
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": [architecture]}))
    return folder


def _inputs(tt_serve, model: str, *flags: str) -> dict | None:
    done = tt_serve(["serve", model, "--backend", "host", "--dry-run", "--json", *flags])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["model_inputs"]


def test_the_embedded_model_takes_text(tt_serve) -> None:
    assert _inputs(tt_serve, MODEL, "--model-inputs") == {
        "architecture": "LlamaForCausalLM",
        "inputs": ["text"],
        "max_images_per_prompt": 0,
    }
    assert _inputs(tt_serve, MODEL) is None  # not asked


@pytest.mark.parametrize(
    ("architecture", "limit"),
    [("Qwen2_5_VLForConditionalGeneration", 4), ("Gemma3ForConditionalGeneration", None)],
)
def test_image_models_take_images(tt_serve, tmp_path: Path, architecture: str, limit: int | None) -> None:
    folder = _folder(tmp_path, architecture)
    assert _inputs(tt_serve, str(folder), "--model-inputs") == {
        "architecture": architecture,
        "inputs": ["text", "image"],
        "max_images_per_prompt": limit,
    }
    done = tt_serve(["serve", str(folder), "--backend", "host", "--dry-run", "--model-inputs"])
    assert "model takes: text, image" in done.stdout.splitlines()


def test_when_it_cannot_be_told_the_entry_says_why(tt_serve, tmp_path: Path) -> None:
    assert _inputs(tt_serve, "example-org/not-in-the-cache", "--model-inputs") == {
        "inputs": None,
        "unknown": "the model is not in a local folder nor in the Hugging Face cache",
    }
    unknown = _inputs(tt_serve, str(_folder(tmp_path, "NoSuchForCausalLM")), "--model-inputs")
    assert unknown["inputs"] is None
    assert unknown["unknown"].startswith(
        "the plugin could not tell: Architecture 'NoSuchForCausalLM' has no TT implementation. "
        "Supported architectures: "
    )
