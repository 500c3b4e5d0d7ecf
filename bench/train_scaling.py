"""Data-parallel scaling of ``esper-ref train``: 1 rank vs N ranks with the same global batch.

For each seed, trains the default config (or ``--set FIELD=VALUE`` changes) once on one process
and once with ``--nproc N`` (``num_envs`` is the global count, so both runs make the same
number of updates on batches of the same size), and reads back:

- env steps/s: env steps over the training wall time (``metrics.csv``, rank 0's clock;
  evaluation and the end-of-run summary are not in it);
- steps and time to target: the update at which the mean of the last 100 training episodes
  first reached the target (the run's summary line), its env steps and wall time.

Runs are interleaved (1 rank, N ranks, next seed, ...) so a change of machine load hits both
sides. A last, short run gives one rank the N ranks' cores as torch threads
(``torch_threads=N``): the speed one process gets from the same cores without ranks, printed
beside the ratio so that the ratio is not read against a one-thread straw man.

Data parallelism pays when each rank's share of a step is large enough that its cost grows with
it (see the README): ``--set num_envs=512`` is the configuration the README reports; the
default 16 envs show the opposite end.

The load average (``os.getloadavg``) before and after is printed with the figures: on a
machine shared with other work, the ratio measures the sharing as much as the scaling.

With two or more seeds, the env steps to target of the two sides are compared as independent
samples (Welch's 95% interval of the difference; the runs of a seed share initial weights but
part ways at the first sampled action): an interval that holds 0, or lies below it, is "no
more env steps, within seed noise".

Last line: ``steps_per_sec_ratio: X efficiency: Y steps_to_target_ratio: Z
time_to_target_ratio: W steps_to_target_diff_ci: LO,HI threaded_ratio: T load_1min: L``
(ratios N ranks / 1 rank; efficiency = ratio / N; LO,HI the interval of N ranks - 1 rank env
steps to target; threaded_ratio = N ranks / one rank with N threads).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from esper_ref.config import TrainConfig
from esper_ref.stats import difference_ci, mean_ci

REACHED = re.compile(r"target reached at update (\d+) \(([\d,]+) env steps\)")


@dataclass
class Run:
    nproc: int
    seed: int
    steps: int
    wall: float
    target_update: int | None
    target_steps: int | None
    target_wall: float | None

    @property
    def steps_per_sec(self) -> float:
        return self.steps / self.wall


def train(nproc: int, seed: int, total_steps: int, sets: list[str], folder: Path) -> Run:
    cmd = [sys.executable, "-m", "esper_ref", "train", "--seed", str(seed), "--out-dir"]
    cmd += [str(folder), "--no-progress", "--total-steps", str(total_steps)]
    cmd += ["--eval-every", "0", "--final-eval-episodes", "64", "--checkpoint-every", "0"]
    for item in sets:
        name, _, value = item.partition("=")
        cmd += ["--" + name.replace("_", "-"), value]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"train_scaling: {' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr}")
    with (folder / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    last = rows[-1]
    m = REACHED.search(done.stdout)
    t_update = int(m.group(1)) if m else None
    t_wall = None
    if t_update is not None:
        t_wall = next(float(r["wall_time"]) for r in rows if int(r["update"]) == t_update)
    return Run(
        nproc,
        seed,
        int(last["global_step"]),
        float(last["wall_time"]),
        t_update,
        int(m.group(2).replace(",", "")) if m else None,
        t_wall,
    )


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.fmean(vals) if len(vals) == len(xs) and vals else None


def _fmt(x: float | None, spec: str) -> str:
    return "not reached" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--nproc", type=int, default=2, help="ranks of the parallel runs")
    ap.add_argument("--total-steps", type=int, default=500_000)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument(
        "--threaded-updates",
        type=int,
        default=8,
        help="updates of the one-rank, N-thread speed run (0: skip it)",
    )
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    print(f"machine: {cores} cores; load average before {load_before[0]:.2f}", flush=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for nproc in (1, args.nproc):
                t0 = time.perf_counter()
                run = train(nproc, seed, args.total_steps, args.set, Path(tmp) / f"r{nproc}-{seed}")
                runs.append(run)
                print(
                    f"seed {seed} ranks {nproc}: {run.steps_per_sec:,.0f} env steps/s, target at "
                    f"{_fmt(run.target_steps, ',')} env steps / {_fmt(run.target_wall, '.1f')} s "
                    f"({time.perf_counter() - t0:.0f} s with start-up and summary; load "
                    f"{os.getloadavg()[0]:.2f})",
                    flush=True,
                )
        threaded: Run | None = None
        if args.threaded_updates:
            given = dict(x.partition("=")[::2] for x in args.set)
            batch = int(given.get("num_envs", TrainConfig.num_envs)) * int(
                given.get("num_steps", TrainConfig.num_steps)
            )
            steps = args.threaded_updates * batch
            sets = [*args.set, f"torch_threads={args.nproc}"]
            threaded = train(1, args.seeds[0], steps, sets, Path(tmp) / "threaded")
            print(
                f"seed {args.seeds[0]} ranks 1, {args.nproc} torch threads: "
                f"{threaded.steps_per_sec:,.0f} env steps/s (speed only, {steps:,} steps)",
                flush=True,
            )
    load_after = os.getloadavg()
    one = [r for r in runs if r.nproc == 1]
    many = [r for r in runs if r.nproc == args.nproc]
    sps1 = statistics.fmean(r.steps_per_sec for r in one)
    spsn = statistics.fmean(r.steps_per_sec for r in many)
    st1 = _mean([r.target_steps for r in one])
    stn = _mean([r.target_steps for r in many])
    tt1 = _mean([r.target_wall for r in one])
    ttn = _mean([r.target_wall for r in many])
    print()
    print(f"{'':24}{'1 rank':>16}{f'{args.nproc} ranks':>16}{'ratio':>10}")
    print(f"{'env steps/s':24}{sps1:>16,.0f}{spsn:>16,.0f}{spsn / sps1:>10.2f}")
    nan = float("nan")
    threaded_ratio = nan
    steps_diff = (nan, nan)  # the interval of N ranks - 1 rank env steps to target
    if threaded is not None:
        threaded_ratio = spsn / threaded.steps_per_sec
        label = f"1 rank, {args.nproc} threads"
        print(
            f"{'env steps/s':24}{label:>16}{threaded.steps_per_sec:>16,.0f}"
            f"{threaded_ratio:>10.2f}  ({args.nproc} ranks / this)"
        )
    if st1 is not None and stn is not None and tt1 is not None and ttn is not None:
        print(f"{'env steps to target':24}{st1:>16,.0f}{stn:>16,.0f}{stn / st1:>10.2f}")
        print(f"{'seconds to target':24}{tt1:>16.1f}{ttn:>16.1f}{ttn / tt1:>10.2f}")
        if len(args.seeds) >= 2:
            a = [float(r.target_steps) for r in one if r.target_steps is not None]
            b = [float(r.target_steps) for r in many if r.target_steps is not None]
            diff = difference_ci(a, b)
            steps_diff = (diff.mean - diff.half_width, diff.mean + diff.half_width)
            print(
                f"env steps to target, seed by seed: sd {mean_ci(a).std:,.0f} (1 rank), "
                f"{mean_ci(b).std:,.0f} ({args.nproc} ranks); {args.nproc} ranks - 1 rank "
                f"{diff.mean:+,.0f}, 95% interval [{steps_diff[0]:+,.0f}, {steps_diff[1]:+,.0f}] "
                "(Welch; runs of different seeds are independent): "
                + (
                    "more env steps than seed noise explains"
                    if steps_diff[0] > 0
                    else "no more env steps, within seed noise"
                )
            )
    else:
        print("steps/time to target: not reached by every run (raise --total-steps)")
    print(
        f"seeds {args.seeds}; load average (1 min) before {load_before[0]:.2f}, after "
        f"{load_after[0]:.2f} on {cores} cores: above ~0 the machine was shared and the "
        "ratio measures the sharing as much as the scaling"
    )
    print(
        f"steps_per_sec_ratio: {spsn / sps1:.3f} efficiency: {spsn / sps1 / args.nproc:.3f} "
        f"steps_to_target_ratio: {(stn / st1) if st1 and stn else nan:.3f} "
        f"time_to_target_ratio: {(ttn / tt1) if tt1 and ttn else nan:.3f} "
        f"steps_to_target_diff_ci: {steps_diff[0]:.0f},{steps_diff[1]:.0f} "
        f"threaded_ratio: {threaded_ratio:.3f} "
        f"load_1min: {load_after[0]:.2f}"
    )


if __name__ == "__main__":
    main()
