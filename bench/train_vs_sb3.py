"""esper_ref PPO vs sb3-contrib MaskablePPO on the built-in slot-lifecycle task, side by side.

Same task, same env-step budget, one process, one torch thread each:

* **esper_ref**: ``Trainer`` with its defaults (the recurrent op-conditioned policy that sees
  ``blueprint_indices``) on ``SlotLifecycleVecEnv``.
* **MaskablePPO**: sb3-contrib on ``SlotLifecycleGymEnv`` (features plus a one-hot of each
  slot's blueprint, the same information) in a ``DummyVecEnv`` of as many envs, with action
  masks.
* **ablation**: esper_ref with every blueprint index replaced by -1.

"Reached the target" = the mean return of the last ``--window`` finished training episodes
is at least the env's target (80% of the scripted oracle's return). Final returns are
greedy-policy evaluations of the final policy on fresh seeds. A run that never reaches the
target within the budget counts as the budget (a ratio against it is then a bound; a line
before the last says so). Over several ``--seeds``: final returns as a mean with a 95%
Student-t interval, the paired gap (ours - MaskablePPO, seed by seed) with its interval, and
the ratios of the summed steps and wall times to target.

Every run is cached in ``bench/_results/`` (gitignored): MaskablePPO keyed by its config and
the env's behaviour, esper_ref by its config and the source of the modules that decide what it
computes. Retuning esper_ref never reruns MaskablePPO; ``--no-cache`` reruns everything. Wall
times are those of the run that filled the cache (on a shared machine, note its load).

Wall time to target: cached runs may have been timed under very different machine loads, so
the ratio on the last line is each learner's steps to target divided by its throughput, both
throughputs measured side by side at the end of the run (``--speed-steps`` steps each, in
alternation); the ratio of the runs' own wall times is printed beside it.

Last line: ``steps_ratio_vs_maskableppo: X wall_ratio_vs_maskableppo: Y
return_gap_vs_maskableppo: Z ablation_return_gap: W`` with ratios ours/theirs (below 1 = we
are faster) and the gaps = esper_ref's final return minus the other's (return units).

    python bench/train_vs_sb3.py --seeds 0 1 2 3     # the comparison in the README
    python bench/train_vs_sb3.py --quick             # smoke run (small budget)
    python bench/train_vs_sb3.py --competitor-only --seeds 0 1 2 3   # fill the cache first
    python bench/train_vs_sb3.py --ours-only --set learning_rate=1e-3 --seeds 0 1   # tuning
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import math
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper_ref.config import TrainConfig
from esper_ref.env import SlotLifecycleVecEnv, target_return
from esper_ref.evaluation import run_episodes
from esper_ref.stats import mean_ci
from esper_ref.train import Trainer

RESULTS_DIR = Path(__file__).parent / "_results"


@dataclass
class Run:
    name: str
    seed: int = 0
    steps_to_target: int | None = None
    wall_to_target: float | None = None
    total_steps: int = 0
    wall: float = 0.0
    final_return: float = math.nan
    curve: list[tuple[int, float]] = field(default_factory=list)


class Tracker:
    """Rolling mean of finished episodes; records when it first reaches the target."""

    def __init__(self, run: Run, target: float, window: int, t0: float) -> None:
        self.run, self.target, self.t0 = run, target, t0
        self.recent: deque[float] = deque(maxlen=window)

    def add(self, returns: list[float], step: int) -> None:
        self.recent.extend(returns)
        if len(self.recent) < self.recent.maxlen:  # type: ignore[operator]
            return
        mean = float(np.mean(self.recent))
        if not self.run.curve or step - self.run.curve[-1][0] >= 5000:
            self.run.curve.append((step, mean))
        if self.run.steps_to_target is None and mean >= self.target:
            self.run.steps_to_target = step
            self.run.wall_to_target = time.perf_counter() - self.t0


def run_esper(name: str, cfg: TrainConfig, target: float, window: int, eval_eps: int) -> Run:
    run = Run(name, cfg.seed)
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    tracker = Tracker(run, target, window, t0)
    seen = 0

    def on_update(row: dict[str, float]) -> None:
        nonlocal seen
        new = trainer.episode_returns[seen:]
        seen = len(trainer.episode_returns)
        tracker.add(new, trainer.global_step)

    trainer.train(on_update=on_update)
    run.wall = time.perf_counter() - t0
    run.total_steps = trainer.global_step
    env = SlotLifecycleVecEnv(
        num_envs=min(eval_eps, 64), num_slots=cfg.num_slots, seed=10_000 + cfg.seed
    )
    rets = run_episodes(
        env,
        trainer.policy,
        eval_eps,
        trainer.obs_rms,
        blank_blueprints=not cfg.use_blueprint_indices,
        deterministic=True,
        seed=10_000 + cfg.seed,
    )
    run.final_return = float(np.mean(rets))
    return run


def _maskable_ppo(venv: Any, seed: int, args: Any) -> Any:
    from sb3_contrib import MaskablePPO

    return MaskablePPO(
        "MlpPolicy",
        venv,
        n_steps=args.sb3_n_steps,
        batch_size=args.sb3_batch_size,
        n_epochs=args.sb3_epochs,
        learning_rate=args.sb3_lr,
        ent_coef=args.sb3_ent_coef,
        seed=seed,
        device="cpu",
        verbose=0,
    )


def throughput(cfg: TrainConfig, steps: int, args: Any) -> tuple[float, float]:
    """Env steps per second of esper_ref's training and of MaskablePPO's, each over ``steps``
    steps from a fresh start, timed in alternation (twice each, the mean kept), so that both
    see the same machine load. Cached runs may have been timed under very different loads; a
    wall time to target is their steps to target over these rates."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    from esper_ref.env.gym_env import SlotLifecycleGymEnv

    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(2):
        trainer = Trainer(dataclasses.replace(cfg, total_steps=steps))
        t0 = time.perf_counter()
        trainer.train()
        ours.append(trainer.global_step / (time.perf_counter() - t0))
        venv = make_vec_env(
            SlotLifecycleGymEnv, n_envs=cfg.num_envs, seed=cfg.seed, vec_env_cls=DummyVecEnv
        )
        model = _maskable_ppo(venv, cfg.seed, args)
        t0 = time.perf_counter()
        model.learn(total_timesteps=steps)
        theirs.append(model.num_timesteps / (time.perf_counter() - t0))
    return float(np.mean(ours)), float(np.mean(theirs))


