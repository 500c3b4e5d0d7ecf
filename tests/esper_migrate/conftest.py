"""Shared paths and fixtures for the esper_migrate tests.

The fixture codebases under ``fixtures/`` are users' code, not our tests: pytest must never
collect them (their own tests run in a subprocess from ``test_fixture_codebase.py``).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

collect_ignore_glob = ["fixtures/*"]

FIXTURES = Path(__file__).parent / "fixtures"
PHASE4 = FIXTURES / "phase4"
PHASE4_BEFORE = PHASE4 / "before"
PHASE4_AFTER = PHASE4 / "after"
PHASE4_PARTIAL = PHASE4 / "partial"

# `# planted: EM001` or `# planted: EM001, EM004` at the end of a line check must report.
PLANTED_RE = re.compile(r"#\s*planted:\s*(EM\d{3}(?:\s*,\s*EM\d{3})*)\s*$")
LOOKALIKE_RE = re.compile(r"#\s*look-alike\b")

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".esper_migrate_cache")


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy a fixture tree without caches; ``dest`` must not exist."""
    shutil.copytree(src, dest, ignore=_IGNORED)
    return dest


def read_markers(root: Path) -> tuple[dict[tuple[str, int], frozenset[str]], set[tuple[str, int]]]:
    """(planted codes by (posix relative path, 1-based line), look-alike lines) under ``root``."""
    planted: dict[tuple[str, int], frozenset[str]] = {}
    lookalikes: set[tuple[str, int]] = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = PLANTED_RE.search(line)
            if match:
                codes = frozenset(c.strip() for c in match.group(1).split(","))
                planted[(rel, lineno)] = codes
            if LOOKALIKE_RE.search(line):
                lookalikes.add((rel, lineno))
    return planted, lookalikes


@pytest.fixture
def fixture_copy(tmp_path: Path) -> Callable[[str], Path]:
    """``fixture_copy("before")`` -> a private copy of fixtures/phase4/before under tmp_path."""

    def make(name: str) -> Path:
        return copy_tree(PHASE4 / name, tmp_path / name)

    return make


@pytest.fixture(scope="session")
def partial_markers() -> tuple[dict[tuple[str, int], frozenset[str]], set[tuple[str, int]]]:
    """Planted findings and look-alike lines of fixtures/phase4/partial (see read_markers)."""
    return read_markers(PHASE4_PARTIAL)
