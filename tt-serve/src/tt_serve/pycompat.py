"""Standard-library pieces newer than Python 3.10 (tt-metal's python_env may be 3.10; so may tt-serve's).

The same few lines as the plugin's ``pycompat``: the two distributions do not import each other.
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

    import tomllib  # novermin (3.11+ branch)
else:
    import tomli as tomllib  # the backport the pyproject's marker installs on 3.10

    StrEnum = StrEnumBackport


__all__ = ["StrEnum", "StrEnumBackport", "tomllib"]
