"""The ``esper-ref`` command line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from esper_migrate.console import CONTEXT_SETTINGS, error, run
from esper_ref import __version__
from esper_ref.config import TrainConfig

PROG = "esper-ref"

#: What the commands import beyond the light install: the distribution's [ref] extra.
REF_MODULES = ("torch", "numpy", "gymnasium", "matplotlib")

app = typer.Typer(
    name=PROG,
    help="Train and evaluate the reference op-conditioned Phase 4 policy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
)

DEFAULT_OUT_DIR = Path("runs/esper-ref")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


def missing_ref_modules() -> list[str]:
    """The modules of the [ref] extra that this environment lacks (found, not imported)."""
    from importlib.util import find_spec

    return [name for name in REF_MODULES if find_spec(name) is None]


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Train and evaluate the reference op-conditioned Phase 4 policy."""
    # Runs before any command: without the extra, one line instead of an ImportError's
    # traceback from deep inside the trainer.
    missing = missing_ref_modules()
    if missing:
        _fail(
            f"{', '.join(missing)} not installed: esper-ref needs the [ref] extra "
            "(pip install 'esper-phase4[ref]')"
        )


def _fail(message: str) -> None:
    raise typer.Exit(error(PROG, message))


@app.command()
def train(
    num_envs: Annotated[
        int | None,
        typer.Option("--num-envs", help=f"Parallel envs (default {TrainConfig.num_envs})."),
    ] = None,
    total_steps: Annotated[
        int | None,
        typer.Option(
            "--total-steps", help=f"Env steps over all envs (default {TrainConfig.total_steps})."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help=f"Seed of everything (default {TrainConfig.seed}).")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help=f"torch device (default {TrainConfig.device}).")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            help=f"Metrics, checkpoint and curve go here (default {DEFAULT_OUT_DIR}, or the "
            "checkpoint's folder with --resume).",
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", help="Continue the run saved in this checkpoint (bit for bit on CPU)."
        ),
    ] = None,
    no_blueprints: Annotated[
        bool,
        typer.Option(
            "--no-blueprints", help="Ablation: hide blueprint_indices (all -1) from the policy."
        ),
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Train the policy on the built-in slot-lifecycle environment."""
    from esper_ref.config import TrainConfig
    from esper_ref.train import CHECKPOINT_NAME, CURVE_NAME, METRICS_NAME, Trainer

    given = {
        "num_envs": num_envs,
        "total_steps": total_steps,
        "seed": seed,
        "device": device,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if no_blueprints:
        given["use_blueprint_indices"] = False
    try:
        if resume is not None:
            fixed = sorted(set(given) - {"total_steps", "device"})
            if fixed:
                _fail(f"--resume continues a run as saved; cannot change {', '.join(fixed)}")
            folder = out_dir if out_dir is not None else resume.parent
            trainer = Trainer.resume(resume, out_dir=folder, overrides=given)
        else:
            folder = out_dir if out_dir is not None else DEFAULT_OUT_DIR
            trainer = Trainer(TrainConfig(**given), out_dir=folder)  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    cfg = trainer.config
    typer.echo(
        f"training: {cfg.num_envs} envs x {cfg.num_steps} steps per update, "
        f"{cfg.num_updates} updates ({cfg.num_updates * cfg.batch_size:,} env steps), "
        f"seed {cfg.seed}, device {cfg.device}, out {folder}"
    )
    result = trainer.train(progress=progress)
    ret = result.recent_return()
    typer.echo(
        f"done: {result.global_step:,} env steps, {result.updates} updates, "
        f"{result.wall_time:.1f} s, recent return " + ("n/a" if math.isnan(ret) else f"{ret:.3f}")
    )
    typer.echo(f"checkpoint: {folder / CHECKPOINT_NAME}")
    typer.echo(f"metrics: {folder / METRICS_NAME}")
    if (folder / CURVE_NAME).exists():
        typer.echo(f"learning curve: {folder / CURVE_NAME}")


@app.command()
def evaluate(
    checkpoint: Annotated[
        Path, typer.Argument(help="A checkpoint.pt written by `esper-ref train`.")
    ],
    episodes: Annotated[
        int, typer.Option("--episodes", "-n", help="Episodes to average over.")
    ] = 20,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the evaluation environments.")
    ] = 12345,
    stochastic: Annotated[
        bool,
        typer.Option("--stochastic", help="Sample actions instead of the most likely ones."),
    ] = False,
) -> None:
    """Report the mean return of a saved policy over N episodes."""
    import numpy as np

    from esper_ref.train import evaluate_checkpoint

    try:
        returns = evaluate_checkpoint(
            checkpoint, episodes=episodes, seed=seed, deterministic=not stochastic
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    arr = np.asarray(returns)
    typer.echo(
        f"mean return: {arr.mean():.4f} (std {arr.std():.4f}, min {arr.min():.4f}, "
        f"max {arr.max():.4f}) over {len(arr)} episodes"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    return run(app, PROG, argv)
