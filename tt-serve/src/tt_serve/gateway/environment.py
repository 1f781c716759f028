"""The environment an engine (and tt-serve's preparation of it) runs under: the gateway's, by a rule.

The gateway holds secrets an engine must never see (its admin token above all: an engine runs plugin
code, and a plugin that can read the token can swap or remove every model). The rule, in order:

1. tt-serve's gateway-only variables are dropped, always: ``TT_SERVE_ADMIN_TOKEN``, ``TT_SERVE_CONFIG``
   (the gateway passes ``--config`` itself) and ``TT_SERVE_GATEWAY``;
2. a variable matching one of ``[gateway] engine_env_drop`` (globs) is dropped;
3. a variable with a secret name (``secrets.is_secret_name``: ``*_TOKEN``, ``*_KEY``, ``*SECRET*``,
   ``*PASSWORD*`` ... as whole words) is dropped unless it matches ``[gateway] engine_env_keep``
   (default: ``HF_TOKEN`` and ``HUGGING_FACE_HUB_TOKEN``, which an engine needs to download a gated model);
4. everything else passes (PATH, HOME, LD_LIBRARY_PATH, tt-metal's and vLLM's settings ...).

On top come the model's own ``env`` table (the operator named those for that engine, secrets included),
then what ``tt-serve serve`` plans (the backend's variables, narrowing's PYTHONPATH) and the status file.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from tt_serve import envs
from tt_serve.gateway.secrets import is_secret_name

GATEWAY_ONLY = frozenset(
    {envs.TT_SERVE_ADMIN_TOKEN.name, envs.TT_SERVE_CONFIG.name, envs.TT_SERVE_GATEWAY.name}
)
DEFAULT_KEEP = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class EngineEnvRule:
    drop: tuple[str, ...] = ()  # globs, [gateway] engine_env_drop
    keep: tuple[str, ...] = DEFAULT_KEEP  # globs, [gateway] engine_env_keep (replaces the default)

    def why_dropped(self, name: str) -> str | None:
        """Which step of the rule drops ``name`` (for messages and tests), or None if it passes."""
        if name in GATEWAY_ONLY:
            return "tt-serve's gateway-only variable"
        if _matches(name, self.drop):
            return "matches [gateway] engine_env_drop"
        if is_secret_name(name) and not _matches(name, self.keep):
            return "a secret name not in [gateway] engine_env_keep"
        return None

    def is_secret(self, name: str) -> bool:
        """Whether the gateway hides ``name``'s value wherever it shows text (kept or not)."""
        return is_secret_name(name) or _matches(name, self.drop)

    def apply(self, environ: Mapping[str, str]) -> dict[str, str]:
        return {name: value for name, value in environ.items() if self.why_dropped(name) is None}
