"""TT_MODEL_CLASS_OVERRIDES, EXTRA_MODELS_DIR and TT_VLLM_BUILTIN_MODELS (src/tt_vllm_plugin/models/
user_models.py) with the meaning and precedence of Tenstorrent's plugin (tenstorrent/vllm-tt-plugin
src/vllm_tt_plugin/platform.py @ 01078a07128216ae085a966749974376cea8e721), and their errors as the user
sees them: from vLLM's own config check."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.models import registry, user_models
from tt_vllm_plugin.models.user_models import UserModelError

HOST = DeviceChoice.HOST
LLAMA = "tt_vllm_plugin.models.host.llama.architectures:TTLlamaForCausalLM"
FIXTURE_BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "byo_models" / "bundles"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("TT_MODEL_CLASS_OVERRIDES", "EXTRA_MODELS_DIR", "TT_VLLM_BUILTIN_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # bundles append their folders


def bundle(root: Path, name: str, metadata: object) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    (folder / "vllm_metadata.json").write_text(text)
    return folder


# ---- TT_MODEL_CLASS_OVERRIDES


def test_overrides_parse_like_tenstorrents(monkeypatch):
    monkeypatch.setenv("TT_MODEL_CLASS_OVERRIDES", " ArchA=pkg.mod:ClassA , TTArchB=other.mod:ClassB,")
    models = user_models.load()
    assert {name: m.target for name, m in models.overrides.items()} == {
        "TTArchA": "pkg.mod:ClassA",
        "TTArchB": "other.mod:ClassB",
    }
    # Bare names go to vLLM's registry too (written bare, they are the checkpoint's architecture).
    assert {name: m.target for name, m in models.bare_names.items()} == {"ArchA": "pkg.mod:ClassA"}


def test_a_later_override_of_the_same_name_wins(monkeypatch):
    monkeypatch.setenv("TT_MODEL_CLASS_OVERRIDES", "LlamaForCausalLM=a.b:First,TTLlamaForCausalLM=c.d:Second")
    assert registry.implementations(HOST)["TTLlamaForCausalLM"] == "c.d:Second"


@pytest.mark.parametrize(
    "entry", ["ArchOnlyNoTarget", "Arch=missing.colon.Class", "=pkg.mod:Class", "Arch=:Class", "Arch=pkg:"]
)
def test_a_malformed_override_names_the_entry(monkeypatch, entry):
    monkeypatch.setenv("TT_MODEL_CLASS_OVERRIDES", f"Good=pkg.mod:Class,{entry}")
    with pytest.raises(UserModelError) as error:
        user_models.load()
    assert str(error.value) == (
        f"TT_MODEL_CLASS_OVERRIDES entry {entry!r} is not of the form 'Architecture=module.path:ClassName'."
    )


def test_an_override_that_does_not_import_names_where_it_came_from(monkeypatch):
    monkeypatch.setenv("TT_MODEL_CLASS_OVERRIDES", "LlamaForCausalLM=no_such_module_here:Llama")
    with pytest.raises(ValueError) as error:
        registry.load_model_class("TTLlamaForCausalLM", HOST)
    assert str(error.value) == (
        "TT_MODEL_CLASS_OVERRIDES entry 'LlamaForCausalLM=no_such_module_here:Llama': cannot load "
        "no_such_module_here:Llama (ModuleNotFoundError: No module named 'no_such_module_here')."
    )


# ---- EXTRA_MODELS_DIR


def test_bundles_serve_their_tt_name_and_their_folder_goes_last_on_sys_path(monkeypatch):
    monkeypatch.setenv("EXTRA_MODELS_DIR", str(FIXTURE_BUNDLES))
    models = user_models.load()
    assert {name: m.target for name, m in models.bundles.items()} == {
        "TTLlamaForCausalLM": "tt_byo_bundle_llama:BundleLlamaForCausalLM"
    }
    assert models.bare_names == {}  # bundles register only the TT name (PF)
    assert sys.path[-1] == str(FIXTURE_BUNDLES / "llama_bundle")  # appended, never first
    assert registry.load_model_class("TTLlamaForCausalLM", HOST).__name__ == "BundleLlamaForCausalLM"


def test_the_first_bundle_in_sorted_order_wins(tmp_path, monkeypatch):
    bundle(tmp_path, "b_second", {"arch": "LlamaForCausalLM", "main_class": "second.mod:Llama"})
    bundle(tmp_path, "a_first", {"arch": "TTLlamaForCausalLM", "main_class": "first.mod:Llama"})
    (tmp_path / "no_metadata").mkdir()  # skipped, as PF skips it
    monkeypatch.setenv("EXTRA_MODELS_DIR", str(tmp_path))
    assert registry.implementations(HOST)["TTLlamaForCausalLM"] == "first.mod:Llama"


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ("{not json", "cannot read it as JSON (Expecting property name enclosed in double quotes: "),
        ({"arch": "LlamaForCausalLM"}, 'needs "arch" (the Hugging Face architecture) and "main_class"'),
        ({"arch": "X", "main_class": "no_colon"}, "\"main_class\" 'no_colon' is not of the form"),
    ],
)
def test_a_malformed_bundle_names_its_file(tmp_path, monkeypatch, metadata, problem):
    folder = bundle(tmp_path, "broken", metadata)
    monkeypatch.setenv("EXTRA_MODELS_DIR", str(tmp_path))
    with pytest.raises(UserModelError) as error:
        user_models.load()
    assert str(error.value).startswith(f"{folder / 'vllm_metadata.json'}: {problem}")


def test_extra_models_dir_must_be_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EXTRA_MODELS_DIR", str(tmp_path / "missing"))
    with pytest.raises(UserModelError) as error:
        user_models.load()
    assert str(error.value) == f"EXTRA_MODELS_DIR={str(tmp_path / 'missing')!r} is not a directory."


# ---- precedence and TT_VLLM_BUILTIN_MODELS


def test_overrides_beat_bundles_beat_the_built_in_map(tmp_path, monkeypatch):
    bundle(tmp_path, "one", {"arch": "LlamaForCausalLM", "main_class": "bundle.mod:Llama"})
    bundle(tmp_path, "two", {"arch": "Qwen2ForCausalLM", "main_class": "bundle.mod:Qwen2"})
    monkeypatch.setenv("EXTRA_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("TT_MODEL_CLASS_OVERRIDES", "Qwen2ForCausalLM=override.mod:Qwen2")
    served = registry.implementations(HOST)
    assert served["TTLlamaForCausalLM"] == "bundle.mod:Llama"
    assert served["TTQwen2ForCausalLM"] == "override.mod:Qwen2"
    assert served["TTQwen3ForCausalLM"] == registry.TT_MODEL_CLASSES["TTQwen3ForCausalLM"]


@pytest.mark.parametrize("off", ["0", "false", "No", " off "])
def test_the_built_in_map_can_be_turned_off(monkeypatch, off):
    monkeypatch.setenv("TT_VLLM_BUILTIN_MODELS", off)
    monkeypatch.setenv("TT_MODEL_CLASS_OVERRIDES", f"MyArch={LLAMA}")
    assert registry.implementations(HOST) == {"TTMyArch": LLAMA}
    with pytest.raises(ValueError) as error:
        registry.load_model_class("TTQwen3ForCausalLM", HOST)
    assert str(error.value) == (
        "Architecture 'Qwen3ForCausalLM' has no TT implementation. Supported architectures: MyArch."
    )


def test_any_other_value_keeps_it_on(monkeypatch):
    monkeypatch.setenv("TT_VLLM_BUILTIN_MODELS", "1")
    assert registry.implementations(HOST) == registry.TT_MODEL_CLASSES


# ---- as the user sees it


def test_a_malformed_entry_stops_vllms_config_check(default_model_path, monkeypatch):
    from vllm.engine.arg_utils import EngineArgs

    monkeypatch.setenv("TT_MODEL_CLASS_OVERRIDES", "LlamaForCausalLM")
    with pytest.raises(ValueError) as error:
        EngineArgs(model=default_model_path, max_model_len=256).create_engine_config()
    assert (
        "Value error, TT_MODEL_CLASS_OVERRIDES entry 'LlamaForCausalLM' is not of the form "
        "'Architecture=module.path:ClassName'. [type=value_error" in str(error.value)
    )
