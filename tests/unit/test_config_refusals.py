"""Features the tt platform refuses before the engine starts, each with a message naming the option.

Real engine configs (vLLM's EngineArgs, the embedded model) go through the platform's config check;
encoder-decoder and multimodal need such a checkpoint, so those rows give ``reject_unsupported`` (and
``reject_multimodal_without_images``) a config object with just the fields it reads; so does prefix
caching with data_parallel > 1, which only the ttnn device acts on.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tt_vllm_plugin import compat
from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.options import TTOptions
from tt_vllm_plugin.refusals import (
    UnsupportedConfiguration,
    host_sampler_refusal,
    reject_multimodal_without_images,
    reject_unsupported,
    reject_unsupported_caching,
)
from tt_vllm_plugin.worker.unhandled_work import UnhandledSchedulerWork, check_no_unhandled_work

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
        # Started before, and then the first embeddings prompt killed the engine core.
        (
            {"enable_prompt_embeds": True},
            "prompt embeddings (the TT models take token ids): remove --enable-prompt-embeds.",
        ),
        # Accepted and silently ignored before.
        (
            {"kv_transfer_config": {"kv_connector": "ExampleConnector", "kv_role": "kv_both"}},
            "KV transfer (disaggregated prefill, KV offloading): remove --kv-transfer-config.",
        ),
        (
            {"kv_cache_dtype": "fp8"},
            "--kv-cache-dtype fp8 (the KV cache is kept in the model's dtype, float32; tt-metal picks its "
            "own device format): remove --kv-cache-dtype or pass auto.",
        ),
        (
            {"kv_cache_dtype": "fp8", "enable_prompt_embeds": True},
            "prompt embeddings (the TT models take token ids): remove --enable-prompt-embeds; "
            "--kv-cache-dtype fp8 (the KV cache is kept in the model's dtype, float32; tt-metal picks its "
            "own device format): remove --kv-cache-dtype or pass auto.",
        ),
    ],
)
def test_refused_through_vllms_own_config(default_model_path, engine_args, message):
    from vllm.engine.arg_utils import EngineArgs

    # vLLM runs the platform's check inside its pydantic config validation, which wraps the error.
    with pytest.raises(ValueError) as error:
        EngineArgs(model=default_model_path, max_model_len=256, **engine_args).create_engine_config()
    assert f"Value error, {PREFIX}{message} [type=value_error" in str(error.value)


def _config(**model_fields) -> SimpleNamespace:
    model = dict(
        runner_type="generate",
        is_encoder_decoder=False,
        is_multimodal_model=False,
        enable_prompt_embeds=False,
        dtype="torch.float32",
        logits_processors=None,
    )
    model.update(model_fields)
    return SimpleNamespace(
        parallel_config=SimpleNamespace(tensor_parallel_size=1, pipeline_parallel_size=1),
        speculative_config=None,
        lora_config=None,
        kv_transfer_config=None,
        model_config=SimpleNamespace(**model),
        cache_config=SimpleNamespace(cache_dtype="auto", enable_prefix_caching=True),
    )


@pytest.mark.parametrize(
    ("model_fields", "message"),
    [
        ({"is_encoder_decoder": True}, "encoder-decoder models."),
        ({"is_encoder_decoder": True, "is_multimodal_model": True}, "encoder-decoder models."),
    ],
)
def test_refused_model_kinds(model_fields, message):
    with pytest.raises(UnsupportedConfiguration) as error:
        reject_unsupported(_config(**model_fields))
    assert str(error.value) == PREFIX + message


def test_a_plain_generation_config_passes():
    reject_unsupported(_config())


class TTGemma3ForConditionalGeneration:  # a TT class serving only the text of a multimodal checkpoint
    pass


class TTQwen2_5_VLForConditionalGeneration:
    supports_multimodal = True


def test_a_multimodal_checkpoint_needs_a_class_that_takes_images():
    multimodal = SimpleNamespace(is_multimodal_model=True)
    with pytest.raises(UnsupportedConfiguration) as error:
        reject_multimodal_without_images(multimodal, TTGemma3ForConditionalGeneration)
    assert str(error.value) == (
        PREFIX + "Gemma3ForConditionalGeneration is a multimodal model, and its TT class takes no images "
        "(it declares no supports_multimodal)."
    )
    reject_multimodal_without_images(multimodal, TTQwen2_5_VLForConditionalGeneration)
    reject_multimodal_without_images(
        SimpleNamespace(is_multimodal_model=False), TTGemma3ForConditionalGeneration
    )


@pytest.mark.parametrize("v1_sampler", [True, False], ids=["vllm-with-v1-sampler", "vllm-0.34-host-sampler"])
def test_custom_logits_processors_need_vllms_v1_sampler(v1_sampler, monkeypatch):
    # Which one a vLLM has is decided by its modules (compat.vllm_v1_runner_parts); both answers here.
    monkeypatch.setattr(compat, "vllm_v1_runner_parts", lambda: v1_sampler)
    config = _config(logits_processors=["my_module:MyProcessor"])
    if v1_sampler:
        reject_unsupported(config)
        return
    with pytest.raises(UnsupportedConfiguration) as error:
        reject_unsupported(config)
    assert str(error.value) == (
        PREFIX + "custom logits processors on a vLLM without Model Runner V1's sampler (0.34 and later; "
        "the tt platform samples with its own host sampler there): remove --logits-processors."
    )


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        ("thinking_token_budget", 64, "a thinking token budget"),
        ("logprob_token_ids", [5], "logprobs of chosen token ids"),
    ],
)
def test_what_the_host_sampler_does_not_do_is_refused_per_request(field, value, what, monkeypatch):
    from vllm import SamplingParams

    params = SamplingParams(**{field: value})
    assert host_sampler_refusal(SamplingParams()) is None
    monkeypatch.setattr(compat, "vllm_v1_runner_parts", lambda: True)
    assert host_sampler_refusal(params) is None
    monkeypatch.setattr(compat, "vllm_v1_runner_parts", lambda: False)
    assert host_sampler_refusal(params) == (
        f"{field} ({what}) is not supported on the tt platform with this vLLM (no Model Runner V1 sampler "
        "since 0.34; the platform samples with its own host sampler); remove it from the request."
    )


def test_the_kv_cache_dtype_may_name_the_models_own_dtype(default_model_path):
    from vllm.engine.arg_utils import EngineArgs

    args = EngineArgs(
        model=default_model_path, max_model_len=256, dtype="bfloat16", kv_cache_dtype="bfloat16"
    )
    assert args.create_engine_config().cache_config.cache_dtype == "bfloat16"


DP_PREFIX_CACHING = (
    PREFIX + "prefix caching with TT option data_parallel=2 (each data-parallel submesh keeps its own KV "
    "cache, so a cached block may be on another submesh): pass --no-enable-prefix-caching "
    "(LLM(enable_prefix_caching=False)) or data_parallel 1."
)


def test_prefix_caching_across_data_parallel_submeshes_is_refused_on_ttnn():
    with pytest.raises(UnsupportedConfiguration) as error:
        reject_unsupported_caching(_config(), DeviceChoice.TTNN, TTOptions(data_parallel=2))
    assert str(error.value) == DP_PREFIX_CACHING


@pytest.mark.parametrize(
    ("device", "data_parallel", "prefix_caching"),
    [
        (DeviceChoice.TTNN, 1, True),  # one submesh, one KV pool
        (DeviceChoice.TTNN, 2, False),  # turned off by the user (or by the model's capabilities)
        (DeviceChoice.HOST, 2, True),  # the host device ignores data_parallel: one KV cache
    ],
)
def test_prefix_caching_is_fine_with_one_kv_pool(device, data_parallel, prefix_caching):
    config = _config()
    config.cache_config.enable_prefix_caching = prefix_caching
    reject_unsupported_caching(config, device, TTOptions(data_parallel=data_parallel))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"new_block_ids_to_zero": [3, 4]},
            "new_block_ids_to_zero (zero freshly allocated KV blocks: 2 given)",
        ),
        (
            {"kv_cache_block_copies": [object()]},
            "kv_cache_block_copies (copy KV blocks (copy-on-write for partial prefix-cache hits): 1 given)",
        ),
    ],
)
def test_scheduler_work_the_runner_does_not_do_is_an_error(fields, message):
    step = SimpleNamespace(new_block_ids_to_zero=None, kv_cache_block_copies=None)
    for name, value in fields.items():
        setattr(step, name, value)
    with pytest.raises(UnhandledSchedulerWork) as error:
        check_no_unhandled_work(step)
    assert str(error.value).startswith(
        f"The scheduler asked the TT runner for work it does not implement: {message}. "
    )


def test_steps_without_that_work_pass():
    check_no_unhandled_work(SimpleNamespace(new_block_ids_to_zero=None, kv_cache_block_copies=[]))
    check_no_unhandled_work(SimpleNamespace(new_block_ids_to_zero=None))  # 0.25.1: no block copies


def test_a_config_the_host_model_cannot_compute_is_refused_before_the_engine_starts(tmp_path):
    """The released GPT-OSS checkpoints keep their experts in MXFP4; the host models load unquantised
    weights only. Refused by the model class's check_config, asked at config time (the worker would
    otherwise only find out while loading)."""
    import json

    from vllm.engine.arg_utils import EngineArgs

    from tests.e2e.random_models import save_random_model

    folder = save_random_model("GptOssForCausalLM", tmp_path / "gpt_oss")
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "mxfp4"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as error:
        EngineArgs(
            model=str(folder), skip_tokenizer_init=True, dtype="bfloat16", max_model_len=256
        ).create_engine_config()
    # vLLM renames the method for GPT-OSS (gpt_oss_mxfp4) before the platform sees it.
    assert (
        f"{PREFIX}TTGptOssForCausalLM: quantized checkpoints (gpt_oss_mxfp4) are not implemented for host "
        "models; use a checkpoint with unquantised (bf16/fp32) weights."
    ) in str(error.value)
