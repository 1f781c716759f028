"""No module of the plugin or of tt-serve is over 400 lines: one job per file, so the next engineer can
find and change it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (ROOT / "src" / "tt_vllm_plugin", ROOT / "tt-serve" / "src" / "tt_serve")
MAX_LINES = 400


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def oversized(package: Path, max_lines: int) -> dict[str, int]:
    """Modules below ``package`` longer than ``max_lines``: path -> lines."""
    return {
        str(path.relative_to(package.parent)): lines
        for path in sorted(package.rglob("*.py"))
        if (lines := line_count(path)) > max_lines
    }


def test_the_check_finds_a_long_module(tmp_path):
    (tmp_path / "short.py").write_text("x = 1\n" * 3)
    (tmp_path / "long.py").write_text("x = 1\n" * 5)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "long.py").write_text("x = 1\n" * 9)
    assert oversized(tmp_path, max_lines=4) == {
        f"{tmp_path.name}/long.py": 5,
        f"{tmp_path.name}/sub/long.py": 9,
    }


def test_no_module_is_over_400_lines():
    found = {path: n for package in PACKAGES for path, n in oversized(package, MAX_LINES).items()}
    assert not found, "modules over 400 lines: " + ", ".join(f"{p} ({n})" for p, n in found.items())