def run_maskable_ppo(
    num_envs: int, budget: int, seed: int, target: float, window: int, eval_eps: int, args: Any
) -> Run:
    # Imported here only: sb3-contrib is a benchmark-only dependency.
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    from esper_ref.env.gym_env import SlotLifecycleGymEnv

    run = Run("maskable_ppo", seed)
    t0 = time.perf_counter()
    tracker = Tracker(run, target, window, t0)
    venv = make_vec_env(SlotLifecycleGymEnv, n_envs=num_envs, seed=seed, vec_env_cls=DummyVecEnv)

    class Track(BaseCallback):
        def _on_step(self) -> bool:
            rets = [float(i["episode"]["r"]) for i in self.locals["infos"] if "episode" in i]
            if rets:
                tracker.add(rets, self.num_timesteps)
            return True

    model = _maskable_ppo(venv, seed, args)
    model.learn(total_timesteps=budget, callback=Track())
    run.wall = time.perf_counter() - t0
    run.total_steps = int(model.num_timesteps)

    eval_env = SlotLifecycleGymEnv(seed=10_000 + seed)
    rets: list[float] = []
    obs, _ = eval_env.reset(seed=10_000 + seed)
    total = 0.0
    while len(rets) < eval_eps:
        action, _ = model.predict(obs, action_masks=get_action_masks(eval_env), deterministic=True)
        obs, r, term, trunc, _ = eval_env.step(action)
        total += float(r)
        if term or trunc:
            rets.append(total)
            total = 0.0
            obs, _ = eval_env.reset()
    run.final_return = float(np.mean(rets))
    return run


def _fmt(run: Run, budget: int) -> str:
    reached = (
        f"target at {run.steps_to_target:,} steps / {run.wall_to_target:.1f} s"
        if run.steps_to_target is not None
        else f"target NOT reached in {budget:,} steps"
    )
    return (
        f"{run.name:>13} seed {run.seed}: {reached}; {run.total_steps:,} steps in "
        f"{run.wall:.1f} s ({run.total_steps / max(run.wall, 1e-9):,.0f} steps/s); "
        f"final greedy return {run.final_return:.3f}"
    )


def _env_fingerprint() -> str:
    """Hash of a seeded random-action trace of the env: a cached competitor result is valid
    for an env that behaves the same (refactoring its code keeps the cache; changing its
    dynamics, rewards or observations does not)."""
    from esper_ref.env import random_actions

    env = SlotLifecycleVecEnv(num_envs=8, seed=0)
    gen = torch.Generator().manual_seed(0)
    obs = env.reset(seed=0)
    h = hashlib.blake2b(digest_size=8)
    for _ in range(200):
        obs, reward, terminated, truncated, _info = env.step(random_actions(obs.masks, gen))
        for t in (obs.features, obs.blueprint_indices, reward, terminated, truncated):
            h.update(t.numpy().tobytes())
        for name in sorted(obs.masks):
            h.update(obs.masks[name].numpy().tobytes())
    return h.hexdigest()


