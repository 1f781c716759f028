"""tt_vllm_plugin.compat on whichever supported vLLM is installed: the main suite's 0.32, and 0.25.1,
0.26.0 and 0.34.0 in .venv-vllm025/026/034, where ``make test`` runs this file too. Each test reads what
the installed vLLM has and checks compat's answer against it, so one file covers every release."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from tt_vllm_plugin import compat

HAS_VLLM_C = importlib.util.find_spec("vllm._C") is not None


def test_platform_module_imported_before_vllm_in_a_fresh_interpreter():
    # On 0.25.1 `import vllm` resolves the platform, i.e. imports this very module: it used to fail
    # with "ImportError: cannot import name 'current_platform'".
    code = (
        "import sys\n"
        "import tt_vllm_plugin.platform as first\n"
        "from vllm.platforms import current_platform\n"
        "import tt_vllm_plugin\n"
        "assert type(current_platform) is first.TTPlatform, type(current_platform)\n"
        "assert sys.modules['tt_vllm_plugin.platform'] is first is tt_vllm_plugin.platform\n"
        "print('OK', type(current_platform).__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "host"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "OK tt_vllm_plugin.platform" in result.stdout


V1_MODULES = ("vllm.v1.worker.gpu_input_batch", "vllm.v1.sample.sampler", "vllm.v1.sample.logits_processor")
V1_RUNNER_PARTS = all(importlib.util.find_spec(name) is not None for name in V1_MODULES)


def test_cpu_kernel_wrappers_are_where_this_vllm_keeps_them():
    # 0.34 moved the CPU wrappers from vllm._custom_ops to vllm._cpu_ops.
    ops = compat.vllm_cpu_ops()
    moved = importlib.util.find_spec("vllm._cpu_ops") is not None
    assert ops.__name__ == ("vllm._cpu_ops" if moved else "vllm._custom_ops")
    for name in (
        "cpu_attn_get_scheduler_metadata",
        "cpu_attn_reshape_and_cache",
        "cpu_attention_with_kv_cache",
        "create_onednn_mm",
        "onednn_mm",
    ):
        assert callable(getattr(ops, name)), name


def test_v1_runner_parts_are_what_this_vllm_has():
    assert compat.vllm_v1_runner_parts() is V1_RUNNER_PARTS
    names = (compat.persistent_batch_class().__name__, compat.request_state_class().__name__)
    sampler = compat.make_sampler("raw_logprobs", False)
    if V1_RUNNER_PARTS:  # 0.25.1 to 0.32
        assert names == ("InputBatch", "CachedRequestState")
        assert type(sampler).__module__ == "vllm.v1.sample.sampler"
    else:  # 0.34 removed Model Runner V1
        assert names == ("HostInputBatch", "HostRequestState")
        assert type(sampler).__module__ == "tt_vllm_plugin.worker.host_sampler"
        assert compat.logits_processors(None, torch.device("cpu"), ()) is None


def test_input_batch_gets_kernel_block_sizes_only_where_vllm_asks_for_them(monkeypatch):
    import inspect

    wanted = (
        V1_RUNNER_PARTS
        and "kernel_block_sizes" in inspect.signature(compat.persistent_batch_class().__init__).parameters
    )
    assert compat.input_batch_kwargs([16]) == ({"kernel_block_sizes": [16]} if wanted else {})
    # Both shapes of the signature, whichever vLLM is installed.
    monkeypatch.setattr(compat, "vllm_v1_runner_parts", lambda: True)
    monkeypatch.setattr(compat, "_input_batch_parameters", lambda: frozenset({"self", "kernel_block_sizes"}))
    assert compat.input_batch_kwargs([16, 32]) == {"kernel_block_sizes": [16, 32]}
    monkeypatch.setattr(compat, "_input_batch_parameters", lambda: frozenset({"self", "block_sizes"}))
    assert compat.input_batch_kwargs([16]) == {}


@pytest.mark.parametrize("base", ["this vllm's", "the plugin's own"])
def test_tt_input_batch_builds_on_the_installed_vllm(base, monkeypatch):
    from tt_vllm_plugin.worker.input_batch import TTInputBatch, make_input_batch

    if base == "the plugin's own":
        monkeypatch.setattr(compat, "vllm_v1_runner_parts", lambda: False)
    batch = make_input_batch(
        max_num_reqs=4,
        max_model_len=64,
        max_num_batched_tokens=64,
        device=torch.device("cpu"),
        vocab_size=32,
        block_sizes=[16],
        max_num_blocks_per_req=[4],
    )
    assert isinstance(batch, TTInputBatch) and isinstance(batch, compat.persistent_batch_class())
    assert batch.block_table[0].block_size == 16
    assert batch.block_table[0].max_num_blocks_per_req >= 4


def test_scheduler_fields_of_this_vllm():
    from vllm.v1.core.sched.output import CachedRequestData, NewRequestData

    empty = CachedRequestData.make_empty()
    has_resumed = "resumed_req_ids" in {f.name for f in dataclasses.fields(CachedRequestData)}
    assert has_resumed is V1_RUNNER_PARTS  # 0.34 re-sends resumed requests as new ones
    assert compat.resumed_req_ids(empty) == set() and compat.resumed_token_ids(empty, "a") is None
    fields = {f.name: f for f in dataclasses.fields(NewRequestData)}
    values = {name: None for name, f in fields.items() if f.default is dataclasses.MISSING}
    new = NewRequestData(**{**values, "req_id": "a", "prompt_token_ids": [1, 2, 3]})
    assert compat.new_request_output_tokens(new) == []
    new.prefill_token_ids = [1, 2, 3, 7, 8]  # a resumed request on 0.34: prompt + generated tokens
    assert compat.new_request_output_tokens(new) == [7, 8]


def test_model_runner_output_takes_the_index_where_it_has_one():
    from vllm.v1.outputs import ModelRunnerOutput

    output = ModelRunnerOutput(req_ids=["a", "b"], **compat.runner_output_index(["a", "b"]))
    if hasattr(output, "req_id_to_index"):  # up to 0.32
        assert output.req_id_to_index == {"a": 0, "b": 1}
    else:
        assert compat.runner_output_index(["a"]) == {}


def test_step_output_is_a_complete_async_output_here():
    # 0.34 made AsyncModelRunnerOutput.get_kv_connector_output abstract.
    from vllm.v1.outputs import EMPTY_MODEL_RUNNER_OUTPUT

    from tt_vllm_plugin.worker.step_output import StepOutput

    step = StepOutput(lambda: EMPTY_MODEL_RUNNER_OUTPUT)
    assert step.get_kv_connector_output() is None and step.get_output() is EMPTY_MODEL_RUNNER_OUTPUT


def test_memory_utilization_default_and_set():
    from vllm.config import CacheConfig

    assert compat.memory_utilization(CacheConfig()) == 0.92
    assert compat.memory_utilization(CacheConfig(gpu_memory_utilization=0.5)) == 0.5


@pytest.fixture
def fresh_probe():
    compat.vllm_cpu_kernels_available.cache_clear()
    yield
    compat.vllm_cpu_kernels_available.cache_clear()


def test_cpu_kernels_are_detected_once_and_logged_once(fresh_probe, capsys):
    assert compat.vllm_cpu_kernels_available() is HAS_VLLM_C
    assert compat.vllm_cpu_kernels_available() is HAS_VLLM_C
    assert compat.has_vllm_cpu_op("silu_and_mul") is HAS_VLLM_C
    lines = [line for line in capsys.readouterr().err.splitlines() if "[tt_vllm_plugin.compat]" in line]
    assert len(lines) == 1, lines
    expected = "compiled CPU kernels are loaded" if HAS_VLLM_C else "vllm._C is absent"
    assert expected in lines[0]


def test_without_vllm_c_every_host_path_is_plain_torch(fresh_probe, monkeypatch, capsys):
    """What a VLLM_TARGET_DEVICE=empty build gives (on 0.25.1, 0.26.0, 0.34.0 for real, here also on 0.32)."""
    from tt_vllm_plugin.models.host.cpu_attention import host_attention_choice
    from tt_vllm_plugin.models.host.linear import HostLinear
    from tt_vllm_plugin.models.host.ops import fused_kernels_available
    from tt_vllm_plugin.worker.sampling_mode import use_vllm_cpu_sampling_kernel

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm._C" else real_find_spec(name, *a)
    )
    monkeypatch.delenv("TT_VLLM_HOST_ATTENTION", raising=False)
    cpu = torch.device("cpu")
    assert not compat.vllm_cpu_kernels_available()
    assert not fused_kernels_available(cpu)
    assert host_attention_choice(cpu, torch.float32, 64) == "torch"
    assert HostLinear(torch.ones(8, 8)).backend == "torch"
    if V1_RUNNER_PARTS:  # the plugin's own sampler has no kernel to switch to
        assert not use_vllm_cpu_sampling_kernel(compat.make_sampler("raw_logprobs", False))
    assert "vllm._C is absent: a VLLM_TARGET_DEVICE=empty build" in capsys.readouterr().err
