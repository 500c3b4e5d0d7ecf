"""Run folders and files: claims that never collide, CSV cells, checkpoint errors."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from esper_ref.run_io import (
    CsvLog,
    RunFolderError,
    claim_out_dir,
    load_checkpoint,
    next_run_dir,
)


def test_run_names_count_up_and_skip_what_exists(tmp_path: Path) -> None:
    assert next_run_dir(tmp_path, "x").name == "x-1"
    (tmp_path / "x-7").mkdir()
    (tmp_path / "x-y").mkdir()
    assert next_run_dir(tmp_path, "x").name == "x-8"
    assert next_run_dir(tmp_path, "other").name == "other-1"
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match="is a file"):
        next_run_dir(tmp_path / "file", "x")


def test_runs_started_together_get_different_folders(tmp_path: Path) -> None:
    """Four real processes claim a run folder at the same moment: four folders."""
    go = tmp_path / "go"
    root = tmp_path / "runs"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from esper_ref.run_io import next_run_dir
        print("ready", flush=True)
        while not Path({str(go)!r}).exists():
            pass
        print(next_run_dir(Path({str(root)!r}), "race").name)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    names = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(names) == [f"race-{i}" for i in range(1, 5)]


def test_claim_refuses_runs_and_foreign_folders(tmp_path: Path) -> None:
    run = claim_out_dir(tmp_path / "run")
    assert (run / "config.json").is_file()
    (run / "metrics.csv").write_text("update\n1\n")
    (run / "mine.txt").write_text("notes")
    with pytest.raises(RunFolderError, match="holds a run already"):
        claim_out_dir(run)
    claim_out_dir(run, overwrite=True)
    assert not (run / "metrics.csv").exists()
    assert (run / "mine.txt").read_text() == "notes"  # only the run's own files go
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.txt").write_text("")
    with pytest.raises(RunFolderError, match="not an esper-ref run folder"):
        claim_out_dir(foreign, overwrite=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_out_dir(empty) == empty


def test_csv_cells_integers_and_missing_values(tmp_path: Path) -> None:
    log = CsvLog(tmp_path / "m.csv", ("update", "global_step", "episode_return_mean", "wall_time"))
    log.append({"update": 1.0, "global_step": 800.0, "episode_return_mean": math.nan})
    log.append({"update": 2, "global_step": 1600, "episode_return_mean": 1.25, "wall_time": 0.5})
    text = (tmp_path / "m.csv").read_text().splitlines()
    assert text == [
        "update,global_step,episode_return_mean,wall_time",
        "1,800,,",
        "2,1600,1.25,0.5",
    ]
    log.keep_until(1)
    assert [r["update"] for r in log.read()] == ["1"]


def test_checkpoint_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="is a folder"):
        load_checkpoint(tmp_path)
    torch.save({"format": 2, "config": {}}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="lacks policy, obs_rms"):
        load_checkpoint(tmp_path / "partial.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="got format 'list'"):
        load_checkpoint(tmp_path / "list.pt")
