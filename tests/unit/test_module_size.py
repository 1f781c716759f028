"""No module of the plugin is over 400 lines: one job per file, so the next engineer can find and change it.

``serve/`` (tt-serve) is left out: it is moving to a distribution of its own, which keeps its own rules.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tt_vllm_plugin"
LEFT_OUT = PACKAGE / "serve"
MAX_LINES = 400


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def oversized(package: Path, left_out: Path, max_lines: int) -> dict[str, int]:
    """Modules below ``package`` (but not below ``left_out``) longer than ``max_lines``: path -> lines."""
    return {
        str(path.relative_to(package)): lines
        for path in sorted(package.rglob("*.py"))
        if not path.is_relative_to(left_out) and (lines := line_count(path)) > max_lines
    }


def test_the_check_finds_a_long_module_and_skips_the_left_out_folder(tmp_path):
    (tmp_path / "short.py").write_text("x = 1\n" * 3)
    (tmp_path / "long.py").write_text("x = 1\n" * 5)
    (tmp_path / "away").mkdir()
    (tmp_path / "away" / "long.py").write_text("x = 1\n" * 9)
    assert oversized(tmp_path, tmp_path / "away", max_lines=4) == {"long.py": 5}


def test_no_module_is_over_400_lines():
    found = oversized(PACKAGE, LEFT_OUT, MAX_LINES)
    assert not found, "modules over 400 lines: " + ", ".join(f"{p} ({n})" for p, n in found.items())
