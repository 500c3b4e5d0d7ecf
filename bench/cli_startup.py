"""How fast `esper-migrate` starts: import, `--help`, `--version` and a warm `check`.

    python bench/cli_startup.py [--repeat 15] [--against DIR]

A lint runs on every commit, so what it costs before doing any work matters. Each figure is
the median wall time of --repeat fresh processes from this venv: the bare interpreter
(`python -c pass`, the floor), `import esper_migrate.cli`, `python -m esper_migrate --help`,
`--version`, and `check` on the `partial/` fixture with its cache filled by a first run.

`--against DIR` times a second source tree the same way (put first on PYTHONPATH, so the
same venv runs it: e.g. `git archive main | tar -x -C /tmp/main`) and prints the ratio of
ours to it for each figure: 1.0 is as fast, above 1 slower. `python -X importtime -c
"import esper_migrate.cli"` says where the import time goes. The last line is
machine-readable: `startup_ms: import=X help=Y version=Z check_warm=W interpreter=V` (and
`ratio_vs_against: ...` after it with --against).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "esper_migrate" / "fixtures" / "phase4" / "partial"


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # check exits 1 on the fixture's findings
        sys.exit(f"cli_startup: {' '.join(cmd)} exited {proc.returncode}: {proc.stderr!r}")
    return elapsed


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _module(*args: str) -> list[str]:
    return [sys.executable, "-m", "esper_migrate", *args]


def measure(sources: list[Path | None], repeat: int) -> list[dict[str, float]]:
    """Median ms per figure for each source tree (None: the installed one). The trees take
    turns run by run, so that a change in the machine's load touches them alike."""
    work = Path(tempfile.mkdtemp(prefix="cli_startup_"))
    try:
        runs = []  # per tree: (env, the figures' commands and folders)
        for i, src in enumerate(sources):
            env = dict(os.environ)
            env.pop("NO_COLOR", None)
            if src is not None:
                # Ahead of site-packages and of an editable install's import hook; the
                # commands run in a temporary folder, so the cwd puts no other tree first.
                env["PYTHONPATH"] = str(src)
            tree = work / f"partial{i}"  # each its own cache
            shutil.copytree(FIXTURE, tree)
            figures = {
                "import": (_python("import esper_migrate.cli"), work),
                "help": (_module("--help"), work),
                "version": (_module("--version"), work),
                "check_warm": (_module("check", "."), tree),
                "interpreter": (_python("pass"), work),
            }
            for cmd, cwd in figures.values():  # fills the cache, warms the OS caches
                _run(cmd, env, cwd)
            runs.append((env, figures))
        times: list[dict[str, list[float]]] = [{} for _ in sources]
        for _ in range(repeat):
            for name in runs[0][1]:
                for i, (env, figures) in enumerate(runs):
                    cmd, cwd = figures[name]
                    times[i].setdefault(name, []).append(_run(cmd, env, cwd))
        return [{k: statistics.median(v) * 1000 for k, v in t.items()} for t in times]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _line(label: str, figures: dict[str, float], fmt: str) -> str:
    return f"{label}: " + " ".join(f"{k}={fmt.format(v)}" for k, v in figures.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs per figure (median)")
    parser.add_argument("--against", type=Path, help="another source tree to compare with")
    args = parser.parse_args()
    if args.against is None:
        (ours,) = measure([None], args.repeat)
        print(_line("startup_ms", ours, "{:.1f}"))
        return
    ours, theirs = measure([None, args.against.resolve()], args.repeat)
    print(_line(f"startup_ms ({args.against})", theirs, "{:.1f}"))
    print(_line("startup_ms", ours, "{:.1f}"))
    print(_line("ratio_vs_against", {k: ours[k] / theirs[k] for k in ours}, "{:.2f}"))


if __name__ == "__main__":
    main()
