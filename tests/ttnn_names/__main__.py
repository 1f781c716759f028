"""``.venv-ttnn/bin/python -m tests.ttnn_names``: every ttnn name and call our code uses, and what the
installed ttnn has there (kind, module, signature)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.ttnn_names.live import Found, LiveNames, call_problems, check, signatures
from tests.ttnn_names.used import collect, option_uses
from tt_vllm_plugin import options


def main() -> int:
    import ttnn  # only in an environment that has it (.venv-ttnn)

    collected = collect(Path(__file__).resolve().parents[2] / "src")
    names = LiveNames(ttnn)
    report = check(
        names, [*collected.uses, *option_uses(options, "src/tt_vllm_plugin/options.py")], collected
    )
    by_name: dict[str, list[str]] = {}
    found: dict[str, Found] = {}
    for use, hit in report.checked:
        by_name.setdefault(use.name, []).append(f"{use.where} ({use.how})")
        found[use.name] = hit
    print(f"{len(by_name)} ttnn names checked against the installed ttnn ({ttnn.__file__}):")
    for name in sorted(by_name):
        hit = found[name]
        sigs = " | ".join(map(str, signatures(hit.obj))) if hit.kind in ("function", "class") else ""
        print(f"  {name}  [{hit.kind} in {hit.where}] {sigs}\n      used at  {'; '.join(by_name[name])}")
    problems = [*map(str, report.problems), *call_problems(names, collected.calls)]
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
