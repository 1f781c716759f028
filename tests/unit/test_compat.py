"""tt_vllm_plugin.compat on whichever supported vLLM is installed (the main suite's 0.32, and 0.25.1
in .venv-vllm025, where ``make test`` runs this file too)."""

from __future__ import annotations

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


def test_input_batch_gets_kernel_block_sizes_only_where_vllm_asks_for_them(monkeypatch):
    import inspect

    from vllm.v1.worker.gpu_input_batch import InputBatch

    wanted = "kernel_block_sizes" in inspect.signature(InputBatch.__init__).parameters
    assert compat.input_batch_kwargs([16]) == ({"kernel_block_sizes": [16]} if wanted else {})
    # Both shapes of the signature, whichever vLLM is installed.
    monkeypatch.setattr(compat, "_input_batch_parameters", lambda: frozenset({"self", "kernel_block_sizes"}))
    assert compat.input_batch_kwargs([16, 32]) == {"kernel_block_sizes": [16, 32]}
    monkeypatch.setattr(compat, "_input_batch_parameters", lambda: frozenset({"self", "block_sizes"}))
    assert compat.input_batch_kwargs([16]) == {}


def test_tt_input_batch_builds_on_the_installed_vllm():
    from tt_vllm_plugin.worker.input_batch import TTInputBatch

    batch = TTInputBatch(
        max_num_reqs=4,
        max_model_len=64,
        max_num_batched_tokens=64,
        device=torch.device("cpu"),
        vocab_size=32,
        block_sizes=[16],
        max_num_blocks_per_req=[4],
    )
    assert batch.block_table[0].block_size == 16
    assert batch.block_table[0].max_num_blocks_per_req >= 4


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
    """What a VLLM_TARGET_DEVICE=empty build gives (on 0.25.1 for real, here also on 0.32)."""
    from vllm.v1.sample.sampler import Sampler

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
    assert not use_vllm_cpu_sampling_kernel(Sampler())
    assert "vllm._C is absent: a VLLM_TARGET_DEVICE=empty build" in capsys.readouterr().err
