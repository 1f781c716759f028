"""The only module that imports ``ttnn``: Tenstorrent hardware detection (device lifecycle lands here too).

ttnn cannot be installed on the machines this project is developed and tested on (its wheels are for
Python 3.10/3.12 and it needs a card), so everything here that touches ttnn is untested in CI.
"""

from __future__ import annotations

import functools


@functools.cache
def ttnn_availability() -> tuple[bool, str]:
    """(usable, reason): ttnn imports and reports at least one device."""
    try:
        import ttnn  # noqa: F401  (untested here: no ttnn on CI machines)
    except Exception as error:  # ImportError, or a broken install raising anything
        return False, f"ttnn is not importable ({type(error).__name__}: {error})"
    try:
        count = int(ttnn.GetNumAvailableDevices())
    except Exception as error:
        return False, f"ttnn could not count devices ({type(error).__name__}: {error})"
    if count < 1:
        return False, "ttnn reports no Tenstorrent devices"
    return True, f"ttnn reports {count} device(s)"
