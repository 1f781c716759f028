"""Reading a tt-serve config file's values: each check names the file and the key in its error.

Shared by ``config.py`` (models, backends, trust) and ``gateway/settings.py`` (the ``[gateway]``
section), which therefore do not import each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tt_serve.errors import ExitCode, ServeError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key_path(prefix: str, *parts: str) -> str:
    """``prefix`` (already a key path) extended by raw names, quoted as TOML quotes them."""
    return ".".join([prefix, *(p if _BARE_KEY.match(p) else json.dumps(p) for p in parts)])


class ConfigReader:
    """Validation helpers that put the file and the key into every message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ServeError:
        return ServeError(f"{self.path}: {key}: {problem}", ExitCode.CONFIG)

    def table(self, value: Any, key: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key or "(top level)", f"must be a table/mapping, got {kind(value)}")
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise self.fail(
                    key_path(key, unknown[0]) if key else unknown[0],
                    f"unknown key; allowed keys here: {', '.join(sorted(allowed))}",
                )
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"must be a non-empty string, got {kind(value)}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {kind(value)}")
        return value

    def string_map(self, value: Any, key: str) -> dict[str, str]:
        table = self.table(value, key)
        for name, item in table.items():
            if not isinstance(item, str):
                raise self.fail(key_path(key, name), f"must be a string, got {kind(item)}")
        return dict(table)

    def specifier(self, value: Any, key: str) -> str:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        text = self.string(value, key)
        try:
            SpecifierSet(text)
        except InvalidSpecifier:
            raise self.fail(key, f"{text!r} is not a version specifier (e.g. '>=0.32,<0.33')") from None
        return text


def kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def args_from_mapping(values: Mapping[str, Any]) -> list[str]:
    """``{max-model-len: 2048, enforce-eager: true, x: false}`` -> vLLM command-line arguments."""
    args: list[str] = []
    for name, value in values.items():
        flag = name if name.startswith("-") else f"--{name}"
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + flag.lstrip("-"))  # vLLM's boolean flags take --no-<name>
        elif isinstance(value, list):
            args += [flag, *(str(v) for v in value)]
        elif isinstance(value, dict):
            args += [flag, json.dumps(value)]
        elif value is not None:
            args += [flag, str(value)]
    return args
