"""Standard-library pieces newer than Python 3.10, the oldest Python a Tenstorrent host runs.

tt-metal's ``python_env`` is Python 3.10 (Ubuntu 22.04) or 3.12 (Ubuntu 24.04): ttnn ships only cp310
and cp312 wheels. Everything the package needs from 3.11's standard library comes from here, so
the rest of the code reads the same on every Python (CI checks the package with vermin --target=3.10-).
vLLM API differences are not here: those live in :mod:`tt_vllm_plugin.compat`.
"""

from __future__ import annotations

import sys
from enum import Enum


class StrEnumBackport(str, Enum):
    """3.11's enum.StrEnum for 3.10: members are strings, and str()/format() give the value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)


if sys.version_info >= (3, 11):
    from enum import StrEnum  # novermin (3.11+ branch)
else:
    StrEnum = StrEnumBackport


__all__ = ["StrEnum", "StrEnumBackport"]