def cached_maskable_ppo(
    num_envs: int, budget: int, seed: int, target: float, window: int, eval_eps: int, args: Any
) -> tuple[Run, bool]:
    """MaskablePPO's run for this config, from ``bench/_results/`` when it was run before.

    The key is everything that changes its result (its hyperparameters, budget, seed, the
    env's source, the sb3-contrib version), so retuning esper_ref never reruns it.
    """
    import sb3_contrib

    key = {
        "learner": "maskable_ppo",
        "num_envs": num_envs,
        "budget": budget,
        "seed": seed,
        "window": window,
        "eval_eps": eval_eps,
        "target": round(target, 6),
        "n_steps": args.sb3_n_steps,
        "batch_size": args.sb3_batch_size,
        "epochs": args.sb3_epochs,
        "lr": args.sb3_lr,
        "ent_coef": args.sb3_ent_coef,
        "env": _env_fingerprint(),
        "sb3_contrib": sb3_contrib.__version__,
    }
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=8).hexdigest()
    path = RESULTS_DIR / f"maskable_ppo-seed{seed}-{digest}.json"
    if path.is_file() and not args.no_cache:
        try:
            data = json.loads(path.read_text())
            if data.get("key") == key:
                run = Run(**data["run"])
                run.curve = [(int(s), float(r)) for s, r in run.curve]
                return run, True
        except (ValueError, TypeError, KeyError):
            pass  # a damaged cache entry is recomputed
    run = run_maskable_ppo(num_envs, budget, seed, target, window, eval_eps, args)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "run": asdict(run)}, indent=1))
    os.replace(tmp, path)
    return run, False


#: The modules whose code decides what a training run computes; a cached esper_ref result is
#: valid for exactly this code (a change to the CLI, the reports or the docs keeps it). The
#: config's values are part of the key themselves, so new defaults in config.py keep it too.
TRAINING_CODE = (
    "buffer.py",
    "bundle.py",
    "distributions.py",
    "evaluation.py",
    "network.py",
    "ppo.py",
    "train.py",
    "env/gym_env.py",
    "env/oracle.py",
    "env/tables.py",
    "env/vec_env.py",
)


def _code_fingerprint() -> str:
    import esper_ref

    root = Path(esper_ref.__file__).parent
    h = hashlib.blake2b(digest_size=8)
    for name in TRAINING_CODE:
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()


def cached_esper(
    name: str, cfg: TrainConfig, target: float, window: int, eval_eps: int, args: Any
) -> tuple[Run, bool]:
    """esper_ref's run for this config and this training code, from ``bench/_results/``
    when it was run before (``--no-cache`` reruns it)."""
    key = {
        "learner": name,
        "config": cfg.to_dict(),
        "window": window,
        "eval_eps": eval_eps,
        "target": round(target, 6),
        "code": _code_fingerprint(),
        "torch": torch.__version__,
    }
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=8).hexdigest()
    path = RESULTS_DIR / f"{name}-seed{cfg.seed}-{digest}.json"
    if path.is_file() and not args.no_cache:
        try:
            data = json.loads(path.read_text())
            if data.get("key") == key:
                run = Run(**data["run"])
                run.curve = [(int(s), float(r)) for s, r in run.curve]
                return run, True
        except (ValueError, TypeError, KeyError):
            pass
    run = run_esper(name, cfg, target, window, eval_eps)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "run": asdict(run)}, indent=1))
    os.replace(tmp, path)
    return run, False


def _steps(r: Run) -> float:
    return float(r.steps_to_target if r.steps_to_target is not None else r.total_steps)


