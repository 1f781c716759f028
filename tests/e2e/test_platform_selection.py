"""Which platform vLLM activates, and the errors a user meets when the choice cannot work.

Each case runs in a fresh interpreter: vLLM picks its platform once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW_PLATFORM = (
    "from vllm.platforms import current_platform as p; print('PLATFORM', p.device_name, type(p).__name__)"
)


def _run(code: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=300
    )


def test_host_device_activates_tt_platform_with_one_clear_line(default_model_path):
    code = (
        "from vllm.engine.arg_utils import EngineArgs\n"
        f"EngineArgs(model={default_model_path!r}, max_model_len=256).create_engine_config()\n"
        + SHOW_PLATFORM
    )
    result = _run(code, VLLM_PLUGINS="tt", TT_VLLM_DEVICE="host")
    assert result.returncode == 0, result.stderr
    assert "PLATFORM tt TTPlatform" in result.stdout
    lines = [line for line in result.stderr.splitlines() if "Platform tt (tt-vllm-plugin) active" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith("Platform tt (tt-vllm-plugin) active on the host device; vLLM 0.32.0")


def test_auto_without_hardware_falls_back_and_says_why():
    result = _run(SHOW_PLATFORM, VLLM_PLUGINS=None, TT_VLLM_DEVICE=None)
    assert result.returncode == 0, result.stderr
    assert "PLATFORM cpu CpuPlatform" in result.stdout
    reasons = [line for line in result.stderr.splitlines() if "tt-vllm-plugin not activating" in line]
    assert len(reasons) == 1, result.stderr
    assert reasons[0].endswith(
        "tt-vllm-plugin not activating: ttnn is not importable (ModuleNotFoundError: No module named "
        "'ttnn'). Set TT_VLLM_DEVICE=host to run on the host device."
    )


def test_ttnn_without_hardware_stops_with_a_clear_error(default_model_path):
    code = (
        "from vllm.engine.arg_utils import EngineArgs\n"
        f"EngineArgs(model={default_model_path!r}, max_model_len=256).create_engine_config()\n"
    )
    result = _run(code, VLLM_PLUGINS="tt", TT_VLLM_DEVICE="ttnn")
    assert result.returncode != 0
    assert (
        "DeviceSelectionError: TT_VLLM_DEVICE=ttnn but no Tenstorrent device is usable: ttnn is not "
        "importable (ModuleNotFoundError: No module named 'ttnn'). Install ttnn and tt-metal on a machine "
        "with a Tenstorrent card, or set TT_VLLM_DEVICE=host to run on the host device."
    ) in result.stderr


@pytest.mark.engine
def test_unknown_architecture_lists_the_supported_ones(tmp_path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from vllm.engine.arg_utils import EngineArgs

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=128)).save_pretrained(tmp_path)
    with pytest.raises(ValueError) as error:
        EngineArgs(model=str(tmp_path), skip_tokenizer_init=True).create_engine_config()
    # vLLM's config validation (pydantic) wraps the platform's error; the message is ours, whole.
    assert (
        "Architecture 'GPT2LMHeadModel' has no TT implementation. Supported architectures: "
        "Gemma3ForCausalLM, Gemma3ForConditionalGeneration, GptOssForCausalLM, LlamaForCausalLM, "
        "MistralForCausalLM, Qwen2ForCausalLM, Qwen2_5_VLForConditionalGeneration, Qwen3ForCausalLM, "
        "Qwen3MoeForCausalLM."
    ) in str(error.value)
