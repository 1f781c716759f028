"""Resolution precedence: one test per source, conflicts between sources, and the reported reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tt_serve.config import ServerConfig, load_config
from tt_serve.errors import ExitCode, ServeError
from tt_serve.hardware import HardwareReport, detect
from tt_serve.models import ModelRef, locate_model
from tt_serve.planning import is_installed
from tt_serve.resolve import Resolution, Source, resolve


def _resolve(
    model: ModelRef,
    cli: str | None = None,
    config: ServerConfig | None = None,
    dev_root: Path | None = None,
) -> Resolution:
    config = config or ServerConfig()
    consulted: list[bool] = []

    def hardware() -> HardwareReport:
        consulted.append(True)
        # ttnn is not installable on these machines (no cp311 wheel), in no environment.
        return (detect(dev_root=str(dev_root)) if dev_root else detect()).with_ttnn(False)

    resolution = resolve(
        model,
        cli_backend=cli,
        config=config,
        catalog=config.catalog(),
        hardware=hardware,
        is_installed=is_installed,  # probes each backend's environment, as tt-serve does
    )
    # Hardware detection runs only when no other source decided.
    assert bool(consulted) == (resolution.source is Source.HARDWARE)
    return resolution


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    return folder


@pytest.fixture
def no_devices(tmp_path: Path) -> Path:
    root = tmp_path / "dev-empty"
    root.mkdir()
    return root


@pytest.fixture
def tt_devices(tmp_path: Path) -> Path:
    """A device folder laid out as tt-kmd lays out /dev (two cards)."""
    root = tmp_path / "dev-tt"
    (root / "tenstorrent").mkdir(parents=True)
    for n in ("0", "1"):
        (root / "tenstorrent" / n).write_text("")
    return root


def _config(tmp_path: Path, text: str, name: str = "tt-serve.toml") -> ServerConfig:
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


def _sidecar(folder: Path, backend: str) -> Path:
    path = folder / "tt-serve.json"
    path.write_text(json.dumps({"tt_serve": {"backend": backend}}))
    return path


# --- one test per source ---------------------------------------------------------------------------


def test_command_line_decides(model_dir: Path) -> None:
    r = _resolve(locate_model(str(model_dir)), cli="forge")
    assert (r.backend.name, r.source) == ("forge", Source.CLI)
    assert r.reason == "command line: --backend forge"
    assert [s.decides for s in r.steps] == [True, False, False, False]
    assert r.steps[3].finding == "not consulted: decided by the command line"


def test_config_file_decides_exact_name(tmp_path: Path, model_dir: Path) -> None:
    config = _config(tmp_path, f'[models."{model_dir}"]\nbackend = "metal"\n')
    r = _resolve(locate_model(str(model_dir)), config=config)
    assert (r.backend.name, r.source) == ("metal", Source.CONFIG)
    assert r.reason == f"config file: {config.path}: models.\"{model_dir}\" maps '{model_dir}' to 'metal'"
    assert r.config_entry is not None and r.config_entry.pattern == str(model_dir)


def test_config_file_decides_by_glob_yaml(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        "models:\n  'meta-llama/*':\n    backend: forge\n  '*':\n    backend: host\n",
        name="serve.yaml",
    )
    r = _resolve(locate_model("meta-llama/Llama-3.1-8B-Instruct"), config=config)
    assert (r.backend.name, r.source) == ("forge", Source.CONFIG)
    assert r.reason == (
        f'config file: {config.path}: models."meta-llama/*" maps '
        "'meta-llama/Llama-3.1-8B-Instruct' to 'forge'"
    )
    # The first matching glob wins; an exact name wins over any glob.
    assert _resolve(locate_model("Qwen/Qwen3-0.6B"), config=config).backend.name == "host"


def test_model_metadata_sidecar_decides(model_dir: Path) -> None:
    sidecar = _sidecar(model_dir, "forge")
    r = _resolve(locate_model(str(model_dir)))
    assert (r.backend.name, r.source) == ("forge", Source.METADATA)
    assert r.reason == f"model metadata: {sidecar} asks for 'forge'"


def test_model_metadata_config_json_decides(model_dir: Path) -> None:
    config_json = model_dir / "config.json"
    config_json.write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "tt_serve": {"backend": "metal"}})
    )
    r = _resolve(locate_model(str(model_dir)))
    assert (r.backend.name, r.source) == ("metal", Source.METADATA)
    assert r.reason == f"model metadata: {config_json} asks for 'metal'"


def test_metadata_read_from_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hub id is looked up in the local Hugging Face cache only (refs/main -> snapshot)."""
    repo = tmp_path / "hub" / "models--org--name"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    sidecar = _sidecar(snapshot, "metal")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    r = _resolve(locate_model("org/name"))
    assert r.reason == f"model metadata: {sidecar} asks for 'metal'"
    assert r.model.target == "org/name"  # vLLM still gets the Hub id