def _wall(r: Run) -> float:
    return r.wall_to_target if r.wall_to_target is not None else r.wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run with a small budget")
    p.add_argument("--budget", type=int, default=None, help="env steps per learner")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="seeds to run (e.g. --seeds 0 1 2 3)"
    )
    p.add_argument("--window", type=int, default=100, help="episodes in the rolling mean")
    p.add_argument(
        "--speed-steps",
        type=int,
        default=20_000,
        help="env steps of each learner in the side-by-side throughput measurement",
    )
    p.add_argument("--eval-episodes", type=int, default=256)
    p.add_argument("--skip-ablation", action="store_true")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a TrainConfig field of esper_ref (and the ablation)",
    )
    p.add_argument(
        "--competitor-only", action="store_true", help="only run (and cache) MaskablePPO"
    )
    p.add_argument(
        "--ours-only", action="store_true", help="only run esper_ref (no competitor, no ratios)"
    )
    p.add_argument("--no-cache", action="store_true", help=f"rerun even what {RESULTS_DIR} has")
    # MaskablePPO: its defaults (lr 3e-4, 10 epochs, no entropy bonus) except a rollout of
    # 256 steps per env and minibatches of 256, which update far more often than the default
    # 2048-step rollout and learn faster per env step on this task.
    p.add_argument("--sb3-n-steps", type=int, default=256)
    p.add_argument("--sb3-batch-size", type=int, default=256)
    p.add_argument("--sb3-epochs", type=int, default=10)
    p.add_argument("--sb3-lr", type=float, default=3e-4)
    p.add_argument("--sb3-ent-coef", type=float, default=0.0)
    args = p.parse_args()
    torch.set_num_threads(1)
    budget = args.budget or (20_000 if args.quick else 500_000)
    eval_eps = 32 if args.quick else args.eval_episodes
    target = target_return()
    print(f"target return {target:.3f} (80% of the scripted oracle); budget {budget:,} steps")

    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            overrides[key] = raw
    if overrides:
        print(f"esper_ref overrides: {overrides}")
    ours: list[Run] = []
    theirs: list[Run] = []
    ablations: list[Run] = []
    for seed in args.seeds:
        if not args.ours_only:
            run, cached = cached_maskable_ppo(
                args.num_envs, budget, seed, target, args.window, eval_eps, args
            )
            theirs.append(run)
            print(_fmt(run, budget) + (" (cached)" if cached else ""), flush=True)
        if args.competitor_only:
            continue
        cfg = TrainConfig(num_envs=args.num_envs, total_steps=budget, seed=seed, **overrides)
        run, cached = cached_esper("esper_ref", cfg, target, args.window, eval_eps, args)
        ours.append(run)
        print(_fmt(run, budget) + (" (cached)" if cached else ""), flush=True)
        if not args.skip_ablation:
            ab_cfg = dataclasses.replace(cfg, use_blueprint_indices=False)
            run, cached = cached_esper("ablation", ab_cfg, target, args.window, eval_eps, args)
            ablations.append(run)
            print(_fmt(run, budget) + (" (cached)" if cached else ""), flush=True)
    if args.competitor_only:
        return

    def summary(name: str, runs: list[Run]) -> str:
        ret = mean_ci([r.final_return for r in runs])
        steps = mean_ci([_steps(r) for r in runs])
        reached = sum(r.steps_to_target is not None for r in runs)
        return (
            f"{name:>13}: final greedy return {ret} (95% CI over {len(runs)} seeds); "
            f"steps to target {steps.mean:,.0f}; reached the target on {reached}/{len(runs)}"
        )

    print(summary("esper_ref", ours))
    if ablations:
        print(summary("ablation", ablations))
    if args.ours_only:
        return
    print(summary("maskable_ppo", theirs))
    steps_ratio = sum(map(_steps, ours)) / sum(map(_steps, theirs))
    measured_wall = sum(map(_wall, ours)) / sum(map(_wall, theirs))
    base = TrainConfig(num_envs=args.num_envs, seed=args.seeds[0], **overrides)
    ours_sps, theirs_sps = throughput(base, args.speed_steps, args)
    wall_ratio = (sum(map(_steps, ours)) / ours_sps) / (sum(map(_steps, theirs)) / theirs_sps)
    print(
        f"throughput side by side ({args.speed_steps:,} steps each, alternating): esper_ref "
        f"{ours_sps:,.0f} steps/s, maskable_ppo {theirs_sps:,.0f} steps/s "
        f"({ours_sps / theirs_sps:.2f}x)"
    )
    print(
        f"wall time to target: {measured_wall:.3f} as the runs measured it (each under its own "
        f"machine load), {wall_ratio:.3f} as steps to target over the side-by-side rates"
    )
    if any(r.steps_to_target is None for r in theirs) and all(
        r.steps_to_target is not None for r in ours
    ):
        print("MaskablePPO missed the target on some seed: the ratios are upper bounds")
    if any(r.steps_to_target is None for r in ours):
        print("esper_ref missed the target on some seed: the ratios use its whole budget there")
    gap = mean_ci([o.final_return - t.final_return for o, t in zip(ours, theirs, strict=True)])
    ab_gap = (
        float(
            np.mean([o.final_return - a.final_return for o, a in zip(ours, ablations, strict=True)])
        )
        if ablations
        else math.nan
    )
    print(f"final return gap esper_ref - maskable_ppo (paired by seed): {gap}")
    print(
        f"steps_ratio_vs_maskableppo: {steps_ratio:.3f} "
        f"wall_ratio_vs_maskableppo: {wall_ratio:.3f} "
        f"return_gap_vs_maskableppo: {gap.mean:.3f} "
        f"ablation_return_gap: {ab_gap:.3f}"
    )


if __name__ == "__main__":
    main()
