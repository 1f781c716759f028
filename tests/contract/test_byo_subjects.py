"""The conformance suite takes a model you bring: ``pytest tests/contract --tt-model <bundle folder>`` or
``--tt-model path/to/module.py:Class`` (conftest.py ``resolve_target``), with the random checkpoint's
architecture read from the bundle or from the class's MRO."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.contract.conftest import resolve_target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "byo_models"


@pytest.fixture(autouse=True)
def restore_sys_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_a_bundle_folder_is_a_subject():
    folder = FIXTURES / "bundles" / "llama_bundle"
    assert resolve_target(str(folder)) == ("tt_byo_bundle_llama:BundleLlamaForCausalLM", "LlamaForCausalLM")
    assert str(folder) in sys.path


def test_a_class_in_a_file_outside_the_package_is_a_subject():
    path = FIXTURES / "outside" / "tt_byo_outside_models.py"
    target, arch = resolve_target(f"{path}:MyLlamaForCausalLM")
    # MyLlamaForCausalLM subclasses the host TTLlamaForCausalLM: a Llama checkpoint checks it.
    assert (target, arch) == ("tt_byo_outside_models:MyLlamaForCausalLM", "LlamaForCausalLM")


def test_an_importable_module_class_keeps_working():
    target = "tt_vllm_plugin.models.host.llama.architectures:TTQwen3ForCausalLM"
    assert resolve_target(target) == (target, "Qwen3ForCausalLM")
