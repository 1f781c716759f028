"""``python -m tests.ttnn_names``: every ttnn name our code uses, and where the real wheel defines it."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.ttnn_names.used import check, collect, option_uses
from tests.ttnn_names.wheel import TTNN_VERSION, WheelNames, fetch_wheel
from tt_vllm_plugin import options


def main() -> int:
    root = Path(__file__).resolve().parents[2]
    collected = collect(root / "src")
    report = check(
        WheelNames(fetch_wheel()),
        [*collected.uses, *option_uses(options, "src/tt_vllm_plugin/options.py")],
        collected,
    )
    by_name: dict[str, list[str]] = {}
    defined: dict[str, str] = {}
    for use, found in report.checked:
        by_name.setdefault(use.name, []).append(f"{use.where} ({use.how})")
        defined[use.name] = f"{found.kind}: {found.where}"
    print(f"{len(by_name)} ttnn names checked against ttnn {TTNN_VERSION}:")
    for name in sorted(by_name):
        print(f"  {name}\n      used at  {'; '.join(by_name[name])}\n      defined  {defined[name]}")
    for problem in report.problems:
        print(f"MISSING {problem}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
