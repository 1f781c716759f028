"""What the gateway treats as secret, and how it hides it wherever it shows something.

A name is secret when one of its words (split on ``_`` and ``-``, case ignored) is ``TOKEN``, ``KEY``,
``PASS``, ``AUTH`` or ``COOKIE``, or when it contains ``SECRET``, ``PASSWORD``, ``PASSWD``, ``CREDENTIAL``
or ``APIKEY`` anywhere. So ``HF_TOKEN``, ``VLLM_API_KEY``, ``AWS_SECRET_ACCESS_KEY``, ``PGPASSWORD``,
``--api-key`` and ``--hf-token`` are secret, while ``TOKENIZERS_PARALLELISM``, ``PYTHON_KEYRING_BACKEND``,
``--tokenizer`` and ``--max-num-batched-tokens`` are not (``TOKEN`` and ``KEY`` as whole words only: as
substrings they would starve the engines of settings they need).

Hidden in three ways: an engine argument that is a secret option has its value(s) shown as
:data:`PLACEHOLDER`; every secret value the gateway knows of (secret-named variables of its own
environment, the admin token, secret engine arguments) is replaced by the placeholder in any text it
shows (events, errors, engine log tails); and a swap that sends the placeholder back (the console
pre-fills a swap with the arguments it was shown) keeps the engine's current value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

PLACEHOLDER = "***"
SECRET_WORDS = frozenset({"TOKEN", "KEY", "PASS", "AUTH", "COOKIE"})
SECRET_PARTS = ("SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "APIKEY")
# Secret although no word says so: vLLM's own log redaction treats it as one (it holds a watermark key).
SECRET_OPTIONS = frozenset({"--watermark-config"})
MIN_SCRUBBED_LENGTH = 6  # shorter values ("true", "none") would blank ordinary words out of messages
_WORD_SPLIT = re.compile(r"[_\-]+")


def is_secret_name(name: str) -> bool:
    """True for an environment variable or option name that carries a secret (see the module doc)."""
    upper = name.strip("-").upper()
    return any(word in SECRET_WORDS for word in _WORD_SPLIT.split(upper)) or any(
        part in upper for part in SECRET_PARTS
    )


def _option(arg: str) -> str | None:
    """The canonical option name of ``arg`` ("--api-key" for "--api_key=x"), or None for a value."""
    if not arg.startswith("--") or arg == "--":
        return None
    return arg.split("=", 1)[0].replace("_", "-")


def is_secret_option(option: str) -> bool:
    return option in SECRET_OPTIONS or is_secret_name(option)


def _secrets(args: Sequence[str]) -> list[tuple[int, str, str, bool]]:
    """Each secret value in ``args``: (index, its option, the value, whether written ``--opt=value``).

    A secret ``--opt`` owns the values that follow it up to the next option (vLLM's ``--api-key``
    takes several); ``--opt=value`` carries its one value itself.
    """
    found: list[tuple[int, str, str, bool]] = []
    owner: str | None = None
    for i, arg in enumerate(args):
        option = _option(arg)
        if option is not None:
            owner = option if is_secret_option(option) else None
            if owner is not None and "=" in arg:
                found.append((i, owner, arg.split("=", 1)[1], True))
                owner = None
        elif owner is not None:
            found.append((i, owner, arg, False))
    return found


def redact_args(args: Sequence[str]) -> list[str]:
    """``args`` with every secret value replaced by the placeholder (same length, same positions)."""
    shown = list(args)
    for i, option, _value, inline in _secrets(args):
        shown[i] = f"{option}={PLACEHOLDER}" if inline else PLACEHOLDER
    return shown


def secret_arg_values(args: Sequence[str]) -> list[str]:
    return [value for _i, _option, value, _inline in _secrets(args)]


def restore_redacted(new_args: Sequence[str], current_args: Sequence[str]) -> list[str]:
    """``new_args`` with each placeholder put back to the current value of the same option.

    The console fills a swap form with the (redacted) arguments it shows; sending them back unchanged
    must keep the secret, not set it to "***". Raises ValueError for a placeholder with nothing to keep.
    """
    current: dict[str, list[str]] = {}
    for _i, option, value, _inline in _secrets(current_args):
        current.setdefault(option, []).append(value)
    restored = list(new_args)
    used: dict[str, int] = {}
    for i, option, value, inline in _secrets(new_args):
        if value != PLACEHOLDER:
            continue
        known = current.get(option, [])
        n = used.get(option, 0)
        if n >= len(known):
            raise ValueError(
                f"{option} is given as {PLACEHOLDER!r} (the redacted value) but the model's current engine "
                "arguments have no value to keep for it; give the real value"
            )
        used[option] = n + 1
        restored[i] = f"{option}={known[n]}" if inline else known[n]
    return restored


def secret_env_values(environ: Mapping[str, str], names: Iterable[str] = ()) -> list[str]:
    """The values of ``environ``'s secret-named variables, and of the variables in ``names``."""
    wanted = set(names)
    return [value for name, value in environ.items() if name in wanted or is_secret_name(name)]


class Redactor:
    """Every secret value the gateway knows of, replaced in the text it shows."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def add(self, *values: str | None) -> None:
        fresh = {v for v in values if v and len(v) >= MIN_SCRUBBED_LENGTH} - self._values
        if fresh:
            self._values |= fresh
            # Longest first: a secret that contains another is hidden whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def text(self, text: str) -> str:
        return self._pattern.sub(PLACEHOLDER, text) if self._pattern is not None and text else text
