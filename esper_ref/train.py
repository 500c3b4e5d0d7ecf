"""The training loop: rollout, bootstrap, GAE, PPO update; evaluation and checkpoints.

Reading order of one update (``Trainer.train_one_update``):

1. ``collect_rollout``: ``num_steps`` vectorised steps. Each step samples all heads once with
   ``get_action`` (its ``value`` is Q(s, sampled op), stored for the critic; its
   ``expected_value`` V(s) = sum over allowed ops of pi(op|s) Q(s, op) is GAE's baseline). A
   truncated row bootstraps from its post-step state (``info["final_obs"]``) in the configured
   mode (``_bootstrap_value``); a terminated row does not. The LSTM state of an env that ended
   is reset to zeros.
2. ``TamiyoRolloutBuffer.compute_returns_and_advantages``: GAE per env.
3. ``PPO.update`` on ``get_batched_sequences()`` (see ``ppo.py``).

Files (``run_io.py``), progress and plots (``report.py``) and evaluation (``evaluation.py``)
live in their own modules; ``train`` calls them between updates.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contracts.phase4 import NULL_BLUEPRINT
from esper_ref.buffer import TamiyoRolloutBuffer
from esper_ref.checkpoint import resume_trainer, trainer_state
from esper_ref.config import TrainConfig
from esper_ref.devices import check_device
from esper_ref.distributed import Comm, rank_seed, sampling_seed
from esper_ref.evaluation import (
    EVAL_SEED_OFFSET,
    FINAL_SEED_OFFSET,
    EvalPoint,
    References,
    evaluate_to_precision,
    references,
    run_episodes,
)
from esper_ref.ppo import PPO, UpdateStats
from esper_ref.report import Progress, describe_return, write_learning_curve
from esper_ref.run_io import (
    BEST_NAME,
    CHECKPOINT_NAME,
    RunFiles,
    claim_out_dir,
    run_metadata,
    save_checkpoint,
)
from esper_ref.schedule import ExtendMode, LRSchedule
from esper_ref.stats import MeanCI, mean_ci

#: Finished training episodes in the rolling mean that decides when the target was reached.
TARGET_WINDOW = 100


class RunningMeanStd:
    """Running mean/variance of observations (parallel-variance update, float64)."""

    def __init__(self, dim: int, device: str | torch.device = "cpu", clip: float = 10.0) -> None:
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.var = torch.ones(dim, dtype=torch.float64, device=device)
        self.count = 1e-4
        self.clip = clip

    def update(self, x: Tensor, comm: Comm | None = None) -> None:
        """Fold in the rows of ``x`` (of every rank's ``x``, with ``comm``)."""
        if comm is not None and comm.distributed:
            self.update_moments(*comm.moments(x))
            return
        x = x.detach().to(self.mean.dtype)
        self.update_moments(x.mean(0), x.var(0, unbiased=False), x.shape[0])

    def begin_update(self, x: Tensor, comm: Comm | None = None) -> Callable[[], None]:
        """``update`` in two halves: this starts it (with several ranks, the all-reduce of the
        moments sets off in the background) and the returned function completes it. One
        process defers the whole update to that call too, so it behaves as the ranks do
        (``x`` must stay unchanged until then)."""
        if comm is not None and comm.distributed:
            finish = comm.moments_async(x)
            return lambda: self.update_moments(*finish())
        return lambda: self.update(x)

    def update_moments(self, b_mean: Tensor, b_var: Tensor, b_count: int) -> None:
        delta = b_mean - self.mean
        tot = self.count + b_count
        self.mean = self.mean + delta * b_count / tot
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / tot
        self.var = m2 / tot
        self.count = tot

    def normalize(self, x: Tensor) -> Tensor:
        y = (x.to(self.mean.dtype) - self.mean) / torch.sqrt(self.var + 1e-8)
        return y.clamp(-self.clip, self.clip).to(x.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"].to(self.mean.device, torch.float64)
        self.var = state["var"].to(self.var.device, torch.float64)
        self.count = float(state["count"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_env(cfg: TrainConfig, num_envs: int | None = None, seed: int | None = None) -> Any:
    from esper_ref.env import SlotLifecycleVecEnv

    return SlotLifecycleVecEnv(
        num_envs=cfg.num_envs if num_envs is None else num_envs,
        num_slots=cfg.num_slots,
        episode_length=cfg.episode_length,
        seed=cfg.seed if seed is None else seed,
        device=cfg.device,
    )


def make_policy(cfg: TrainConfig, obs_dim: int) -> Any:
    from esper_ref.bundle import LSTMPolicyBundle

    return LSTMPolicyBundle(
        obs_dim,
        num_slots=cfg.num_slots,
        feature_dim=cfg.feature_dim,
        lstm_hidden_dim=cfg.lstm_hidden_dim,
        head_hidden_dim=cfg.head_hidden_dim,
        value_hidden_dim=cfg.value_hidden_dim,
        device=cfg.device,
    )


def _hidden_dim(hidden: tuple[Tensor, Tensor]) -> int:
    return int(hidden[0].shape[-1])


@dataclass
class TrainResult:
    global_step: int
    updates: int
    episode_returns: list[float] = field(default_factory=list)
    """Return of every finished episode, in order."""
    episode_steps: list[int] = field(default_factory=list)
    """``global_step`` at which each of those episodes finished."""
    wall_time: float = 0.0
    checkpoint: Path | None = None
    kl_stops: int = 0
    """Updates the KL early stop cut short (over the whole run, resumes included)."""
    evals: list[EvalPoint] = field(default_factory=list)

    def recent_return(self, window: int = TARGET_WINDOW) -> float:
        if not self.episode_returns:
            return math.nan
        return float(np.mean(self.episode_returns[-window:]))


class Trainer:
    """One training run: ``Trainer(config, out_dir)`` starts one (the folder must be new or
    empty, or ``overwrite=True``); ``Trainer.resume(checkpoint)`` continues one."""

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        env: Any = None,
        policy: Any = None,
        overwrite: bool = False,
        command: Sequence[str] | None = None,
        comm: Comm | None = None,
    ) -> None:
        self.config = config.validate()
        cfg = self.config
        self.device = check_device(cfg.device)  # before anything is built or written
        # Several ranks (esper_ref/distributed.py): each runs num_envs / world_size envs
        # seeded by rank; rank 0 alone writes the run's files.
        self.comm = comm if comm is not None else Comm()
        self.num_envs = self.comm.local_count(cfg.num_envs)
        self.run_folder = None if out_dir is None else Path(out_dir)
        self.files: RunFiles | None = None
        if out_dir is not None and self.comm.is_main:
            self.files = RunFiles(claim_out_dir(Path(out_dir), overwrite))
            self.files.write_config(
                cfg.to_dict(), {**run_metadata(command), "world_size": self.comm.world_size}
            )
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        seed_everything(cfg.seed)  # the same initial weights on every rank
        env_seed = rank_seed(cfg.seed, self.comm.rank)
        self.env = env if env is not None else make_env(cfg, self.num_envs, env_seed)
        self.policy = policy if policy is not None else make_policy(cfg, self.env.obs_dim)
        self.comm.same_parameters(list(self.policy.parameters()))
        # Each rank samples its own actions, from a stream apart from its envs' (see
        # sampling_seed). Rank 0 keeps the single process's CPU stream; its CUDA one has drawn
        # nothing yet (the weights are drawn on the CPU) and would start where its env's does.
        own = sampling_seed(cfg.seed, self.comm.rank)
        if self.comm.rank > 0:
            seed_everything(own)
        elif self.device.type == "cuda":
            torch.cuda.manual_seed_all(own)
        self.ppo = PPO(self.policy, cfg, self.comm)
        self.schedule = LRSchedule.for_config(cfg)
        self.obs_rms = RunningMeanStd(self.env.obs_dim, self.device) if cfg.obs_norm else None
        self.obs = self.env.reset(seed=env_seed)
        self.hidden = self.policy.initial_hidden(self.num_envs)
        self.buffer = TamiyoRolloutBuffer(
            self.num_envs,
            cfg.num_steps,
            self.env.obs_dim,
            cfg.num_slots,
            _hidden_dim(self.hidden),
            self.device,
        )
        self.update_idx = 0
        self.global_step = 0
        self.wall_time = 0.0
        self.episode_returns: list[float] = []
        self.episode_steps: list[int] = []
        self.kl_stops = 0
        self.evals: list[EvalPoint] = []
        self.best_eval = -math.inf
        self.target_reached: tuple[int, int] | None = None
        """(update, global_step) at which the rolling training return first reached it."""
        self._eval_env: Any = None

    @property
    def out_dir(self) -> Path | None:
        return None if self.files is None else self.files.folder

    def references(self) -> References:
        return references(self.config.num_slots, self.config.episode_length)

    # -- policy inputs -------------------------------------------------------------------

    def _features(self, raw: Tensor) -> Tensor:
        return raw if self.obs_rms is None else self.obs_rms.normalize(raw)

    def _blueprints(self, idx: Tensor) -> Tensor:
        # The ablation hides which blueprint sits where; everything else is unchanged.
        return idx if self.config.use_blueprint_indices else torch.full_like(idx, NULL_BLUEPRINT)

    def _bootstrap_value(
        self, feats: Tensor, bp: Tensor, masks: dict[str, Tensor], hidden: tuple[Tensor, Tensor]
    ) -> Tensor:
        """Value of a post-step state: Q(s', greedy op) or sum_op pi(op|s') Q(s', op)."""
        value: Tensor
        if self.config.bootstrap == "greedy":
            greedy = self.policy.get_action(feats, bp, masks, hidden=hidden, deterministic=True)
            value = greedy.value
        else:
            value = self.policy.expected_value(feats, bp, masks, hidden=hidden)
        return value

    # -- rollout -------------------------------------------------------------------------

    @torch.no_grad()
    def collect_rollout(self) -> list[tuple[int, float]]:
        """Fill the buffer and compute GAE; returns this rank's finished episodes as
        ``(global_step, return)``."""
        cfg = self.config
        self.buffer.reset()
        finished: list[tuple[int, float]] = []
        # The normaliser folds in each block of obs_norm_every steps (of every rank) once the
        # block's last step is normalised; the block's all-reduce travels while that step
        # computes, so the ranks wait at most one step for each other.
        block: list[Tensor] = []
        fold: Callable[[], None] | None = None
        for i in range(cfg.num_steps):
            obs, hidden = self.obs, self.hidden
            if fold is not None:
                fold()
                fold = None
            feats = self._features(obs.features)
            if self.obs_rms is not None:
                block.append(obs.features)
                if len(block) == cfg.obs_norm_every or i == cfg.num_steps - 1:
                    fold = self.obs_rms.begin_update(torch.cat(block), self.comm)
                    block = []
            bp = self._blueprints(obs.blueprint_indices)
            act = self.policy.get_action(feats, bp, obs.masks, hidden=hidden)
            next_obs, reward, terminated, truncated, info = self.env.step(act.actions)
            self.global_step += cfg.num_envs  # all ranks' envs: num_envs is the global count

            boot = torch.zeros(self.num_envs, device=self.device)
            need = truncated & ~terminated
            if bool(need.any()):
                rows = need.nonzero().squeeze(1)
                final = info["final_obs"]
                boot[rows] = self._bootstrap_value(
                    self._features(final.features[rows]),
                    self._blueprints(final.blueprint_indices[rows]),
                    {h: m[rows] for h, m in final.masks.items()},
                    (act.hidden[0][:, rows], act.hidden[1][:, rows]),
                )
            self.buffer.add(
                feats,
                bp,
                act.actions,
                act.log_probs,
                act.value,
                obs.masks,
                reward,
                terminated,
                truncated,
                info["executed_op"],
                hidden,
                state_values=act.expected_value,
                bootstrap_values=boot,
            )
            ended = terminated | truncated
            keep = (~ended).to(act.hidden[0].dtype).view(1, -1, 1)
            self.hidden = (act.hidden[0] * keep, act.hidden[1] * keep)
            self.obs = next_obs
            if bool(ended.any()):
                rets = info["episode_return"][ended].tolist()
                finished.extend((self.global_step, float(r)) for r in rets)

        if fold is not None:
            fold()
        # The rollout ended, the episodes did not: the last state's value is the same
        # baseline V(s) = sum_op pi(op|s) Q(s, op) that every stored step uses for GAE, not
        # a truncation bootstrap, so ``bootstrap`` (greedy or expected) does not apply here.
        feats = self._features(self.obs.features)
        last_v = self.policy.expected_value(
            feats, self._blueprints(self.obs.blueprint_indices), self.obs.masks, hidden=self.hidden
        )
        self.buffer.compute_returns_and_advantages(last_v, cfg.gamma, cfg.gae_lambda)
        return finished

    def train_one_update(self) -> dict[str, float]:
        cfg = self.config
        t0 = time.perf_counter()
        self.update_idx += 1
        lr = self.schedule.rate(self.update_idx)
        self.ppo.set_learning_rate(lr)
        # Every rank's episodes, ordered by the step they ended at (then by rank).
        ranks = self.comm.gather(self.collect_rollout())
        episodes = sorted((e for rank in ranks for e in rank), key=lambda e: e[0])
        self.episode_steps.extend(step for step, _ in episodes)
        self.episode_returns.extend(ret for _, ret in episodes)
        finished = [ret for _, ret in episodes]
        stats: UpdateStats = self.ppo.update(self.buffer.get_batched_sequences(cfg.seq_len))
        self.kl_stops += int(stats.early_stopped)
        dt = time.perf_counter() - t0
        self.wall_time += dt
        row: dict[str, float] = {
            "update": float(self.update_idx),
            "global_step": float(self.global_step),
            "wall_time": self.wall_time,
            "steps_per_sec": cfg.batch_size / dt if dt > 0 else math.nan,
            "episode_return_mean": float(np.mean(finished)) if finished else math.nan,
            "episodes": float(len(finished)),
            "learning_rate": lr,
        }
        row.update(stats.as_row())
        self._note_target()
        return row

    def _note_target(self) -> None:
        if self.target_reached is not None or len(self.episode_returns) < TARGET_WINDOW:
            return
        if self.recent_return() >= self.references().target:
            self.target_reached = (self.update_idx, self.global_step)

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self, episodes: int, seed: int) -> MeanCI:
        """Greedy return over ``episodes`` fresh episodes of separate envs seeded ``seed``;
        touches no RNG the training uses."""
        cfg = self.config
        n = min(episodes, 256)
        if self._eval_env is None or self._eval_env.num_envs != n:
            self._eval_env = make_env(cfg, num_envs=n, seed=seed)
        rets = run_episodes(
            self._eval_env,
            self.policy,
            episodes,
            self.obs_rms,
            blank_blueprints=not cfg.use_blueprint_indices,
            deterministic=True,
            seed=seed,
        )
        return mean_ci(rets)

    def _periodic_eval(self) -> None:
        cfg = self.config
        # Rank 0 evaluates and every rank records its result, so all agree on best.pt.
        seed = cfg.seed + EVAL_SEED_OFFSET
        ci = self.comm.from_main(lambda: self.evaluate(cfg.eval_episodes, seed))
        point = EvalPoint(self.update_idx, self.global_step, ci)
        self.evals.append(point)
        best = ci.mean > self.best_eval
        if best:
            self.best_eval = ci.mean
        if self.files is not None:
            self.files.log_eval(
                {
                    "update": point.update,
                    "global_step": point.global_step,
                    "wall_time": self.wall_time,
                    "eval_return_mean": ci.mean,
                    "eval_return_ci95": ci.half_width,
                    "eval_return_std": ci.std,
                    "episodes": ci.n,
                    "best": int(best),
                }
            )
        if best and self.run_folder is not None:
            self.save_checkpoint(self.run_folder / BEST_NAME)

    def last_eval_text(self) -> str:
        return "-" if not self.evals else str(self.evals[-1].ci)

    # -- the run -------------------------------------------------------------------------

    def train(
        self,
        max_updates: int | None = None,
        on_update: Callable[[dict[str, float]], None] | None = None,
        progress: bool | None = False,
        echo: Callable[[str], None] = print,
    ) -> TrainResult:
        """Run until ``total_steps`` (or ``max_updates`` more updates).

        ``progress``: True = a progress bar, None = a bar on a terminal and plain lines every
        ``log_every`` updates otherwise, False = silent. With an output folder it appends to
        ``metrics.csv`` every update, evaluates every ``eval_every`` updates (``eval.csv``,
        ``best.pt``), checkpoints every ``checkpoint_every`` updates and at the end, and draws
        ``learning_curve.png`` at the end.
        """
        cfg = self.config
        todo = cfg.num_updates - self.update_idx
        if max_updates is not None:
            todo = min(todo, max_updates)
        show: Progress | None = None
        if progress is not False and self.comm.is_main:
            bar = progress is True or (progress is None and sys.stdout.isatty())
            show = Progress(
                cfg.num_updates * cfg.batch_size,
                self.global_step,
                cfg.num_updates,
                bar,
                cfg.log_every,
                echo,
            )
        ckpt: Path | None = None
        try:
            for _ in range(max(0, todo)):
                row = self.train_one_update()
                last = self.update_idx == cfg.num_updates
                if cfg.eval_every and (self.update_idx % cfg.eval_every == 0 or last):
                    self._periodic_eval()
                if self.files is not None:
                    self.files.log_update(row)
                every = cfg.checkpoint_every
                if self.run_folder is not None and every and self.update_idx % every == 0:
                    ckpt = self.save_checkpoint()
                if on_update is not None:
                    on_update(row)
                if show is not None:
                    show.update(row, self.recent_return(), self.last_eval_text())
        finally:
            if show is not None:
                show.close()
            if self.files is not None:
                self.files.flush()
        if self.run_folder is not None:
            ckpt = self.save_checkpoint()
        if self.files is not None:
            write_learning_curve(
                self.files.metrics,
                self.files.evals,
                self.files.curve,
                self.references(),
                title=self.files.folder.name,
            )
        return TrainResult(
            global_step=self.global_step,
            updates=self.update_idx,
            episode_returns=list(self.episode_returns),
            episode_steps=list(self.episode_steps),
            wall_time=self.wall_time,
            checkpoint=ckpt,
            kl_stops=self.kl_stops,
            evals=list(self.evals),
        )

    def recent_return(self, window: int = TARGET_WINDOW) -> float:
        if not self.episode_returns:
            return math.nan
        return float(np.mean(self.episode_returns[-window:]))

    def summary(self) -> list[str]:
        """The end-of-run report: the final greedy return with its interval against the
        references, when the target was reached, the best evaluation and the KL stops."""
        cfg = self.config
        refs = self.references()
        n = min(256, cfg.final_eval_episodes)
        env = make_env(cfg, num_envs=n, seed=cfg.seed + FINAL_SEED_OFFSET)
        ci, _ = evaluate_to_precision(
            env,
            self.policy,
            self.obs_rms,
            blank_blueprints=not cfg.use_blueprint_indices,
            seed=cfg.seed + FINAL_SEED_OFFSET,
            half_width=0.1,
            min_episodes=cfg.final_eval_episodes,
            max_episodes=4 * cfg.final_eval_episodes,
        )
        lines = [f"final greedy return {describe_return(ci, refs)}"]
        if self.target_reached is not None:
            upd, step = self.target_reached
            lines.append(
                f"target reached at update {upd} ({step:,} env steps): the mean of the last "
                f"{TARGET_WINDOW} training episodes first reached {refs.target:.3f}"
            )
        else:
            lines.append(
                f"target NOT reached: the mean of the last {TARGET_WINDOW} training episodes "
                f"never reached {refs.target:.3f}"
            )
        first_eval = next((e for e in self.evals if e.ci.mean >= refs.target), None)
        if first_eval is not None:
            lines.append(
                f"greedy evaluation first at or above the target at update {first_eval.update} "
                f"({first_eval.global_step:,} env steps)"
            )
        if self.evals:
            best = max(self.evals, key=lambda e: e.ci.mean)
            where = f" -> {self.files.best}" if self.files is not None else ""
            lines.append(
                f"best evaluation {best.ci} at update {best.update} "
                f"({cfg.eval_episodes} episodes){where}"
            )
        lines.append(
            f"KL early stop (target_kl {cfg.target_kl}): {self.kl_stops} of "
            f"{self.update_idx} updates"
        )
        return lines

    # -- checkpoints (esper_ref/checkpoint.py) ------------------------------------------

    def checkpoint_state(self) -> dict[str, Any]:
        """The checkpoint's contents (with several ranks: a collective, every rank's RNG,
        env and rollout state gathered; call it on all ranks)."""
        return trainer_state(self)

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the checkpoint (rank 0 writes; with several ranks every rank calls this)."""
        if path is None:
            if self.run_folder is None:
                raise ValueError("save_checkpoint: no path and no out_dir")
            path = self.run_folder / CHECKPOINT_NAME
        state = self.checkpoint_state()
        if self.comm.is_main:
            save_checkpoint(state, Path(path))
        return Path(path)

    @classmethod
    def resume(
        cls,
        path: str | Path,
        out_dir: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
        extend: ExtendMode | None = None,
        overwrite: bool = False,
        command: Sequence[str] | None = None,
        comm: Comm | None = None,
    ) -> Trainer:
        """Rebuild the run saved at ``path``; see ``checkpoint.resume_trainer``."""
        return resume_trainer(cls, path, out_dir, overrides, extend, overwrite, command, comm)
