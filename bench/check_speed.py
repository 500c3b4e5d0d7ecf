"""`esper-migrate check` against pylint's E1120 and fixit, side by side on one generated tree.

    python bench/check_speed.py [--lines 100000] [--repeat 3] [--keep DIR]

Generates a ~100k-line tree (bench/treegen.py: the fixture codebase repeated among filler
modules), then times, each as a fresh process from this venv:
- `esper-migrate check <tree>` cold (cache directory removed before each run) and warm (an
  unchanged tree, cache filled by the run before);
- `pylint --disable=all --enable=E1120 -j 2 <tree>` (missing-argument: the nearest generic
  check);
- `fixit lint <tree>` (a generic libcst lint framework with its default rules).
Cold and warm are medians of --repeat runs; pylint and fixit run once (they are the slow
ones). Wall-clock seconds make the ratios; CPU seconds (all processes) are printed beside them
because a busy machine stretches wall time. The last line is machine-readable:
`speedup_vs_pylint: X speedup_vs_fixit: Y warm_s: Z`.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    local = BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"check_speed: `{name}` is not installed (pip install -e '.[bench]')")
    return found


#: CPU seconds (user + sys) of the last _timed command and its children.
_LAST_CPU = [0.0]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], cwd: Path, ok: tuple[int, ...]) -> tuple[float, str]:
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    _LAST_CPU[0] = _children_cpu() - cpu
    if proc.returncode not in ok:
        sys.exit(
            f"check_speed: {' '.join(cmd)} exited {proc.returncode}\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return elapsed, proc.stdout


def _clear_caches(tree: Path) -> None:
    for cache in tree.rglob(".esper_migrate_cache"):
        shutil.rmtree(cache)


def _count_lines(tree: Path) -> tuple[int, int]:
    files = list(tree.rglob("*.py"))
    lines = sum(len(f.read_bytes().splitlines()) for f in files)
    return len(files), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="target size of the tree")
    parser.add_argument("--repeat", type=int, default=3, help="runs per esper-migrate timing")
    parser.add_argument("--keep", type=Path, default=None, help="generate the tree here, keep it")
    args = parser.parse_args()

    sys.path.insert(0, str(BENCH))
    from treegen import generate_tree  # type: ignore[import-not-found]

    workdir = Path(tempfile.mkdtemp(prefix="check_speed_")) if args.keep is None else args.keep
    tree = workdir / "tree"
    try:
        if tree.exists():
            shutil.rmtree(tree)
        generate_tree(tree, target_lines=args.lines)
        n_files, n_lines = _count_lines(tree)
        print(f"tree: {tree} ({n_files} files, {n_lines} lines)")

        check = [_tool("esper-migrate"), "check", ".", "--format", "json"]
        cold_times, cold_cpu = [], []
        for _ in range(args.repeat):
            _clear_caches(tree)
            elapsed, _ = _timed(check, tree, ok=(0, 1))
            cold_times.append(elapsed)
            cold_cpu.append(_LAST_CPU[0])
        warm_times, warm_cpu = [], []
        for _ in range(max(args.repeat, 5)):
            elapsed, report = _timed(check, tree, ok=(0, 1))
            warm_times.append(elapsed)
            warm_cpu.append(_LAST_CPU[0])
        findings = report.count('"code"')
        cold, warm = statistics.median(cold_times), statistics.median(warm_times)
        print(
            f"esper-migrate check cold: {cold:8.3f} s  (cpu {statistics.median(cold_cpu):.2f} s; "
            f"{findings} findings)"
        )
        print(f"esper-migrate check warm: {warm:8.3f} s  (cpu {statistics.median(warm_cpu):.2f} s)")

        pylint_s, pylint_out = _timed(
            [_tool("pylint"), "--disable=all", "--enable=E1120", "-j", "2", "."],
            tree,
            ok=tuple(range(0, 64)),  # pylint's exit code is a bit field of message kinds
        )
        e1120 = pylint_out.count("E1120")
        print(
            f"pylint E1120 -j 2:        {pylint_s:8.3f} s  "
            f"(cpu {_LAST_CPU[0]:.2f} s; {e1120} findings)"
        )

        fixit_s, _ = _timed([_tool("fixit"), "lint", "."], tree, ok=tuple(range(0, 256)))
        print(f"fixit lint:               {fixit_s:8.3f} s  (cpu {_LAST_CPU[0]:.2f} s)")

        print(
            f"speedup_vs_pylint: {pylint_s / cold:.1f} "
            f"speedup_vs_fixit: {fixit_s / cold:.1f} warm_s: {warm:.3f}"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
