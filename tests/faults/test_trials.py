"""Randomised kill -9 / concurrency / edit-during-run trials in real processes, on a generated
tree (the logic is ``bench/fault_trials.py``, which runs 100 of them and prints the tally)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from faultlib import temp_files

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _trials_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fault_trials", BENCH / "fault_trials.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fault_trials", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["kill", "concurrent", "edit"])
def test_no_data_is_lost_in_randomised_fault_trials(tmp_path: Path, kind: str) -> None:
    trials = _trials_module()
    tally = trials.run_trials(tmp_path, trials=3, lines=10_000, seed=7, kinds=(kind,))
    assert tally.lost_trials == 0, "\n".join(tally.notes)
    assert tally.partial_files == 0 and tally.lost_edits == 0
    assert tally.concurrent_mismatch == 0 and tally.temp_left_after_rerun == 0
    assert tally.rerun_errors == 0 and tally.rerun_mismatch == 0
    if kind == "edit":
        assert tally.edits_made > 0


@pytest.mark.slow
def test_a_run_killed_in_its_write_phase_is_completed_by_the_next(tmp_path: Path) -> None:
    """SIGKILL right after the first file is replaced, so that the tree is part migrated:
    every file is whole, and the next run finishes, writes all and leaves no temp file."""
    trials = _trials_module()
    ref = trials.prepare(tmp_path, 10_000)
    tally = trials.Tally()

    class InWrite:
        def random(self) -> float:
            return 0.0  # always the write-phase variant

        def uniform(self, a: float, b: float) -> float:
            return 0.0005

    for i in range(3):
        tree = tmp_path / f"t{i}"
        shutil.copytree(ref.base, tree)
        assert not trials.kill_trial(tree, ref, InWrite(), tally, f"in-write#{i}"), tally.notes
        assert temp_files(tree) == []
    assert tally.killed_in_write_phase >= 1
    assert tally.partial_files == 0 and tally.rerun_errors == 0
    assert tally.rerun_mismatch == 0, tally.notes


@pytest.mark.slow
def test_a_rerun_over_a_part_migrated_tree_matches_a_clean_run(tmp_path: Path) -> None:
    """Whether a call already passes the parameter is decided by how its arguments bind, so a
    re-run never passes ``blueprint_indices`` twice where a killed run left the callers done."""
    trials = _trials_module()
    ref = trials.prepare(tmp_path, 10_000)
    tree = tmp_path / "part"
    shutil.copytree(ref.base, tree)
    # What a run killed before it wrote the network modules leaves: their callers pass the
    # argument already, the definitions lack the parameter.
    for rel in ref.changed:
        if "/networks/" not in rel:
            (tree / rel).write_bytes(ref.golden[rel])
    trials._apply(tree)
    assert trials._python_files(tree) == ref.golden
