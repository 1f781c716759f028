"""Features the tt platform refuses before the engine starts, each with a message naming the option.

Real engine configs (vLLM's EngineArgs, the embedded model) go through the platform's config check;
encoder-decoder and multimodal need such a checkpoint, so those two rows give ``_reject_unsupported``
a config object with just the fields it reads.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tt_vllm_plugin.platform import UnsupportedConfiguration, _reject_unsupported

PREFIX = "Not supported on the tt platform: "


@pytest.mark.parametrize(
    ("engine_args", "message"),
    [
        (
            {"speculative_config": {"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 3}},
            "speculative decoding: remove --speculative-config.",
        ),
        ({"enable_lora": True}, "LoRA adapters: remove --enable-lora."),
        ({"runner": "pooling"}, "the 'pooling' runner: only text generation is supported."),
    ],
)
def test_refused_through_vllms_own_config(default_model_path, engine_args, message):
    from vllm.engine.arg_utils import EngineArgs

    # vLLM runs the platform's check inside its pydantic config validation, which wraps the error.
    with pytest.raises(ValueError) as error:
        EngineArgs(model=default_model_path, max_model_len=256, **engine_args).create_engine_config()
    assert f"Value error, {PREFIX}{message} [type=value_error" in str(error.value)


def _config(**model_fields) -> SimpleNamespace:
    model = dict(runner_type="generate", is_encoder_decoder=False, is_multimodal_model=False)
    model.update(model_fields)
    return SimpleNamespace(
        parallel_config=SimpleNamespace(tensor_parallel_size=1, pipeline_parallel_size=1),
        speculative_config=None,
        lora_config=None,
        model_config=SimpleNamespace(**model),
    )


@pytest.mark.parametrize(
    ("model_fields", "message"),
    [
        ({"is_encoder_decoder": True}, "encoder-decoder models."),
        ({"is_multimodal_model": True}, "multimodal models."),
        (
            {"is_encoder_decoder": True, "is_multimodal_model": True},
            "encoder-decoder models; multimodal models.",
        ),
    ],
)
def test_refused_model_kinds(model_fields, message):
    with pytest.raises(UnsupportedConfiguration) as error:
        _reject_unsupported(_config(**model_fields))
    assert str(error.value) == PREFIX + message


def test_a_plain_generation_config_passes():
    _reject_unsupported(_config())
