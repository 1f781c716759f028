"""The server config file: TOML and YAML, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tt_serve.catalog import HardwareNeed
from tt_serve.config import args_from_mapping, load_config
from tt_serve.errors import ExitCode, ServeError

TOML = """
[models."smollm2-135m-instruct"]
backend = "host"
vllm_args = ["--max-model-len", "2048"]
tt = { kv_cache_tokens = 8192 }
env = { MESH_DEVICE = "N150" }

[models."meta-llama/*"]
backend = "forge-nightly"
vllm_args = { max-model-len = 4096, enforce-eager = true }

[backends.forge-nightly]
distribution = "vllm_tt"
vllm = "==0.26.0"
hardware = "tenstorrent"

[trust]
allow = ["tt-vllm-plugin"]
[trust.pins.vllm_tt]
version = "==0.9.0"
"""

YAML = """
models:
  smollm2-135m-instruct:
    backend: host
    vllm_args: ["--max-model-len", "2048"]
    tt: {kv_cache_tokens: 8192}
    env: {MESH_DEVICE: N150}
  meta-llama/*:
    backend: forge-nightly
    vllm_args: {max-model-len: 4096, enforce-eager: true}
backends:
  forge-nightly:
    distribution: vllm_tt
    vllm: "==0.26.0"
    hardware: tenstorrent
trust:
  allow: [tt-vllm-plugin]
  pins:
    vllm_tt: {version: "==0.9.0"}
"""


@pytest.mark.parametrize(("name", "text"), [("serve.toml", TOML), ("serve.yaml", YAML)])
def test_toml_and_yaml_load_the_same(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    config = load_config(path)
    small, llama = config.models
    assert (small.pattern, small.backend, small.vllm_args) == (
        "smollm2-135m-instruct",
        "host",
        ("--max-model-len", "2048"),
    )
    assert (dict(small.tt), dict(small.env)) == ({"kv_cache_tokens": 8192}, {"MESH_DEVICE": "N150"})
    assert llama.vllm_args == ("--max-model-len", "4096", "--enforce-eager")
    backend = config.catalog()["forge-nightly"]
    assert (backend.distribution, backend.entry_point, backend.vllm, backend.hardware) == (
        "vllm_tt",
        "tt",
        "==0.26.0",
        HardwareNeed.TENSTORRENT,
    )
    assert backend.origin == f"config file {path}"
    assert list(config.catalog()) == ["host", "metal", "forge", "forge-nightly"]
    assert config.trust.allow == ("tt-vllm-plugin",)
    assert config.trust.pins["vllm_tt"].version == "==0.9.0"
    assert config.match("meta-llama/Llama-3.1-8B").pattern == "meta-llama/*"
    assert config.match("Qwen/Qwen3") is None


def test_args_from_mapping() -> None:
    assert args_from_mapping(
        {
            "max-model-len": 2048,
            "--port": 8001,
            "enforce-eager": True,
            "enable-prefix-caching": False,
            "served-model-name": ["a", "b"],
            "additional-config": {"tt": {"trace_mode": "none"}},
            "skip": None,
        }
    ) == [
        "--max-model-len",
        "2048",
        "--port",
        "8001",
        "--enforce-eager",
        "--no-enable-prefix-caching",
        "--served-model-name",
        "a",
        "b",
        "--additional-config",
        '{"tt": {"trace_mode": "none"}}',
    ]


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        (
            "c.toml",
            'model = "x"\n',
            "model: unknown key; allowed keys here: backends, gateway, models, trust",
        ),
        (
            "c.toml",
            '[models."a/*"]\nbackend = 3\n',
            'models."a/*".backend: must be a non-empty string, got int 3',
        ),
        (
            "c.toml",
            '[models."a/*"]\nbakend = "host"\n',
            'models."a/*".bakend: unknown key; allowed keys here: backend, env, tt, vllm_args',
        ),
        (
            "c.toml",
            '[models."a/*"]\nbackend = "gpu"\n',
            "models.\"a/*\".backend: 'gpu' is not a known backend. Known backends: host, metal, forge",
        ),
        (
            "c.toml",
            '[models.x]\nvllm_args = "--port 1"\n',
            "models.x.vllm_args: must be a list of arguments or a table, got str '--port 1'",
        ),
        ("c.toml", "[models.x]\nenv = { A = 1 }\n", "models.x.env.A: must be a string, got int 1"),
        ("c.toml", '[backends.b]\ndistribution = "d"\n', "backends.b.hardware: is required"),
        (
            "c.toml",
            '[backends.b]\ndistribution = "d"\nhardware = "gpu"\n',
            "backends.b.hardware: must be one of 'none', 'tenstorrent', got 'gpu'",
        ),
        (
            "c.toml",
            '[backends.b]\ndistribution = "d"\nhardware = "none"\nvllm = "0.32"\n',
            "backends.b.vllm: '0.32' is not a version specifier (e.g. '>=0.32,<0.33')",
        ),
        (
            "c.toml",
            '[trust]\nallow = "vllm_tt"\n',
            "trust.allow: must be a list of distribution names, got str 'vllm_tt'",
        ),
        (
            "c.toml",
            '[trust.pins.vllm_tt]\nrecord_sha256 = "abc"\n',
            "trust.pins.vllm_tt.record_sha256: must be 64 hexadecimal digits (a SHA-256)",
        ),
        ("c.yaml", "- a\n- b\n", "(top level): must be a table/mapping, got list ['a', 'b']"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ServeError) as error:
        load_config(path)
    assert error.value.code is ExitCode.CONFIG
    assert error.value.message == f"{path}: {problem}"


def test_unparsable_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[models\n")
    with pytest.raises(ServeError, match=rf"^{bad}: invalid TOML: "):
        load_config(bad)
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("models: [\n")
    with pytest.raises(ServeError, match=rf"^{bad_yaml}: invalid YAML: "):
        load_config(bad_yaml)
    other = tmp_path / "c.json"
    other.write_text("{}")
    with pytest.raises(ServeError) as error:
        load_config(other)
    assert error.value.message == f"{other}: unknown config file type '.json'; use .toml, .yaml or .yml"
    with pytest.raises(ServeError) as error:
        load_config(tmp_path / "absent.toml")
    assert (
        error.value.message
        == f"{tmp_path / 'absent.toml'}: cannot read the config file: No such file or directory"
    )


def test_config_error_exit_status(tmp_path: Path, tt_serve) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[models."*"]\nbackend = "gpu"\n')
    done = tt_serve(["serve", "m", "--config", str(path), "--dry-run"])
    assert done.returncode == ExitCode.CONFIG == 3
    assert done.stderr == (
        f"tt-serve: error: {path}: models.\"*\".backend: 'gpu' is not a known backend. "
        "Known backends: host, metal, forge\n"
    )
    # TT_SERVE_CONFIG is the default for --config.
    done = tt_serve(["resolve", "m"], env={"TT_SERVE_CONFIG": str(path)})
    assert done.returncode == 3


def test_a_catalog_backend_table_changes_only_the_keys_it_names(tmp_path: Path, monkeypatch):
    """[backends.host] with python alone keeps everything else of host; relative paths are the file's."""
    path = tmp_path / "conf" / "serve.toml"
    path.parent.mkdir()
    path.write_text(
        '[backends.host]\npython = "../envs/host/bin/python"\n\n'
        '[backends.metal]\npython = "$TT_TEST_HOME/python_env/bin/python"\nexclusive_device = false\n'
    )
    monkeypatch.setenv("TT_TEST_HOME", "/opt/tt-metal")
    catalog = load_config(path).catalog()
    host, metal, forge = catalog["host"], catalog["metal"], catalog["forge"]
    assert host.python == str(tmp_path / "envs" / "host" / "bin" / "python")
    assert (host.distribution, host.env, host.exclusive_device) == (
        "tt-vllm-plugin",
        {"TT_VLLM_DEVICE": "host"},
        False,
    )
    assert host.hardware is HardwareNeed.NONE and host.origin == f"built-in, changed by config file {path}"
    assert metal.python == "/opt/tt-metal/python_env/bin/python" and metal.exclusive_device is False
    assert metal.env == {"TT_VLLM_DEVICE": "ttnn"}
    assert forge.exclusive_device is True and forge.python is None


def test_exclusive_device_must_be_a_boolean(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[backends.host]\nexclusive_device = "yes"\n')
    with pytest.raises(ServeError) as caught:
        load_config(path)
    expected = f"{path}: backends.host.exclusive_device: must be true or false, got str 'yes'"
    assert str(caught.value) == expected
