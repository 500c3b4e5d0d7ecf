"""The worked spec examples under ``docs/specs/``: apply writes the golden ``after/`` byte for
byte, a second run changes nothing, check passes on what apply wrote, and each example's own
tests pass before and after."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from esper_migrate.engine import run_apply
from esper_migrate.spec import builtin_spec_text, load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "specs"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "before").is_dir())
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".esper_migrate_cache")


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {"__pycache__", ".pytest_cache"} & set(p.relative_to(root).parts)
    }


def _pytest(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_phase4_example_is_the_builtin_spec() -> None:
    assert (EXAMPLES / "phase4" / "spec.toml").read_text(encoding="utf-8") == builtin_spec_text()


def test_every_example_is_picked_up() -> None:
    assert {"optional_config", "two_parameters", "placements"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_example_apply_writes_the_golden_tree(name: str, tmp_path: Path) -> None:
    example = EXAMPLES / name
    spec = load_spec(example / "spec.toml")
    tree = tmp_path / "tree"
    shutil.copytree(example / "before", tree, ignore=_IGNORED)
    before = _pytest(tree)
    assert before.returncode == 0, before.stdout[-3000:]
    result = run_apply([tree], spec)
    assert not result.errors and not result.unresolved, (result.errors, result.unresolved)
    for r in result.changed:
        Path(r.path).write_bytes(r.new)
    assert _files(tree) == _files(example / "after")
    again = run_apply([tree], spec)
    assert again.changed == [] and again.unresolved == []
    after = _pytest(tree)
    assert after.returncode == 0, after.stdout[-3000:]
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "esper_migrate",
            "check",
            "--no-cache",
            "--spec",
            str(example / "spec.toml"),
            ".",
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("two_parameters", ("temperature", "availability_masks")),
        ("placements", ("rng", "reduction")),
    ],
)
def test_check_reports_every_parameter_of_a_spec(
    name: str, parameters: tuple[str, str], tmp_path: Path
) -> None:
    import json

    example = EXAMPLES / name
    tree = tmp_path / "tree"
    shutil.copytree(example / "before", tree, ignore=_IGNORED)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "esper_migrate",
            "check",
            "--format",
            "json",
            "--spec",
            str(example / "spec.toml"),
            ".",
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    rows = json.loads(proc.stdout)
    rows = rows if isinstance(rows, list) else rows["findings"]
    messages = " ".join(str(r["message"]) for r in rows)
    assert all(f"`{p}`" in messages for p in parameters), messages
    # The same findings as apply plans, for both parameters, one per root cause.
    planned = run_apply([tree], load_spec(example / "spec.toml"))
    assert len(rows) == sum(len(r.plan.units) for r in planned.results)
