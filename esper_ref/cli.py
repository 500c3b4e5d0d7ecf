"""The ``esper-ref`` command line."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

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

DEFAULT_RUNS_DIR = Path("runs")
DEFAULT_RUN_NAME = "esper-ref"


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


#: Options of ``train`` besides the TrainConfig fields (those are generated below).
_TRAIN_OPTIONS: list[inspect.Parameter] = [
    inspect.Parameter(
        "config_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            None,
            "--config",
            metavar="FILE",
            help="TOML file of TrainConfig fields (field = value, at the top level or in a "
            "train table); options given on the command line win.",
            rich_help_panel="Run",
        ),
        annotation=Path | None,
    ),
    inspect.Parameter(
        "out_dir",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            None,
            "--out-dir",
            help="The run's folder, exactly (refused if it holds a run, unless --overwrite). "
            f"Default: a new {DEFAULT_RUNS_DIR}/<name>-<n>; with --resume, the checkpoint's "
            "folder.",
            rich_help_panel="Run",
        ),
        annotation=Path | None,
    ),
    inspect.Parameter(
        "name",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            DEFAULT_RUN_NAME,
            "--name",
            help=f"Run name: the run goes to {DEFAULT_RUNS_DIR}/<name>-<n>, n the next free.",
            rich_help_panel="Run",
        ),
        annotation=str,
    ),
    inspect.Parameter(
        "runs_dir",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            DEFAULT_RUNS_DIR, "--runs-dir", help="Where named runs go.", rich_help_panel="Run"
        ),
        annotation=Path,
    ),
    inspect.Parameter(
        "overwrite",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            False,
            "--overwrite",
            help="Replace the run in --out-dir (its files only; nothing else is removed).",
            rich_help_panel="Run",
        ),
        annotation=bool,
    ),
    inspect.Parameter(
        "resume",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            None,
            "--resume",
            metavar="PATH",
            help="Continue the run in this folder (its checkpoint.pt) or checkpoint, bit for bit "
            "on the same device, on its saved learning-rate schedule.",
            rich_help_panel="Run",
        ),
        annotation=Path | None,
    ),
    inspect.Parameter(
        "extend",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            None,
            "--extend",
            metavar="constant|reanneal",
            help="With --resume and a --total-steps past the saved schedule: hold the current "
            "learning rate (constant) or decay it again from the current rate to the new end "
            "(reanneal).",
            rich_help_panel="Run",
        ),
        annotation=str | None,
    ),
    inspect.Parameter(
        "no_blueprints",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            False,
            "--no-blueprints",
            help="Ablation: hide blueprint_indices (all -1) from the policy "
            "(= --no-use-blueprint-indices).",
            rich_help_panel="Run",
        ),
        annotation=bool,
    ),
    inspect.Parameter(
        "progress",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            None,
            "--progress/--no-progress",
            help="A progress bar, or plain log lines every log_every updates. Default: a bar on "
            "a terminal, lines otherwise.",
            show_default=False,
            rich_help_panel="Run",
        ),
        annotation=bool | None,
    ),
]


def _field_option(f: dataclasses.Field[Any]) -> inspect.Parameter:
    from esper_ref.config import field_help, field_type_name

    default = getattr(TrainConfig(), f.name)
    if isinstance(default, dict):
        shown = ",".join(f"{k}={v:g}" for k, v in default.items())
    else:
        shown = "none" if default is None else str(default)
    flag = "--" + f.name.replace("_", "-")
    help_text = f"{field_help()[f.name]} (default: {shown})".replace("``", "'")
    if f.type in ("bool", bool):
        option = typer.Option(
            None,
            f"{flag}/--no-{flag[2:]}",
            help=help_text,
            show_default=False,
            rich_help_panel="Training config",
        )
        annotation: Any = bool | None
    else:
        option = typer.Option(
            None,
            flag,
            metavar=field_type_name(f.name),
            help=help_text,
            show_default=False,
            rich_help_panel="Training config",
        )
        annotation = str | None
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
    )


def _internal_error(exc: Exception) -> None:
    import os

    if os.environ.get("ESPER_REF_DEBUG"):
        raise exc
    _fail(f"internal error: {type(exc).__name__}: {exc} (ESPER_REF_DEBUG=1 shows where)")


def _echo(line: str) -> None:
    # Flushed: a log file or a pipe gets each line as it happens, not at the end of the run.
    typer.echo(line)
    sys.stdout.flush()


def _config_from_options(
    values: dict[str, Any], config_file: Path | None, no_blueprints: bool
) -> dict[str, Any]:
    """The TrainConfig fields the user set: the --config file, then the options over it."""
    from esper_ref.config import parse_field

    given: dict[str, Any] = {}
    if config_file is not None:
        given.update(
            {
                k: v
                for k, v in TrainConfig.from_toml(config_file).to_dict().items()
                if v != getattr(TrainConfig(), k)
            }
        )
    for f in dataclasses.fields(TrainConfig):
        raw = values.get(f.name)
        if raw is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(raw, bool):
            given[f.name] = raw
            continue
        try:
            given[f.name] = parse_field(f.name, raw)
        except ValueError as exc:
            raise ValueError(f"{flag}: {str(exc).removeprefix(f.name + ': ')}") from None
    if no_blueprints:
        given["use_blueprint_indices"] = False
    return given


def train(**values: Any) -> None:
    """Train the policy on the built-in slot-lifecycle environment.

    Every TrainConfig field is an option below; a run's folder gets config.json (every field,
    versions, git commit, command line), metrics.csv, eval.csv, checkpoint.pt, best.pt and
    learning_curve.png.
    """
    from esper_ref.config import RESUME_SETTABLE
    from esper_ref.run_io import RESUME_KEYS, RunFolderError, load_checkpoint, next_run_dir
    from esper_ref.train import Trainer

    config_file = values.pop("config_file")
    out_dir: Path | None = values.pop("out_dir")
    name: str = values.pop("name")
    runs_dir: Path = values.pop("runs_dir")
    overwrite: bool = values.pop("overwrite")
    resume: Path | None = values.pop("resume")
    extend: str | None = values.pop("extend")
    no_blueprints: bool = values.pop("no_blueprints")
    progress: bool | None = values.pop("progress")
    command = [Path(sys.argv[0]).name, *sys.argv[1:]]
    try:
        if extend is not None and extend not in ("constant", "reanneal"):
            raise ValueError(f"--extend: expected constant or reanneal, got {extend!r}")
        if extend is not None and resume is None:
            raise ValueError("--extend applies to --resume only")
        given = _config_from_options(values, config_file, no_blueprints)
        if resume is not None:
            fixed = sorted(set(given) - RESUME_SETTABLE)
            if fixed:
                raise ValueError(
                    f"--resume continues a run as saved; cannot change {', '.join(fixed)} "
                    f"(only {', '.join(sorted(RESUME_SETTABLE))})"
                )
            ckpt = resume / "checkpoint.pt" if resume.is_dir() else resume
            state = load_checkpoint(ckpt, need=RESUME_KEYS)
            saved = TrainConfig.from_dict(state["config"])
            done = int(state["counters"]["update"])
            target = TrainConfig.from_dict(
                {k: v for k, v in given.items() if k == "total_steps"}, base=saved
            )
            if done >= target.num_updates:
                _echo(
                    f"{ckpt}: the run already finished (update {done} of {saved.num_updates}, "
                    f"{int(state['counters']['global_step']):,} env steps); to train on, pass a "
                    "larger --total-steps with --extend constant or --extend reanneal"
                )
                return
            trainer = Trainer.resume(
                ckpt,
                out_dir=out_dir,
                overrides=given,
                extend=extend,  # type: ignore[arg-type]
                overwrite=overwrite,
                command=command,
            )
            tail = trainer.schedule.describe_tail()
            _echo(
                f"resuming {ckpt} at update {trainer.update_idx} "
                f"({trainer.global_step:,} env steps); learning rate {tail}"
            )
        else:
            cfg = TrainConfig.from_dict(given).validate()
            from esper_ref.devices import check_device

            check_device(cfg.device)  # before a folder is created for a run that cannot start
            if out_dir is None:
                # next_run_dir has claimed a new folder for this run: it is ours to fill.
                folder = next_run_dir(runs_dir, name)
                trainer = Trainer(cfg, out_dir=folder, overwrite=True, command=command)
            else:
                trainer = Trainer(cfg, out_dir=out_dir, overwrite=overwrite, command=command)
    except (ValueError, FileNotFoundError, RunFolderError) as exc:
        _fail(str(exc))
        return
    cfg = trainer.config
    folder = trainer.files.folder if trainer.files else Path(".")
    _echo(f"run folder: {folder}")
    _echo(
        f"training: {cfg.num_envs} envs x {cfg.num_steps} steps per update, "
        f"{cfg.num_updates} updates ({cfg.num_updates * cfg.batch_size:,} env steps), "
        f"seed {cfg.seed}, device {cfg.device}"
    )
    from esper_ref.report import Progress

    # A bar on a terminal (or with --progress); plain flushed lines otherwise, --no-progress too.
    show = Progress(
        cfg.num_updates * cfg.batch_size,
        trainer.global_step,
        cfg.num_updates,
        bar=progress is True or (progress is None and sys.stdout.isatty()),
        log_every=cfg.log_every,
        echo=_echo,
    )

    def on_update(row: dict[str, float]) -> None:
        show.update(row, trainer.recent_return(), trainer.last_eval_text())

    try:
        try:
            result = trainer.train(on_update=on_update)
        finally:
            show.close()
        summary = trainer.summary()
    except KeyboardInterrupt:
        ckpt = folder / "checkpoint.pt"
        if ckpt.is_file():
            _echo(
                f"interrupted at update {trainer.update_idx}; --resume {folder} continues from "
                "its last checkpoint"
            )
        else:
            _echo(f"interrupted at update {trainer.update_idx}, before the first checkpoint")
        raise typer.Exit(130) from None
    except OSError as exc:
        _fail(f"cannot write the run's files in {folder}: {exc.strerror or exc}")
        return
    except Exception as exc:  # one line for the user; the traceback with ESPER_REF_DEBUG=1
        _internal_error(exc)
        return
    _echo(
        f"done: {result.global_step:,} env steps, {result.updates} updates, "
        f"{result.wall_time:.1f} s ({result.global_step / max(result.wall_time, 1e-9):,.0f} "
        "env steps/s over the whole run)"
    )
    for line in summary:
        _echo(line)
    written = [p.name for p in sorted(folder.iterdir()) if p.is_file()]
    _echo(f"files in {folder}: {', '.join(written)}")


train.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [*_TRAIN_OPTIONS, *(_field_option(f) for f in dataclasses.fields(TrainConfig))]
)
app.command("train", context_settings={"max_content_width": 100}, no_args_is_help=False)(train)


@app.command()
def evaluate(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A run folder (its checkpoint.pt, or best.pt with --best) or a checkpoint file."
        ),
    ],
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes",
            "-n",
            help="Episodes to average over. Default: as many as the 95% interval needs to be "
            "within ±--half-width (at least 200).",
        ),
    ] = None,
    half_width: Annotated[
        float,
        typer.Option("--half-width", help="Target half-width of the 95% interval."),
    ] = 0.2,
    best: Annotated[
        bool, typer.Option("--best", help="With a run folder: evaluate its best.pt.")
    ] = False,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the evaluation environments.")
    ] = 12345,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="Device to evaluate on. Default: the checkpoint's, or cpu when that one is not "
            "usable here.",
        ),
    ] = None,
    stochastic: Annotated[
        bool,
        typer.Option("--stochastic", help="Sample actions instead of the most likely ones."),
    ] = False,
) -> None:
    """The mean return of a saved policy with its 95% interval, against the target, the
    scripted oracle and the random policy."""
    import numpy as np

    from esper_ref.evaluation import (
        evaluate_to_precision,
        load_for_evaluation,
        references,
        run_episodes,
    )
    from esper_ref.report import describe_return
    from esper_ref.stats import mean_ci
    from esper_ref.train import make_env

    try:
        if episodes is not None and episodes < 1:
            raise ValueError(f"--episodes: must be >= 1, got {episodes}")
        if half_width <= 0:
            raise ValueError(f"--half-width: must be > 0, got {half_width}")
        if not 0 <= seed < 2**63:
            raise ValueError(f"--seed: must be in [0, 2**63 - 1], got {seed}")
        path = checkpoint
        if path.is_dir():
            path = path / ("best.pt" if best else "checkpoint.pt")
        elif best:
            raise ValueError("--best: give a run folder, not a checkpoint file")
        loaded = load_for_evaluation(path, device)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    cfg = loaded.config
    counters = loaded.state.get("counters", {})
    typer.echo(
        f"checkpoint: {path} (update {counters.get('update', '?')}, "
        f"{int(counters.get('global_step', 0)):,} env steps), device {cfg.device}"
    )
    hide = not cfg.use_blueprint_indices
    try:
        if episodes is None:
            env = make_env(cfg, num_envs=256, seed=seed)
            ci, returns = evaluate_to_precision(
                env, loaded.policy, loaded.obs_rms, hide, not stochastic, seed, half_width
            )
        else:
            env = make_env(cfg, num_envs=min(episodes, 256), seed=seed)
            returns = run_episodes(
                env, loaded.policy, episodes, loaded.obs_rms, hide, not stochastic, seed
            )
            ci = mean_ci(returns)
    except Exception as exc:  # one line for the user; the traceback with ESPER_REF_DEBUG=1
        _internal_error(exc)
        return
    arr = np.asarray(returns)
    refs = references(cfg.num_slots, cfg.episode_length)
    kind = "sampled" if stochastic else "greedy"
    typer.echo(f"{kind} return {describe_return(ci, refs)}")
    typer.echo(
        f"mean return: {arr.mean():.4f} (std {arr.std():.4f}, min {arr.min():.4f}, "
        f"max {arr.max():.4f}) over {len(arr)} episodes"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    return run(app, PROG, argv)
