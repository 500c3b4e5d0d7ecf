"""The promise, on every fixture codebase (each ``fixtures/<name>/`` with ``before/`` and a
golden ``after/``): apply writes the golden tree byte for byte, the fixture's own tests pass on
what apply wrote, and check on the migrated tree reports exactly the sites apply left
unresolved, no more and no fewer.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from esper_migrate.check import CheckOptions, run_check
from esper_migrate.engine import run_apply
from esper_migrate.formats import OutputFormat
from esper_migrate.rule import all_rules
from esper_migrate.safe_write import write_if_unchanged
from esper_migrate.spec import load_spec

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = sorted(
    p.name for p in FIXTURES.iterdir() if (p / "before").is_dir() and (p / "after").is_dir()
)
SPEC = load_spec()
#: Codes apply plans (lint-only codes report what apply cannot express, not its leftovers).
PLANNED = {str(r.CODE) for r in all_rules() if r.PLANS}
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".esper_migrate_cache")


def test_every_fixture_is_picked_up() -> None:
    assert "phase4" in NAMES


def _py_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*.py"))
        if not {"__pycache__", ".pytest_cache"} & set(p.relative_to(root).parts)
    }


@pytest.fixture(scope="module", params=NAMES)
def migrated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, list[tuple[str, int, int, str, str]]]:
    """(fixture name, a copy of before/ migrated by apply, apply's unresolved sites)."""
    name = request.param
    tree = tmp_path_factory.mktemp(name) / "tree"
    shutil.copytree(FIXTURES / name / "before", tree, ignore=_IGNORED)
    result = run_apply([tree], SPEC)
    assert not result.errors, result.errors
    for r in result.changed:
        write_if_unchanged(Path(r.path), r.original, r.new)
    unresolved = [
        (Path(u.path).relative_to(tree).as_posix(), u.line, u.col + 1, str(u.code), u.message)
        for u in result.unresolved
    ]
    return name, tree, unresolved


def test_apply_writes_the_golden_tree(
    migrated: tuple[str, Path, list[tuple[str, int, int, str, str]]],
) -> None:
    name, tree, _ = migrated
    assert _py_files(tree) == _py_files(FIXTURES / name / "after")


def _check(tree: Path) -> list[dict[str, object]]:
    cwd = os.getcwd()
    os.chdir(tree)
    try:
        out, err = io.StringIO(), io.StringIO()
        code = run_check(
            CheckOptions(paths=(Path("."),), fmt=OutputFormat.JSON, use_cache=False), out, err
        )
    finally:
        os.chdir(cwd)
    assert code in (0, 1), err.getvalue()
    rows: list[dict[str, object]] = json.loads(out.getvalue())
    assert (code == 1) == bool(rows)
    return rows


def test_check_on_the_migrated_tree_is_exactly_what_apply_left(
    migrated: tuple[str, Path, list[tuple[str, int, int, str, str]]],
) -> None:
    _, tree, unresolved = migrated
    rows = _check(tree)
    # The same root causes, by file, code and message (apply reports lines as it read them).
    assert Counter((str(r["path"]), str(r["code"]), str(r["message"])) for r in rows) == Counter(
        (path, code, message) for path, _, _, code, message in unresolved
    )
    assert all(r["fix"] is None and r["unfixable_reason"] for r in rows), rows
    assert {str(r["code"]) for r in rows} <= PLANNED
    # And at the migrated tree's own lines: apply run again there plans nothing and reports
    # exactly check's sites.
    again = run_apply([tree], SPEC)
    assert again.changed == []
    assert sorted(
        (Path(u.path).relative_to(tree).as_posix(), u.line, u.col + 1, str(u.code))
        for u in again.unresolved
    ) == sorted(
        (str(r["path"]), int(str(r["line"])), int(str(r["col"])), str(r["code"])) for r in rows
    )


def test_the_fixture_tests_pass_on_what_apply_wrote(
    migrated: tuple[str, Path, list[tuple[str, int, int, str, str]]],
) -> None:
    _, tree, _ = migrated
    env = dict(os.environ)
    src = tree / "src"
    env["PYTHONPATH"] = str(src if src.is_dir() else tree)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
