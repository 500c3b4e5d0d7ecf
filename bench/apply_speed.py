"""`esper-migrate apply --diff` against a no-op libcst codemod, side by side on one tree.

    python bench/apply_speed.py [--lines 100000] [--repeat 3] [--jobs 1] [--keep DIR]

Generates a ~100k-line tree (bench/treegen.py: the fixture codebase repeated among filler
modules), then times, alternately and each as a fresh process from this venv:
- `esper-migrate apply --diff --jobs J .` (prints the migration as a diff, writes nothing);
- `python -m libcst.tool codemod -x bench._noop_codemod.NoOp --no-format -j J -u 3 .`
  (parses, visits and renders every file, changes nothing; `-u` prints a diff instead of
  writing, like `--diff`).
Both run with the same number of jobs. Each side's time is the best of --repeat wall-clock
runs; CPU seconds (children's user+sys) are printed beside them because the shared machines
are noisy. The last line is machine-readable: `speedup_vs_libcst_noop: X` (libcst / ours).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent


def _esper_migrate() -> list[str]:
    local = BIN / "esper-migrate"
    if local.exists():
        return [str(local)]
    found = shutil.which("esper-migrate")
    return [found] if found else [sys.executable, "-m", "esper_migrate"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(
    cmd: list[str], cwd: Path, ok: tuple[int, ...], env: dict[str, str] | None = None
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    cpu0 = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    cpu = _children_cpu() - cpu0
    if proc.returncode not in ok:
        sys.exit(
            f"apply_speed: {' '.join(cmd)} exited {proc.returncode}\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return wall, cpu, proc


def _digest(tree: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(tree).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _count(tree: Path) -> tuple[int, int]:
    files = list(tree.rglob("*.py"))
    return len(files), sum(f.read_bytes().count(b"\n") for f in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="target size of the tree")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (best is kept)")
    parser.add_argument("--jobs", type=int, default=1, help="jobs for both tools")
    parser.add_argument("--keep", type=Path, default=None, help="generate the tree here, keep it")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(BENCH))
    from treegen import generate_tree  # type: ignore[import-not-found]

    ours_cmd = [*_esper_migrate(), "apply", "--diff", "--jobs", str(args.jobs), "."]
    probe = subprocess.run(
        [*_esper_migrate(), "apply", "--help"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0 or "--diff" not in probe.stdout:
        print("apply_speed: `esper-migrate apply --diff` is not available yet", file=sys.stderr)
        return 2
    libcst_cmd = [
        sys.executable, "-m", "libcst.tool", "codemod", "-x", "bench._noop_codemod.NoOp",
        "--no-format", "--hide-progress", "-j", str(args.jobs), "-u", "3", ".",
    ]  # fmt: skip
    # The no-op command is imported as `bench._noop_codemod` from the repository root.
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    libcst_env = {**os.environ, "PYTHONPATH": pythonpath}

    workdir = Path(tempfile.mkdtemp(prefix="apply_speed_")) if args.keep is None else args.keep
    tree = workdir / "tree"
    try:
        if tree.exists():
            shutil.rmtree(tree)
        generate_tree(tree, target_lines=args.lines)
        n_files, n_lines = _count(tree)
        print(f"tree: {tree} ({n_files} files, {n_lines} lines), jobs: {args.jobs}")
        digest = _digest(tree)

        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for _ in range(args.repeat):
            # Alternate the tools so that load on the machine hits both alike.
            wall, cpu, proc = _timed(ours_cmd, tree, ok=(0, 1, 3))
            ours.append((wall, cpu))
            changed = sum(1 for line in proc.stdout.splitlines() if line.startswith("+++ "))
            wall, cpu, lc = _timed(libcst_cmd, tree, ok=(0,), env=libcst_env)
            theirs.append((wall, cpu))
            if "Failed to codemod 0 files" not in lc.stderr:
                sys.exit(f"apply_speed: libcst failed on some files\n{lc.stderr[-2000:]}")
        if _digest(tree) != digest:
            sys.exit("apply_speed: a --diff / -u run modified the tree")
        if changed == 0:
            sys.exit("apply_speed: `apply --diff` printed no diff on the fixture copies")

        ours_wall, ours_cpu = min(ours)
        lc_wall, lc_cpu = min(theirs)
        print(
            f"esper-migrate apply --diff: {ours_wall:8.3f} s wall  {ours_cpu:8.3f} s cpu"
            f"  ({changed} files in the diff)"
        )
        print(f"libcst codemod no-op:       {lc_wall:8.3f} s wall  {lc_cpu:8.3f} s cpu")
        print(f"cpu_ratio: {lc_cpu / ours_cpu:.1f}")
        print(f"speedup_vs_libcst_noop: {lc_wall / ours_wall:.1f}")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
