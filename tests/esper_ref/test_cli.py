"""``esper-ref train`` / ``evaluate`` end to end through typer's CliRunner (tiny runs)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from esper_ref.cli import app
from esper_ref.config import TrainConfig

runner = CliRunner()

TINY = [
    "--num-envs", "2", "--num-steps", "50", "--feature-dim", "16", "--lstm-hidden-dim", "16",
    "--head-hidden-dim", "16", "--value-hidden-dim", "16", "--update-epochs", "2",
    "--num-minibatches", "2", "--eval-every", "1", "--eval-episodes", "4",
    "--final-eval-episodes", "8", "--log-every", "1",
]  # fmt: skip


def train(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["train", *TINY, *args])
    assert "Traceback" not in res.output, res.output
    return res.exit_code, res.output


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_runs_get_their_own_folders_and_never_replace_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = train("--total-steps", "200", "--seed", "1")
    assert code == 0, out
    first = tmp_path / "runs" / "esper-ref-1"
    assert "run folder: runs/esper-ref-1" in out
    saved = (first / "checkpoint.pt").read_bytes()
    code, out = train("--total-steps", "100", "--seed", "2")
    assert code == 0, out
    assert (tmp_path / "runs" / "esper-ref-2" / "checkpoint.pt").is_file()
    assert (first / "checkpoint.pt").read_bytes() == saved
    assert [r["update"] for r in rows(first / "metrics.csv")] == ["1", "2"]

    # An explicit --out-dir that holds a run is refused, and nothing in it changes.
    code, out = train("--total-steps", "100", "--out-dir", str(first))
    assert code == 2 and "holds a run already" in out and "--overwrite" in out
    assert (first / "checkpoint.pt").read_bytes() == saved
    code, out = train("--total-steps", "100", "--out-dir", str(first), "--overwrite")
    assert code == 0, out
    assert [r["update"] for r in rows(first / "metrics.csv")] == ["1"]

    # A folder with other things in it is never a run folder to overwrite.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    code, out = train("--total-steps", "100", "--out-dir", str(other), "--overwrite")
    assert code == 2 and "not an esper-ref run folder" in out
    assert (other / "thesis.tex").read_text() == "keep me"


def test_config_json_records_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, text = train("--total-steps", "100", "--out-dir", str(out), "--gamma", "0.9")
    assert code == 0, text
    doc = json.loads((out / "config.json").read_text())
    fields = set(TrainConfig().to_dict())
    assert set(doc["config"]) == fields
    assert doc["config"]["gamma"] == 0.9
    for key in ("esper_ref", "torch", "python", "command", "git_commit", "time"):
        assert key in doc, key
    assert isinstance(doc["command"], list)  # sys.argv (the test runner's, here)


def test_config_file_and_options(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\ngamma = 0.9\nseq_len = 10\nbootstrap = "expected"\n')
    out = tmp_path / "run"
    code, text = train(
        "--total-steps", "100", "--config", str(cfg), "--gamma", "0.8", "--out-dir", str(out)
    )
    assert code == 0, text
    saved = json.loads((out / "config.json").read_text())["config"]
    assert (saved["gamma"], saved["seq_len"], saved["bootstrap"]) == (0.8, 10, "expected")

    cfg.write_text("gama = 0.9\n")
    code, text = train("--config", str(cfg), "--out-dir", str(tmp_path / "r2"))
    assert code == 2 and "unknown TrainConfig field(s) ['gama']" in text
    cfg.write_text("num_envs = 'four'\n")
    code, text = train("--config", str(cfg), "--out-dir", str(tmp_path / "r3"))
    assert code == 2 and "num_envs: expected int, got 'four'" in text
    cfg.write_text("num_envs = [")
    code, text = train("--config", str(cfg), "--out-dir", str(tmp_path / "r4"))
    assert code == 2 and "not valid TOML" in text
    assert not (tmp_path / "r2").exists()


def test_help_lists_every_config_field_with_its_default() -> None:
    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for name in TrainConfig().to_dict():
        flag = "--" + name.replace("_", "-")
        assert flag in res.output, flag
    assert "(default: 500000)" in res.output
    assert "--resume" in res.output and "--extend" in res.output


def test_resume_keeps_the_schedule_and_extends_only_when_told(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, text = train("--total-steps", "300", "--out-dir", str(out))
    assert code == 0, text
    lrs = [float(r["learning_rate"]) for r in rows(out / "metrics.csv")]
    assert lrs[0] > lrs[1] > lrs[2]

    res = runner.invoke(app, ["train", "--resume", str(out)])
    assert res.exit_code == 0 and "already finished (update 3 of 3" in res.output
    res = runner.invoke(app, ["train", "--resume", str(out), "--total-steps", "500"])
    assert res.exit_code == 2 and "--extend constant" in res.output
    res = runner.invoke(app, ["train", "--resume", str(out), "--seed", "4"])
    assert res.exit_code == 2 and "cannot change seed" in res.output

    res = runner.invoke(
        app, ["train", "--resume", str(out), "--total-steps", "500", "--extend", "constant"]
    )
    assert res.exit_code == 0, res.output
    assert "learning rate constant" in res.output
    table = rows(out / "metrics.csv")
    assert [r["update"] for r in table] == ["1", "2", "3", "4", "5"]
    tail = [float(r["learning_rate"]) for r in table[2:]]
    assert tail == pytest.approx([lrs[2]] * 3)  # no jump: the rate it had, held
    doc = json.loads((out / "config.json").read_text())
    assert doc["config"]["total_steps"] == 500
    assert doc["resumes"][0]["update"] == 3


def test_evaluate_takes_a_folder_or_a_checkpoint_and_prints_references(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, text = train("--total-steps", "100", "--out-dir", str(out))
    assert code == 0, text
    assert "final greedy return" in text and "target" in text and "KL early stop" in text
    res = runner.invoke(app, ["evaluate", str(out), "--episodes", "6"])
    assert res.exit_code == 0, res.output
    assert "checkpoint.pt" in res.output
    assert re.search(r"greedy return -?\d+\.\d+ ± \d+\.\d+ \(95% CI, 6 episodes", res.output)
    assert "scripted oracle 9.58" in res.output and "random" in res.output
    res = runner.invoke(app, ["evaluate", str(out), "--best", "--half-width", "5"])
    assert res.exit_code == 0, res.output
    assert "best.pt" in res.output
    n = int(re.search(r"over (\d+) episodes", res.output).group(1))  # type: ignore[union-attr]
    assert n >= 200  # the default asks for an interval, with 200 episodes at least
    res = runner.invoke(app, ["evaluate", str(out / "checkpoint.pt"), "-n", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output


def test_plain_log_lines_when_not_on_a_terminal(tmp_path: Path) -> None:
    code, text = train("--total-steps", "200", "--out-dir", str(tmp_path / "r"))
    assert code == 0
    assert "update 1/2" in text and "update 2/2" in text and "KL stops" in text


def test_a_cuda_checkpoint_evaluates_on_this_machine(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train("--total-steps", "100", "--out-dir", str(out))[0] == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["config"]["device"] = "cuda"  # as a GPU run would have saved it
    torch.save(state, out / "gpu.pt")
    res = runner.invoke(app, ["evaluate", str(out / "gpu.pt"), "-n", "2"])
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert res.exit_code == 0, res.output
    assert f"device {expected}" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "bogus"], "device 'bogus': not a torch device"),
        (["--seed", str(10**20)], "seed=100000000000000000000 must be in [0, 2**63 - 1]"),
        (["--learning-rate", "abc"], "--learning-rate: expected float, got 'abc'"),
        (["--num-envs", "0"], "num_envs=0 must be >= 1"),
        (["--extend", "constant"], "--extend applies to --resume only"),
    ],
)
def test_bad_train_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    code, text = train(*args, "--out-dir", str(tmp_path / "r"))
    assert code == 2, text
    assert message in text
    assert len(text.strip().splitlines()) == 1, text
    assert not (tmp_path / "r").exists()  # refused before any folder was made


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_why(tmp_path: Path) -> None:
    code, text = train("--device", "cuda", "--out-dir", str(tmp_path / "r"))
    assert code == 2 and "device 'cuda'" in text and "CUDA" in text
    res = runner.invoke(app, ["evaluate", str(tmp_path), "--device", "cuda"])
    assert res.exit_code == 2


def test_unusable_out_dir_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, text = train("--out-dir", str(blocker))
    assert code == 2 and "is a file" in text
    code, text = train("--out-dir", str(blocker / "sub"))
    assert code == 2 and "cannot create it" in text
    assert "update 1" not in text


def test_bad_checkpoints_are_named_not_raised(tmp_path: Path) -> None:
    res = runner.invoke(app, ["evaluate", str(tmp_path / "missing.pt")])
    assert res.exit_code == 2 and "checkpoint not found" in res.output
    out = tmp_path / "run"
    assert train("--total-steps", "100", "--out-dir", str(out))[0] == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    for name, edit, message in [
        ("nokey.pt", lambda s: s.pop("policy"), "checkpoint lacks policy"),
        ("slots.pt", lambda s: s["config"].update(num_slots=4), "do not fit the network"),
        ("format.pt", lambda s: s.update(format=99), "got format 99"),
        ("config.pt", lambda s: s["config"].update(num_envs="x"), "num_envs: expected int"),
    ]:
        bad = {**state, "config": dict(state["config"])}
        edit(bad)
        torch.save(bad, tmp_path / name)
        res = runner.invoke(app, ["evaluate", str(tmp_path / name), "-n", "2"])
        assert res.exit_code == 2, (name, res.output)
        assert message in res.output, (name, res.output)
        assert "Traceback" not in res.output
        res = runner.invoke(
            app,
            [
                "train",
                "--resume",
                str(tmp_path / name),
                "--total-steps",
                "900",
                "--extend",
                "constant",
            ],
        )
        assert res.exit_code == 2, (name, res.output)
        assert "Traceback" not in res.output


def test_help_lists_the_commands() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    assert "train" in res.output and "evaluate" in res.output


def test_failures_during_training_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esper_ref.train import Trainer

    def disk_full(self: Trainer, *a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Trainer, "train", disk_full)
    code, text = train("--total-steps", "100", "--out-dir", str(tmp_path / "a"))
    assert code == 2 and "cannot write the run's files" in text and "No space left" in text

    def bug(self: Trainer, *a: object, **k: object) -> None:
        raise RuntimeError("shape mismatch somewhere")

    monkeypatch.setattr(Trainer, "train", bug)
    code, text = train("--total-steps", "100", "--out-dir", str(tmp_path / "b"))
    assert code == 2 and "internal error: RuntimeError: shape mismatch somewhere" in text
    assert len(text.strip().splitlines()) == 3  # run folder, training, the error
    monkeypatch.setenv("ESPER_REF_DEBUG", "1")
    res = runner.invoke(app, ["train", *TINY, "--out-dir", str(tmp_path / "c")])
    assert isinstance(res.exception, RuntimeError)


def test_ctrl_c_in_a_real_process_ends_cleanly_and_resumes(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    args = [sys.executable, "-m", "esper_ref", "train", *TINY, "--total-steps", "20000"]
    args += ["--checkpoint-every", "1", "--out-dir", str(out), "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # the log lines arrive as they happen (flushed), not at the end
        lines.append(line)
        if line.startswith("update 3/"):
            break
    assert lines[-1].startswith("update 3/"), "".join(lines)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    text = "".join(lines) + rest
    assert proc.returncode == 130, text
    assert "Traceback" not in text
    assert f"--resume {out} continues" in text
    res = runner.invoke(app, ["train", "--resume", str(out), "--total-steps", "600"])
    assert res.exit_code == 0, res.output
    assert [r["update"] for r in rows(out / "metrics.csv")] == ["1", "2", "3", "4", "5", "6"]


def test_the_cli_and_its_help_load_no_torch() -> None:
    """``esper-ref --help`` / ``train --help`` build every option without importing torch."""
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from esper_ref.cli import app; "
        "r = CliRunner().invoke(app, ['train', '--help']); "
        "sys.exit(2 if r.exit_code else int('torch' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
