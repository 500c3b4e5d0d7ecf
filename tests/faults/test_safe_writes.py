"""Writes that lose nothing: an edit during the run survives, a second run waits for the first,
signals leave no temporary file, a killed run's leftovers are removed. (Rows 1-3 of the probe
table; the randomised kill -9 / concurrency trials are in test_trials.py.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from faultlib import NET, NET_AFTER, assert_one_line_error, make_tree, run_cli, temp_files
from typer.testing import CliRunner

import esper_migrate.engine as engine
import esper_migrate.safe_write as safe_write
from esper_migrate.cli import app
from esper_migrate.safe_write import WriteRefused, project_lock, remove_stale, write_if_unchanged

USER_EDIT = "\n# the user's edit, saved while apply was planning\n"


def _invoke(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["apply", *args])
    return result.exit_code, result.output


# -- row 1: an edit while apply runs -----------------------------------------------------------


def test_a_file_edited_during_the_run_keeps_the_users_version(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.run_apply

    def plan_then_user_saves(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)  # planned from the old text ...
        with (tree / "src" / "a.py").open("a") as handle:  # ... which the user now changes
            handle.write(USER_EDIT)
        return result

    monkeypatch.setattr(engine, "run_apply", plan_then_user_saves)
    code, out = _invoke(tree, monkeypatch, ".")
    assert code == 3, out
    assert "src/a.py: error: changed on disk during the run; your version was kept" in out
    assert (tree / "src" / "a.py").read_text() == NET + USER_EDIT
    assert (tree / "src" / "b.py").read_text() == NET_AFTER
    assert temp_files(tree) == []
    monkeypatch.setattr(engine, "run_apply", real)
    code, out = _invoke(tree, monkeypatch, ".")  # the next run migrates the edited file
    assert code == 0, out
    assert (tree / "src" / "a.py").read_text() == NET_AFTER + USER_EDIT


def test_the_writer_compares_right_before_the_replace(tmp_path: Path) -> None:
    target = make_tree(tmp_path, {"a.py": "x = 1\n"}) / "a.py"
    with pytest.raises(WriteRefused, match="changed on disk during the run"):
        write_if_unchanged(target, b"x = 0\n", b"x = 2\n")
    assert target.read_text() == "x = 1\n" and temp_files(tmp_path) == []


def test_a_failed_replace_leaves_the_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = make_tree(tmp_path, {"a.py": "x = 1\n"}) / "a.py"

    def replace_fails(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", replace_fails)
    with pytest.raises(OSError, match="No space left"):
        write_if_unchanged(target, b"x = 1\n", b"x = 2\n")
    assert target.read_text() == "x = 1\n" and temp_files(tmp_path) == []


# -- row 2: two runs at once -------------------------------------------------------------------


def test_a_second_run_fails_with_one_line_while_the_lock_is_held(tree: Path) -> None:
    with project_lock(tree, timeout=0):
        code, out, err = run_cli("apply", "--lock-timeout", "0.5", ".", cwd=tree)
        assert code == 2, out + err
        assert "waiting for another esper-migrate run" in err
        last = err.strip().splitlines()[-1]
        assert_one_line_error(last, f"another esper-migrate run (pid {os.getpid()}) holds the lock")
        # Reading runs take no lock.
        assert run_cli("apply", "--check", ".", cwd=tree)[0] == 1
    assert (tree / "src" / "a.py").read_text() == NET


def test_a_second_run_waits_for_the_first_and_then_changes_nothing_twice(tree: Path) -> None:
    held = threading.Event()

    def first_run() -> None:
        with project_lock(tree, timeout=0):
            held.set()
            # The "first run" migrates while the second waits for the lock.
            for name in ("a.py", "b.py"):
                write_if_unchanged(tree / "src" / name, NET.encode(), NET_AFTER.encode())
            time.sleep(1.0)

    thread = threading.Thread(target=first_run)
    thread.start()
    held.wait(10)
    code, out, err = run_cli("apply", ".", cwd=tree)
    thread.join()
    assert f"waiting for another esper-migrate run (pid {os.getpid()})" in err
    assert code == 0 and "0 changed" in out, out + err
    assert (tree / "src" / "a.py").read_text() == NET_AFTER


def test_concurrent_runs_leave_no_duplicates(tree: Path) -> None:
    make_tree(tree, {f"src/m{i}.py": NET for i in range(20)})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "esper_migrate", "apply", "."],
            cwd=tree,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    codes = [p.wait(timeout=120) for p in procs]
    for p in procs:
        assert p.stdout is not None and p.stderr is not None
        p.stdout.close()
        p.stderr.close()
    assert codes == [0, 0, 0]
    for path in sorted((tree / "src").glob("*.py")):
        assert path.read_text() == NET_AFTER, path
    assert temp_files(tree) == []


# -- row 3: signals and killed runs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_a_signal_during_the_writes_leaves_whole_files_and_no_temporary_file(
    tree: Path, monkeypatch: pytest.MonkeyPatch, signum: int, code: int
) -> None:
    make_tree(tree, {f"src/m{i}.py": NET for i in range(6)})
    real = safe_write.write_if_unchanged
    calls = []

    def write_then_signal(path: Path, expected: bytes, data: bytes, **kwargs: Any) -> None:
        calls.append(path)
        if len(calls) == 3:
            os.kill(os.getpid(), signum)  # arrives inside the third write
        real(path, expected, data, **kwargs)

    monkeypatch.setattr(safe_write, "write_if_unchanged", write_then_signal)
    exit_code, out = _invoke(tree, monkeypatch, ".")
    assert exit_code == code, out
    name = signal.Signals(signum).name
    assert f"interrupted by {name} after writing 2 of 8 files" in out
    assert "run again to finish" in out
    texts = [p.read_text() for p in sorted((tree / "src").glob("*.py"))]
    assert sorted(set(texts)) == sorted({NET, NET_AFTER})
    assert texts.count(NET_AFTER) == 2
    assert temp_files(tree) == []
    # The handlers are restored: the process is not left raising on SIGTERM.
    assert signal.getsignal(signal.SIGTERM) is not None
    monkeypatch.setattr(safe_write, "write_if_unchanged", real)
    assert _invoke(tree, monkeypatch, ".")[0] == 0


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_files_of_a_killed_run_are_removed_by_the_next(tree: Path) -> None:
    dead = tree / "src" / f".a.py.esper-migrate-{_dead_pid()}-k1ll3d.tmp"
    dead.write_text(NET_AFTER[:40])  # what a SIGKILL mid-write leaves
    live = tree / "src" / f".b.py.esper-migrate-{os.getpid()}-al1ve.tmp"
    live.write_text("")
    code, out, _ = run_cli("apply", "--check", ".", cwd=tree)
    assert code == 1 and dead.exists()  # reading runs never delete
    code, out, _ = run_cli("apply", ".", cwd=tree)
    assert code == 0, out
    assert not dead.exists()
    assert live.exists()  # a live process's file (another root's run) is not ours to remove
    assert remove_stale([live]) == []


def test_a_real_sigterm_mid_run_is_clean(tree: Path) -> None:
    """A real process, terminated at several points of its run: no temporary file, no partial
    file, and a clean finish on the next run."""
    make_tree(tree, {f"src/m{i}.py": NET for i in range(40)})
    for delay in (0.15, 0.3, 0.45, 0.6, 0.8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "esper_migrate", "apply", "."],
            cwd=tree,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 143, -signal.SIGTERM), out + err
        assert "Traceback" not in err
        assert temp_files(tree) == []
        for path in (tree / "src").glob("*.py"):
            assert path.read_text() in (NET, NET_AFTER)
    assert run_cli("apply", ".", cwd=tree)[0] == 0
    assert {p.read_text() for p in (tree / "src").glob("*.py")} == {NET_AFTER}


def _wait_past_startup(proc: subprocess.Popen[str], tree: Path, command: str) -> None:
    """Until the run is under way: a signal during the interpreter's own start-up (imports)
    is Python's to report, not the tool's."""
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if command == "apply" and (tree / ".esper_migrate_cache" / "apply.lock").exists():
            return
        if command == "check" and _children(proc.pid):
            return  # the cold run's workers are forked
        time.sleep(0.005)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("command", ["apply", "check"])
def test_a_signal_to_a_parallel_run_ends_in_one_line_and_never_hangs(
    tmp_path: Path, command: str
) -> None:
    """Ctrl-C and kill reach a whole process group, pool workers included: no worker
    traceback, no pool left waiting (a hang fails on the timeout), no temporary file."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from treegen import generate_tree

    base = generate_tree(tmp_path / "base", 10_000)
    (base / "pyproject.toml").write_text("[tool.esper-migrate]\n")
    args = ["apply", "-j2", "."] if command == "apply" else ["check", "-j2", "--no-cache", "."]
    for i, (signum, delay) in enumerate(
        (s, d) for s in (signal.SIGINT, signal.SIGTERM) for d in (0.0, 0.1, 0.3, 0.6)
    ):
        tree = tmp_path / f"t{i}"
        shutil.copytree(base, tree)
        proc = subprocess.Popen(
            [sys.executable, "-m", "esper_migrate", *args],
            cwd=tree,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        _wait_past_startup(proc, tree, command)
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        lines = [line for line in err.splitlines() if "unresolved EM" not in line]
        assert "Traceback" not in err, err
        if proc.returncode == 128 + signum:
            assert len(lines) == 1 and "interrupted by" in lines[0], (signum, delay, err)
        else:  # the run was over (or not yet past interpreter start-up) when the signal came
            assert proc.returncode in (0, 1, 3, -signum), err
        assert temp_files(tree) == []
        for path in tree.rglob("*.py"):
            compile(path.read_bytes(), str(path), "exec")