def test_hardware_absent_picks_host(model_dir: Path, no_devices: Path) -> None:
    r = _resolve(locate_model(str(model_dir)), dev_root=no_devices)
    assert (r.backend.name, r.source) == ("host", Source.HARDWARE)
    assert r.reason.startswith(
        "hardware detection: no Tenstorrent hardware detected (no /dev/tenstorrent* device "
    )
    assert r.reason.endswith("'host' runs this plugin on the host device")


def test_hardware_present_picks_installed_plugin_only(
    model_dir: Path, tt_devices: Path, fake_forge_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a card, metal needs ttnn; ttnn is not installable here, so forge is picked when (and only
    when) it is installed, and metal otherwise (the checks then explain ttnn)."""
    nodes = f"{tt_devices}/tenstorrent/0, {tt_devices}/tenstorrent/1"
    r = _resolve(locate_model(str(model_dir)), dev_root=tt_devices)
    assert r.backend.name == "metal"
    assert r.reason == (
        f"hardware detection: Tenstorrent hardware detected (device nodes {nodes}; ttnn not installed); "
        "'metal' is installed (ttnn is not: the checks will say how to fix it)"
    )
    monkeypatch.setenv("PYTHONPATH", str(fake_forge_site))  # what the backend's environment sees
    r = _resolve(locate_model(str(model_dir)), dev_root=tt_devices)
    assert r.backend.name == "forge"
    assert r.reason == (
        f"hardware detection: Tenstorrent hardware detected (device nodes {nodes}; ttnn not installed); "
        "ttnn is missing so 'metal' cannot run; 'forge' is installed"
    )


# --- conflicts ----------------------------------------------------------------------------------------


def test_command_line_overrides_config_and_metadata(tmp_path: Path, model_dir: Path) -> None:
    config = _config(tmp_path, f'[models."{model_dir}"]\nbackend = "metal"\n')
    sidecar = _sidecar(model_dir, "forge")
    r = _resolve(locate_model(str(model_dir)), cli="host", config=config)
    assert (r.backend.name, r.source) == ("host", Source.CLI)
    assert r.reason == (
        "command line: --backend host; overrides "
        f"config file: {config.path}: models.\"{model_dir}\" maps '{model_dir}' to 'metal'; "
        f"model metadata: {sidecar} asks for 'forge'"
    )
    assert r.steps[1].finding.endswith("(overridden by the command line)")
    assert r.steps[2].finding.endswith("(overridden by the command line)")


def test_config_overrides_metadata(tmp_path: Path, model_dir: Path) -> None:
    config = _config(tmp_path, '[models."*"]\nbackend = "host"\n')
    sidecar = _sidecar(model_dir, "forge")
    r = _resolve(locate_model(str(model_dir)), config=config)
    assert (r.backend.name, r.source) == ("host", Source.CONFIG)
    assert r.reason == (
        f"config file: {config.path}: models.\"*\" maps '{model_dir}' to 'host'; "
        f"overrides model metadata: {sidecar} asks for 'forge'"
    )


def test_metadata_beats_hardware_detection(model_dir: Path, no_devices: Path) -> None:
    _sidecar(model_dir, "metal")  # hardware would say host; metadata decides and hardware is not consulted
    r = _resolve(locate_model(str(model_dir)), dev_root=no_devices)
    assert (r.backend.name, r.source) == ("metal", Source.METADATA)
    assert r.steps[3].finding == "not consulted: decided by the model metadata"


def test_agreeing_sources_are_not_conflicts(tmp_path: Path, model_dir: Path) -> None:
    config = _config(tmp_path, '[models."*"]\nbackend = "host"\n')
    r = _resolve(locate_model(str(model_dir)), cli="host", config=config)
    assert r.reason == "command line: --backend host"
    assert r.steps[1].finding.endswith("(agrees)")


def test_config_entry_without_backend_does_not_decide(
    tmp_path: Path, model_dir: Path, no_devices: Path
) -> None:
    config = _config(tmp_path, '[models."*"]\nvllm_args = ["--max-model-len", "512"]\n')
    r = _resolve(locate_model(str(model_dir)), config=config, dev_root=no_devices)
    assert r.source is Source.HARDWARE
    assert r.steps[1].finding == f'{config.path}: models."*" matches but sets no backend'
    assert r.config_entry is not None  # its arguments still apply


# --- errors ---------------------------------------------------------------------------------------------


def test_unknown_backend_on_command_line(model_dir: Path) -> None:
    with pytest.raises(ServeError) as error:
        _resolve(locate_model(str(model_dir)), cli="gpu")
    assert error.value.code is ExitCode.RESOLUTION
    assert error.value.message == (
        "--backend names backend 'gpu', which is not in the catalog. Known backends: host, metal, forge."
    )


def test_unknown_backend_in_metadata(model_dir: Path) -> None:
    sidecar = _sidecar(model_dir, "tpu")
    with pytest.raises(ServeError) as error:
        _resolve(locate_model(str(model_dir)))
    assert error.value.message == (
        f"Model metadata {sidecar} names backend 'tpu', which is not in the catalog. "
        "Known backends: host, metal, forge."
    )


def test_malformed_metadata(model_dir: Path) -> None:
    (model_dir / "tt-serve.json").write_text('{"tt_serve": "metal"}')
    with pytest.raises(ServeError) as error:
        _resolve(locate_model(str(model_dir)))
    assert error.value.message == (
        f'Model metadata: {model_dir}/tt-serve.json: "tt_serve" must be an object with a string "backend", '
        "got 'metal'"
    )


# --- the command ------------------------------------------------------------------------------------------


def test_resolve_command_json_and_text(tmp_path: Path, model_dir: Path, tt_serve) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[models."*"]\nbackend = "metal"\n')
    _sidecar(model_dir, "forge")
    done = tt_serve(["resolve", str(model_dir), "--config", str(config), "--json"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["backend"], data["source"], data["distribution"]) == ("metal", "config", "tt-vllm-plugin")
    assert [s["source"] for s in data["steps"]] == ["cli", "config", "metadata", "hardware"]
    assert data["reason"].endswith(f"overrides model metadata: {model_dir}/tt-serve.json asks for 'forge'")

    done = tt_serve(["resolve", str(model_dir), "--backend", "host"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "backend:    host (distribution tt-vllm-plugin, entry point tt)"
    assert lines[2] == "decided by: command line"
    assert lines[5] == "  1. command line        --backend host  <- decides"

    done = tt_serve(["resolve", str(model_dir), "--backend", "gpu"])
    assert done.returncode == ExitCode.RESOLUTION == 4
    assert done.stderr == (
        "tt-serve: error: --backend names backend 'gpu', which is not in the catalog. "
        "Known backends: host, metal, forge.\n"
    )


def test_invalid_metadata_is_ignored_when_a_higher_source_decides(model_dir: Path) -> None:
    """An operator can work around a model's bad metadata with --backend."""
    sidecar = _sidecar(model_dir, "tpu")
    r = _resolve(locate_model(str(model_dir)), cli="host")
    assert r.backend.name == "host"
    assert r.steps[2].finding == (
        f"ignored, invalid: Model metadata {sidecar} names backend 'tpu', which is not in the catalog. "
        "Known backends: host, metal, forge."
    )
