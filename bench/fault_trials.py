"""Randomised fault trials of ``esper-migrate apply`` on a generated tree, with a tally.

    python bench/fault_trials.py [--trials 100] [--lines 20000] [--seed 0]

Three kinds of trial, drawn at random, each on a fresh copy of the tree, each with real
processes:

- **kill**: ``apply`` is killed with SIGKILL, either at a random moment of its run or right
  inside its write phase (the trial watches for the first replaced file, then waits a random
  0-3 ms). Afterwards every file must be the original or the complete rewrite (a clean run's
  output); the next run must finish without errors, leave no temporary file behind and leave
  the tree exactly as one clean run does (no argument passed twice).
- **concurrent**: two or three ``apply`` runs start at staggered moments on the same tree.
  The tree must end exactly as one clean run leaves it, with no temporary file.
- **edit**: while ``apply`` runs, a "user" appends a uniquely marked line to random files.
  Every marked line must survive, and each file without its marks must be the original or the
  complete rewrite.

The last line is the tally: ``data_lost: N/TRIALS``, where a loss is a partial file, a user's
edit that disappeared, a concurrent run or a re-run after a kill that left the tree other than
a clean run does (``concurrent_mismatch``, ``rerun_mismatch``: say, an argument passed twice),
or a temporary file that outlived the next run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from treegen import generate_tree

_IGNORED = shutil.ignore_patterns(".esper_migrate_cache", "__pycache__")


def _apply(tree: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "esper_migrate", "apply", *args, "."],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _popen(tree: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "esper_migrate", "apply", "."],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _python_files(tree: Path) -> dict[str, bytes]:
    return {
        p.relative_to(tree).as_posix(): p.read_bytes()
        for p in tree.rglob("*.py")
        if ".esper_migrate_cache" not in p.parts
    }


def _temp_files(tree: Path) -> list[Path]:
    return [p for p in tree.rglob("*.tmp") if ".esper_migrate_cache" not in p.parts]


@dataclass
class Reference:
    """The tree before and after one clean run."""

    base: Path
    original: dict[str, bytes]
    golden: dict[str, bytes]
    changed: list[str]
    #: Wall seconds of one clean run.
    seconds: float


def prepare(workdir: Path, lines: int, seed: int = 0) -> Reference:
    base = workdir / "base"
    generate_tree(base, lines, seed)
    (base / "pyproject.toml").write_text("[tool.esper-migrate]\n", encoding="utf-8")
    golden_tree = workdir / "golden"
    shutil.copytree(base, golden_tree, ignore=_IGNORED)
    start = time.perf_counter()
    done = _apply(golden_tree)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3) or "errors: 0" not in done.stdout:
        raise RuntimeError(f"the clean run failed: {done.stdout}{done.stderr}")
    original, golden = _python_files(base), _python_files(golden_tree)
    changed = sorted(k for k in original if golden[k] != original[k])
    return Reference(base, original, golden, changed, seconds)


@dataclass
class Tally:
    kinds: Counter[str] = field(default_factory=Counter)
    partial_files: int = 0
    lost_edits: int = 0
    concurrent_mismatch: int = 0
    temp_left_after_rerun: int = 0
    rerun_errors: int = 0
    rerun_mismatch: int = 0
    killed_in_write_phase: int = 0
    stale_temps_after_kill: int = 0
    edits_made: int = 0
    lost_trials: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self, trials: int) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        return (
            f"trials: {trials} ({kinds}); partial_files: {self.partial_files}; "
            f"lost_edits: {self.lost_edits} of {self.edits_made}; "
            f"concurrent_mismatch: {self.concurrent_mismatch}; "
            f"temp_left_after_rerun: {self.temp_left_after_rerun}; "
            f"rerun_errors: {self.rerun_errors}; "
            f"killed_in_write_phase: {self.killed_in_write_phase}; "
            f"stale_temps_after_kill: {self.stale_temps_after_kill}; "
            f"rerun_mismatch: {self.rerun_mismatch}"
        )


def _wait_for_first_write(tree: Path, ref: Reference, proc: subprocess.Popen[str]) -> bool:
    """Poll until one of the files the run rewrites has a new inode (os.replace happened)."""
    paths = [tree / rel for rel in ref.changed]
    inodes = [os.stat(p).st_ino for p in paths]
    while proc.poll() is None:
        for path, ino in zip(paths, inodes, strict=True):
            try:
                if os.stat(path).st_ino != ino:
                    return True
            except FileNotFoundError:
                continue
    return False


def _rerun(tree: Path, ref: Reference, tally: Tally, trial: str) -> bool:
    """The next run after a fault: it must finish, write everything and leave no temp file."""
    lost = False
    done = _apply(tree)
    if "errors: 0" not in done.stdout or done.returncode not in (0, 3):
        tally.rerun_errors += 1
        tally.notes.append(f"{trial}: rerun: {done.stdout[-300:]}{done.stderr[-300:]}")
        lost = True
    left = _temp_files(tree)
    if left:
        tally.temp_left_after_rerun += len(left)
        tally.notes.append(f"{trial}: temp files left: {left[:3]}")
        lost = True
    return lost


def kill_trial(tree: Path, ref: Reference, rng: random.Random, tally: Tally, trial: str) -> bool:
    proc = _popen(tree)
    if rng.random() < 0.5:
        in_write = _wait_for_first_write(tree, ref, proc)
        time.sleep(rng.uniform(0, 0.003))
        tally.killed_in_write_phase += in_write
    else:
        time.sleep(rng.uniform(0, 1.1) * ref.seconds)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    lost = False
    now = _python_files(tree)
    for rel, data in now.items():
        if data not in (ref.original[rel], ref.golden[rel]):
            tally.partial_files += 1
            tally.notes.append(f"{trial}: {rel} is neither the original nor the rewrite")
            lost = True
    tally.stale_temps_after_kill += len(_temp_files(tree))
    lost |= _rerun(tree, ref, tally, trial)
    # The re-run decides "already migrated" by how each call binds its arguments, so a part
    # migrated tree ends as a clean run leaves it; anything else (a duplicated argument) is lost
    # work for the user to undo by hand.
    differing = sorted(rel for rel, data in _python_files(tree).items() if data != ref.golden[rel])
    if differing:
        tally.rerun_mismatch += 1
        tally.notes.append(f"{trial}: after the re-run, differs from a clean run: {differing[:3]}")
        lost = True
    return lost


def concurrent_trial(
    tree: Path, ref: Reference, rng: random.Random, tally: Tally, trial: str
) -> bool:
    procs = []
    for _ in range(rng.choice((2, 3))):
        procs.append(_popen(tree))
        time.sleep(rng.uniform(0, 0.3) * ref.seconds)
    outputs = [p.communicate(timeout=300) for p in procs]
    lost = False
    if any(p.returncode not in (0, 3) for p in procs):
        tally.notes.append(f"{trial}: exit codes {[p.returncode for p in procs]}: {outputs}")
        lost = True
    if _python_files(tree) != ref.golden:
        tally.concurrent_mismatch += 1
        tally.notes.append(f"{trial}: the tree differs from one clean run")
        lost = True
    if _temp_files(tree):
        tally.temp_left_after_rerun += len(_temp_files(tree))
        lost = True
    return lost


def edit_trial(tree: Path, ref: Reference, rng: random.Random, tally: Tally, trial: str) -> bool:
    rels = list(ref.changed) + rng.sample(sorted(ref.original), min(5, len(ref.original)))
    marks: dict[str, list[str]] = {}
    proc = _popen(tree)

    def user() -> None:
        n = 0
        while proc.poll() is None:
            rel = rng.choice(rels)
            mark = f"# user edit {trial}-{n}\n"
            with (tree / rel).open("a", encoding="utf-8") as handle:
                handle.write(mark)
            marks.setdefault(rel, []).append(mark)
            n += 1
            time.sleep(rng.uniform(0, ref.seconds / 8))

    editor = threading.Thread(target=user)
    editor.start()
    proc.communicate(timeout=300)
    editor.join()
    lost = False
    for rel, added in marks.items():
        tally.edits_made += len(added)
        text = (tree / rel).read_text(encoding="utf-8")
        missing = [m for m in added if m not in text]
        if missing:
            tally.lost_edits += len(missing)
            tally.notes.append(f"{trial}: {rel} lost {len(missing)} edits")
            lost = True
        bare = text
        for mark in added:
            bare = bare.replace(mark, "", 1)
        if bare.encode() not in (ref.original[rel], ref.golden[rel]):
            tally.partial_files += 1
            tally.notes.append(f"{trial}: {rel} without the edits is neither version")
            lost = True
    lost |= _rerun(tree, ref, tally, trial)
    return lost


TRIALS = {"kill": kill_trial, "concurrent": concurrent_trial, "edit": edit_trial}


def run_trials(
    workdir: Path, trials: int, lines: int, seed: int, kinds: tuple[str, ...] = tuple(TRIALS)
) -> Tally:
    ref = prepare(workdir, lines)
    rng = random.Random(seed)
    tally = Tally()
    for i in range(trials):
        kind = kinds[i % len(kinds)] if trials <= len(kinds) * 2 else rng.choice(kinds)
        tree = workdir / f"trial-{i}"
        shutil.copytree(ref.base, tree, ignore=_IGNORED)
        tally.kinds[kind] += 1
        if TRIALS[kind](tree, ref, rng, tally, f"{kind}#{i}"):
            tally.lost_trials += 1
        shutil.rmtree(tree)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--lines", type=int, default=20_000, help="size of the generated tree")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="esper-fault-trials-") as tmp:
        tally = run_trials(Path(tmp), args.trials, args.lines, args.seed)
    for note in tally.notes[:20]:
        print(f"note: {note}")
    print(tally.line(args.trials))
    print(f"data_lost: {tally.lost_trials}/{args.trials}")
    return 0 if tally.lost_trials == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
