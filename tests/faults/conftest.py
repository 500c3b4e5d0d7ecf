"""The fault suite: ``faultlib`` (its helpers) is importable from its tests, and a ``tree``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The tests import with --import-mode=importlib, which puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from faultlib import NET, make_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A project with a config table and two files to migrate."""
    return make_tree(
        tmp_path / "proj",
        {"pyproject.toml": "[tool.esper-migrate]\n", "src/a.py": NET, "src/b.py": NET},
    )
