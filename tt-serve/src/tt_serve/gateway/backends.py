"""``GET /admin/api/backends``: exactly what ``tt-serve backends --json`` prints, by running it.

A child process rather than a call: the inventory reads installed distributions' metadata, which a
long-running gateway must see fresh (a plugin installed since the gateway started), and importlib's
metadata caches would otherwise keep the old view.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tt_serve.gateway.environment import EngineEnvRule
from tt_serve.gateway.manager import GatewayError


async def backends_report(config_path: Path | None, env_rule: EngineEnvRule) -> dict[str, object]:
    command = [sys.executable, "-m", "tt_serve.cli", "backends", "--json"]
    if config_path is not None:
        command += ["--config", str(config_path)]
    env = env_rule.apply(os.environ)  # the inventory probes plugins: no secret of the gateway for them
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    if process.returncode != 0:
        why = err.decode(errors="replace").strip()
        raise GatewayError(500, f"tt-serve backends failed: {why}", "APIError")
    return json.loads(out)
