"""What a person reads about a run: progress (a bar on a terminal, plain lines otherwise), the
learning-curve plot and the end-of-run summary."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from esper_ref.evaluation import References
from esper_ref.run_io import CsvLog, atomic_write, read_float
from esper_ref.stats import MeanCI


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Progress of a run: a rich bar on a terminal, or one plain line every ``log_every``
    updates (a log file or a pipe gets lines it can keep, not a redrawn bar)."""

    def __init__(
        self,
        total_steps: int,
        done_steps: int,
        num_updates: int,
        bar: bool,
        log_every: int,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.total_steps = total_steps
        self.num_updates = num_updates
        self.log_every = log_every
        self.echo = echo
        self._start_steps = done_steps
        self._t0 = time.perf_counter()
        self._sps: deque[float] = deque(maxlen=5)
        self._stops = 0
        self._updates = 0
        self._bar: Any = None
        if bar:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                TextColumn("return {task.fields[ret]}"),
                TextColumn("eval {task.fields[ev]}"),
                TextColumn("{task.fields[sps]} steps/s"),
                TimeRemainingColumn(),
            )
            self._bar.start()
            self._task = self._bar.add_task(
                "train", total=total_steps, completed=done_steps, ret="-", ev="-", sps="-"
            )

    def update(self, row: Mapping[str, float], recent_return: float, last_eval: str) -> None:
        self._sps.append(row["steps_per_sec"])
        self._updates += 1
        self._stops += int(row["early_stopped"])
        step = int(row["global_step"])
        ret = "-" if math.isnan(recent_return) else f"{recent_return:.3f}"
        if self._bar is not None:
            self._bar.update(
                self._task, completed=step, ret=ret, ev=last_eval, sps=f"{np.mean(self._sps):,.0f}"
            )
            return
        update = int(row["update"])
        if self.log_every <= 0 or (update % self.log_every and update != self.num_updates):
            return
        elapsed = time.perf_counter() - self._t0
        done = step - self._start_steps
        eta = elapsed / done * (self.total_steps - step) if done > 0 else math.nan
        self.echo(
            f"update {update}/{self.num_updates}  {step:,} steps ({step / self.total_steps:.0%})"
            f"  return {ret} (last 100 episodes)  eval {last_eval}"
            f"  KL stops {self._stops}/{self._updates}  lr {row['learning_rate']:.2e}"
            f"  {np.mean(self._sps):,.0f} steps/s  eta {_fmt_duration(eta)}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average that skips NaN (updates without a finished episode) and is
    debiased at the start, as TensorBoard's smoothing is."""
    out: list[float] = []
    avg, norm = 0.0, 0.0
    for v in values:
        if not math.isnan(v):
            avg = weight * avg + (1 - weight) * v
            norm = weight * norm + (1 - weight)
        out.append(avg / norm if norm > 0 else math.nan)
    return out


def write_learning_curve(
    metrics: CsvLog,
    evals: CsvLog,
    png: Path,
    refs: References | None = None,
    title: str = "",
) -> bool:
    """Training return (raw and smoothed) and the greedy-evaluation curve with its 95%
    interval against env steps, with the target, oracle and random returns as lines. Returns
    False when there is nothing to draw."""
    rows = metrics.read()
    steps = [read_float(r, "global_step") for r in rows]
    rets = [read_float(r, "episode_return_mean") for r in rows]
    ev = evals.read()
    if not any(not math.isnan(v) for v in rets) and not ev:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(steps, rets, color="tab:blue", alpha=0.25, linewidth=0.8, label="training return")
    ax.plot(steps, smooth(rets), color="tab:blue", label="training return (smoothed)")
    if ev:
        xs = np.array([read_float(r, "global_step") for r in ev])
        ys = np.array([read_float(r, "eval_return_mean") for r in ev])
        ci = np.nan_to_num(np.array([read_float(r, "eval_return_ci95") for r in ev]))
        ax.plot(xs, ys, color="tab:orange", marker=".", label="greedy evaluation")
        ax.fill_between(xs, ys - ci, ys + ci, color="tab:orange", alpha=0.2, linewidth=0)
    if refs is not None:
        for value, name, style in (
            (refs.oracle, "scripted oracle", ":"),
            (refs.target, "target", "--"),
            (refs.random, "random", "-."),
        ):
            ax.axhline(
                value, color="gray", linestyle=style, linewidth=1, label=f"{name} {value:.2f}"
            )
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    try:
        atomic_write(png, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        plt.close(fig)
    return True


def describe_return(ci: MeanCI, refs: References) -> str:
    """``8.61 ± 0.09 (95% CI, 512 episodes); target 7.667 (reached), oracle ..., random ...``"""
    if ci.mean - ci.half_width >= refs.target:
        verdict = "above the target"
    elif ci.mean + ci.half_width < refs.target:
        verdict = "below the target"
    else:
        verdict = "the interval contains the target"
    return f"{ci} (95% CI, {ci.n} episodes; {verdict}); {refs.describe()}"
