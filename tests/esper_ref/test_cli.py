"""``esper-ref train`` / ``evaluate`` end to end through typer's CliRunner (tiny runs)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from typer.testing import CliRunner

from esper_ref.cli import app

runner = CliRunner()


def test_train_evaluate_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--num-envs", "2", "--total-steps", "200", "--seed", "3"]
    res = runner.invoke(app, [*args, "--out-dir", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "done: 200 env steps, 2 updates" in res.output
    for name in ("checkpoint.pt", "metrics.csv", "learning_curve.png"):
        assert (out / name).is_file(), name
    with (out / "metrics.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2

    res = runner.invoke(app, ["evaluate", str(out / "checkpoint.pt"), "--episodes", "2"])
    assert res.exit_code == 0, res.output
    assert re.search(r"mean return: -?\d+\.\d+ .* over 2 episodes", res.output)

    res = runner.invoke(
        app, ["train", "--resume", str(out / "checkpoint.pt"), "--total-steps", "300"]
    )
    assert res.exit_code == 0, res.output
    assert "done: 300 env steps, 3 updates" in res.output
    with (out / "metrics.csv").open() as fh:
        assert [r["update"] for r in csv.DictReader(fh)] == ["1.0", "2.0", "3.0"]


def test_bad_input_is_reported_not_raised(tmp_path: Path) -> None:
    res = runner.invoke(app, ["evaluate", str(tmp_path / "missing.pt")])
    assert res.exit_code == 2
    assert "checkpoint not found" in res.output
    res = runner.invoke(app, ["train", "--num-envs", "0", "--out-dir", str(tmp_path)])
    assert res.exit_code == 2
    assert "num_envs=0" in res.output
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "x.pt"), "--seed", "4"])
    assert res.exit_code == 2
    assert "cannot change seed" in res.output


def test_help_lists_the_commands() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    assert "train" in res.output and "evaluate" in res.output
