"""Checkpoints of a training run: what they hold, and resuming from one.

A checkpoint holds the network, the optimiser, the observation normaliser, the learning-rate
schedule, the counters, the evaluation history, every RNG state (torch, numpy, python, the env's)
and the in-flight rollout (observation and LSTM state), so a resumed run continues bit for bit
on the same device. Files are written by ``run_io``; this module decides what goes in them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from esper_ref import __version__
from esper_ref.config import RESUME_SETTABLE, TrainConfig
from esper_ref.evaluation import EvalPoint
from esper_ref.run_io import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    RESUME_KEYS,
    RunFiles,
    RunFolderError,
    claim_out_dir,
    from_safe,
    load_checkpoint,
    load_policy_weights,
    np_state_from_safe,
    numpy_rng_state,
    run_metadata,
    to_safe,
    to_tuple,
)
from esper_ref.schedule import ExtendMode, LRSchedule
from esper_ref.stats import MeanCI

if TYPE_CHECKING:
    from esper_ref.train import Trainer


def trainer_state(t: Trainer) -> dict[str, Any]:
    """Everything a resumed run needs to continue bit for bit."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": __version__,
        "config": t.config.to_dict(),
        "policy": t.policy.state_dict(),
        "optimizer": t.ppo.optimizer.state_dict(),
        "obs_rms": None if t.obs_rms is None else t.obs_rms.state_dict(),
        "schedule": t.schedule.to_state(),
        "counters": {
            "update": t.update_idx,
            "global_step": t.global_step,
            "wall_time": t.wall_time,
            "nonfinite_skips": t.ppo.total_nonfinite_skips,
            "kl_stops": t.kl_stops,
            "best_eval": t.best_eval,
            "target_reached": list(t.target_reached) if t.target_reached else None,
        },
        "evals": [[e.update, e.global_step, e.ci.mean, e.ci.half_width, e.ci.n] for e in t.evals],
        "episodes": {"returns": list(t.episode_returns), "steps": list(t.episode_steps)},
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": numpy_rng_state(),
            "python": random.getstate(),
        },
        "env": to_safe(t.env.state_dict()),
        "rollout": {
            "features": t.obs.features,
            "blueprint_indices": t.obs.blueprint_indices,
            "masks": dict(t.obs.masks),
            "hidden": t.hidden,
        },
    }


def resume_trainer(
    cls: type[Trainer],
    path: str | Path,
    out_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    extend: ExtendMode | None = None,
    overwrite: bool = False,
    command: Sequence[str] | None = None,
) -> Trainer:
    """Rebuild the run saved at ``path`` (a checkpoint, or a run folder for its
    ``checkpoint.pt``); training continues bit for bit on the same device.

    ``overrides`` may change the fields in ``config.RESUME_SETTABLE`` only. A
    ``total_steps`` past the saved schedule needs ``extend`` (see ``LRSchedule.extend``).
    Outputs go to the checkpoint's folder, or to a new ``out_dir`` that starts with a
    copy of the metrics up to the checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = load_checkpoint(path, need=RESUME_KEYS)
    overrides = dict(overrides or {})
    fixed = sorted(set(overrides) - RESUME_SETTABLE)
    if fixed:
        raise ValueError(
            f"--resume continues a run as saved; cannot change {', '.join(fixed)} "
            f"(only {', '.join(sorted(RESUME_SETTABLE))})"
        )
    try:
        saved_cfg = TrainConfig.from_dict(state["config"])
    except ValueError as exc:
        raise ValueError(f"{path}: checkpoint's config is not valid ({exc})") from None
    cfg = TrainConfig.from_dict(overrides, base=saved_cfg).validate()
    done = int(state["counters"]["update"])
    schedule = (
        LRSchedule.from_state(state["schedule"])
        if "schedule" in state
        else LRSchedule.for_config(saved_cfg)
    )
    if cfg.num_updates > schedule.last_update:
        if extend is None:
            raise ValueError(
                f"--total-steps {cfg.total_steps:,} runs past the learning-rate schedule "
                f"(it ends at update {schedule.last_update}); say how it continues: "
                "--extend constant (hold the current rate) or --extend reanneal (decay "
                "it again from the current rate to the new end)"
            )
        schedule = schedule.extend(done, cfg.num_updates, extend)

    src = path.parent
    dest = Path(out_dir) if out_dir is not None else src
    same = dest.resolve() == src.resolve()
    if same and path.name != CHECKPOINT_NAME:
        raise RunFolderError(
            f"resuming {path.name} into its own folder would replace the run's later "
            f"{CHECKPOINT_NAME}; pass --out-dir for a new folder"
        )
    trainer = cls(cfg)
    trainer.schedule = schedule
    restore(trainer, state, path)
    if same:
        trainer.files = RunFiles(src)
        trainer.files.keep_until(done)
    else:
        trainer.files = RunFiles(claim_out_dir(dest, overwrite))
        trainer.files.keep_until(done, source=RunFiles(src))
        meta = run_metadata(command)
        trainer.files.write_config(cfg.to_dict(), {**meta, "resumed_from": str(path)})
    trainer.files.add_resume(
        cfg.to_dict(),
        {
            "checkpoint": str(path),
            "update": done,
            "global_step": trainer.global_step,
            "total_steps": cfg.total_steps,
            "learning_rate": schedule.describe_tail(),
            **{k: v for k, v in run_metadata(command).items() if k in ("command", "time")},
        },
    )
    return trainer


def restore(t: Trainer, state: dict[str, Any], path: Path) -> None:
    """Load ``state`` (a checkpoint's contents) into a freshly built trainer."""
    load_policy_weights(t.policy, state, path)
    try:
        t.ppo.optimizer.load_state_dict(state["optimizer"])
        if t.obs_rms is not None and state["obs_rms"] is not None:
            t.obs_rms.load_state_dict(state["obs_rms"])
        c = state["counters"]
        t.update_idx = int(c["update"])
        t.global_step = int(c["global_step"])
        t.wall_time = float(c["wall_time"])
        t.ppo.total_nonfinite_skips = int(c["nonfinite_skips"])
        t.kl_stops = int(c.get("kl_stops", 0))
        t.best_eval = float(c.get("best_eval", -math.inf))
        reached = c.get("target_reached")
        t.target_reached = (int(reached[0]), int(reached[1])) if reached else None
        t.evals = [
            EvalPoint(int(u), int(g), MeanCI(float(m), float(h), int(n)))
            for u, g, m, h, n in state.get("evals", [])
        ]
        t.episode_returns = [float(x) for x in state["episodes"]["returns"]]
        t.episode_steps = [int(x) for x in state["episodes"]["steps"]]
        t.env.load_state_dict(from_safe(state["env"]))
        r = state["rollout"]
        t.obs = type(t.obs)(
            features=r["features"].to(t.device),
            blueprint_indices=r["blueprint_indices"].to(t.device),
            masks={h: m.to(t.device) for h, m in r["masks"].items()},
        )
        t.hidden = (r["hidden"][0].to(t.device), r["hidden"][1].to(t.device))
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(np_state_from_safe(state["rng"]["numpy"]))
        random.setstate(to_tuple(state["rng"]["python"]))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        raise ValueError(
            f"{path}: checkpoint cannot be resumed ({type(exc).__name__}: {exc})"
        ) from None
