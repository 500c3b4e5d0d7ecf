"""The training loop: rollout, bootstrap, GAE, PPO update, metrics and checkpoints.

Reading order of one update (``Trainer.train_one_update``):

1. ``collect_rollout``: ``num_steps`` vectorised steps. Each step samples all heads once with
   ``get_action`` (its ``value`` is Q(s, sampled op), stored for the critic). A truncated row
   bootstraps from its post-step state (``info["final_obs"]``) in the configured mode
   (``_bootstrap_value``); a terminated row does not. The LSTM state of an env that ended is
   reset to zeros. The GAE baseline V(s) = sum over allowed ops of pi(op|s) Q(s, op) is
   ``get_action``'s ``expected_value``, stored with each step (no extra network pass).
2. ``TamiyoRolloutBuffer.compute_returns_and_advantages``: GAE per env.
3. ``PPO.update`` on ``get_batched_sequences()`` (see ``ppo.py``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import torch
from torch import Tensor

from contracts.phase4 import NULL_BLUEPRINT
from esper_ref import __version__
from esper_ref.buffer import TamiyoRolloutBuffer
from esper_ref.config import TrainConfig
from esper_ref.ppo import PPO, UpdateStats

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
CURVE_NAME = "learning_curve.png"
CHECKPOINT_FORMAT = 1

METRIC_FIELDS = (
    "update",
    "global_step",
    "wall_time",
    "steps_per_sec",
    "episode_return_mean",
    "episodes",
    "learning_rate",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clipfrac",
    "explained_variance",
    "grad_norm",
    "opt_steps",
    "early_stopped",
    "nonfinite_skips",
)


class RunningMeanStd:
    """Running mean/variance of observations (parallel-variance update, float64)."""

    def __init__(self, dim: int, device: str | torch.device = "cpu", clip: float = 10.0) -> None:
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.var = torch.ones(dim, dtype=torch.float64, device=device)
        self.count = 1e-4
        self.clip = clip

    def update(self, x: Tensor) -> None:
        x = x.detach().to(self.mean.dtype)
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
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

    def recent_return(self, window: int = 100) -> float:
        if not self.episode_returns:
            return math.nan
        return float(np.mean(self.episode_returns[-window:]))


class Trainer:
    """One training run; build fresh with ``Trainer(config)`` or ``Trainer.resume(path)``."""

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        env: Any = None,
        policy: Any = None,
    ) -> None:
        self.config = config.validate()
        cfg = self.config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        seed_everything(cfg.seed)
        self.env = env if env is not None else make_env(cfg)
        self.policy = policy if policy is not None else make_policy(cfg, self.env.obs_dim)
        self.ppo = PPO(self.policy, cfg)
        self.device = torch.device(cfg.device)
        self.obs_rms = RunningMeanStd(self.env.obs_dim, self.device) if cfg.obs_norm else None
        self.obs = self.env.reset(seed=cfg.seed)
        self.hidden = self.policy.initial_hidden(cfg.num_envs)
        self.buffer = TamiyoRolloutBuffer(
            cfg.num_envs,
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
        self._writer: Any = None

    # -- policy inputs -------------------------------------------------------------------

    def _features(self, raw: Tensor, update: bool) -> Tensor:
        if self.obs_rms is None:
            return raw
        if update:
            self.obs_rms.update(raw)
        return self.obs_rms.normalize(raw)

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
    def collect_rollout(self) -> list[float]:
        cfg = self.config
        self.buffer.reset()
        finished: list[float] = []
        for _ in range(cfg.num_steps):
            obs, hidden = self.obs, self.hidden
            feats = self._features(obs.features, update=True)
            bp = self._blueprints(obs.blueprint_indices)
            act = self.policy.get_action(feats, bp, obs.masks, hidden=hidden)
            next_obs, reward, terminated, truncated, info = self.env.step(act.actions)
            self.global_step += cfg.num_envs

            boot = torch.zeros(cfg.num_envs, device=self.device)
            need = truncated & ~terminated
            if bool(need.any()):
                rows = need.nonzero().squeeze(1)
                final = info["final_obs"]
                boot[rows] = self._bootstrap_value(
                    self._features(final.features[rows], update=False),
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
                # GAE's baseline V(s_t) = sum_op pi(op|s_t) Q(s_t, op): get_action computes it
                # from the same inputs, hidden state and parameters, at no extra cost.
                state_values=act.expected_value,
                bootstrap_values=boot,
            )
            ended = terminated | truncated
            keep = (~ended).to(act.hidden[0].dtype).view(1, -1, 1)
            self.hidden = (act.hidden[0] * keep, act.hidden[1] * keep)
            self.obs = next_obs
            if bool(ended.any()):
                rets = info["episode_return"][ended].tolist()
                finished.extend(float(r) for r in rets)
                self.episode_returns.extend(float(r) for r in rets)
                self.episode_steps.extend([self.global_step] * len(rets))

        feats = self._features(self.obs.features, update=False)
        last_v = self.policy.expected_value(
            feats, self._blueprints(self.obs.blueprint_indices), self.obs.masks, hidden=self.hidden
        )
        self.buffer.compute_returns_and_advantages(last_v, cfg.gamma, cfg.gae_lambda)
        return finished

    def train_one_update(self) -> dict[str, float]:
        cfg = self.config
        t0 = time.perf_counter()
        self.update_idx += 1
        lr = self.ppo.anneal(self.update_idx, cfg.num_updates)
        finished = self.collect_rollout()
        stats: UpdateStats = self.ppo.update(self.buffer.get_batched_sequences(cfg.seq_len))
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
        return row

    def train(
        self,
        max_updates: int | None = None,
        on_update: Callable[[dict[str, float]], None] | None = None,
        progress: bool = False,
    ) -> TrainResult:
        """Run until ``total_steps`` (or ``max_updates`` more updates); write outputs.

        With an ``out_dir``: appends to ``metrics.csv`` every update, writes a checkpoint
        every ``checkpoint_every`` updates and at the end, and a learning-curve PNG at the end.
        """
        cfg = self.config
        todo = cfg.num_updates - self.update_idx
        if max_updates is not None:
            todo = min(todo, max_updates)
        bar = _Progress(cfg.num_updates * cfg.batch_size, self.global_step) if progress else None
        ckpt: Path | None = None
        try:
            for _ in range(max(0, todo)):
                row = self.train_one_update()
                self._log(row)
                if on_update is not None:
                    on_update(row)
                if bar is not None:
                    bar.advance(self.global_step, self.recent_return(), row["steps_per_sec"])
                if self.out_dir is not None and self.update_idx % cfg.checkpoint_every == 0:
                    ckpt = self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
            if self._writer:
                self._writer.flush()
        if self.out_dir is not None:
            ckpt = self.save_checkpoint()
            write_learning_curve(self.out_dir / METRICS_NAME, self.out_dir / CURVE_NAME)
        return TrainResult(
            global_step=self.global_step,
            updates=self.update_idx,
            episode_returns=list(self.episode_returns),
            episode_steps=list(self.episode_steps),
            wall_time=self.wall_time,
            checkpoint=ckpt,
        )

    def recent_return(self, window: int = 100) -> float:
        if not self.episode_returns:
            return math.nan
        return float(np.mean(self.episode_returns[-window:]))

    # -- metrics -------------------------------------------------------------------------

    def _log(self, row: dict[str, float]) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / METRICS_NAME
        new = not path.exists()
        with path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=METRIC_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self._writer is None:
            self._writer = _tensorboard_writer(self.out_dir)
        if self._writer:
            step = int(row["global_step"])
            for k in METRIC_FIELDS[2:]:
                if not math.isnan(row.get(k, math.nan)):
                    self._writer.add_scalar(f"train/{k}", row[k], step)

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "config": self.config.to_dict(),
            "policy": self.policy.state_dict(),
            "optimizer": self.ppo.optimizer.state_dict(),
            "obs_rms": None if self.obs_rms is None else self.obs_rms.state_dict(),
            "counters": {
                "update": self.update_idx,
                "global_step": self.global_step,
                "wall_time": self.wall_time,
                "nonfinite_skips": self.ppo.total_nonfinite_skips,
            },
            "episodes": {"returns": list(self.episode_returns), "steps": list(self.episode_steps)},
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": _np_state_to_safe(cast(tuple[Any, ...], np.random.get_state())),
                "python": random.getstate(),
            },
            "env": _to_safe(self.env.state_dict()),
            "rollout": {
                "features": self.obs.features,
                "blueprint_indices": self.obs.blueprint_indices,
                "masks": dict(self.obs.masks),
                "hidden": self.hidden,
            },
        }

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        if path is None:
            if self.out_dir is None:
                raise ValueError("save_checkpoint: no path and no out_dir")
            path = self.out_dir / CHECKPOINT_NAME
        path = Path(path)
        atomic_torch_save(self.checkpoint_state(), path)
        return path

    @classmethod
    def resume(
        cls,
        path: str | Path,
        out_dir: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Trainer:
        """Rebuild the run saved at ``path``; training continues bit for bit on CPU."""
        state = load_checkpoint(path)
        cfg_dict = dict(state["config"])
        cfg_dict.update(overrides or {})
        trainer = cls(TrainConfig.from_dict(cfg_dict), out_dir=out_dir)
        trainer.policy.load_state_dict(state["policy"])
        trainer.ppo.optimizer.load_state_dict(state["optimizer"])
        if trainer.obs_rms is not None and state["obs_rms"] is not None:
            trainer.obs_rms.load_state_dict(state["obs_rms"])
        c = state["counters"]
        trainer.update_idx = int(c["update"])
        trainer.global_step = int(c["global_step"])
        trainer.wall_time = float(c["wall_time"])
        trainer.ppo.total_nonfinite_skips = int(c["nonfinite_skips"])
        trainer.episode_returns = [float(x) for x in state["episodes"]["returns"]]
        trainer.episode_steps = [int(x) for x in state["episodes"]["steps"]]
        trainer.env.load_state_dict(_from_safe(state["env"]))
        r = state["rollout"]
        trainer.obs = type(trainer.obs)(
            features=r["features"].to(trainer.device),
            blueprint_indices=r["blueprint_indices"].to(trainer.device),
            masks={h: m.to(trainer.device) for h, m in r["masks"].items()},
        )
        trainer.hidden = (r["hidden"][0].to(trainer.device), r["hidden"][1].to(trainer.device))
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(_np_state_from_safe(state["rng"]["numpy"]))
        random.setstate(_to_tuple(state["rng"]["python"]))
        if trainer.out_dir is not None:
            _truncate_metrics(trainer.out_dir / METRICS_NAME, trainer.update_idx)
        return trainer


# -- evaluation ----------------------------------------------------------------------------


@torch.no_grad()
def evaluate_checkpoint(
    path: str | Path,
    episodes: int = 20,
    seed: int = 12345,
    deterministic: bool = True,
    num_envs: int | None = None,
    blank_blueprints: bool | None = None,
) -> list[float]:
    """Returns of ``episodes`` episodes of the saved policy on a fresh env (seeded)."""
    if episodes < 1:
        raise ValueError(f"evaluate: episodes={episodes} must be >= 1")
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    n = num_envs or min(episodes, 256)
    env = make_env(cfg, num_envs=n, seed=seed)
    policy = make_policy(cfg, env.obs_dim)
    policy.load_state_dict(state["policy"])
    rms = None
    if state["obs_rms"] is not None:
        rms = RunningMeanStd(env.obs_dim, cfg.device)
        rms.load_state_dict(state["obs_rms"])
    hide = (not cfg.use_blueprint_indices) if blank_blueprints is None else blank_blueprints
    return run_episodes(env, policy, episodes, rms, hide, deterministic, seed)


@torch.no_grad()
def run_episodes(
    env: Any,
    policy: Any,
    episodes: int,
    obs_rms: RunningMeanStd | None = None,
    blank_blueprints: bool = False,
    deterministic: bool = True,
    seed: int = 0,
) -> list[float]:
    """Returns of ``episodes`` episodes: the first episode of each env row, in rounds of
    ``env.num_envs`` rows (round ``k`` resets with ``seed + k``). Taking whichever episodes
    end first would over-count the short (early-terminated) ones."""
    returns: list[float] = []
    round_ = 0
    while len(returns) < episodes:
        obs = env.reset(seed=seed + round_)
        n = int(obs.features.shape[0])
        hidden = policy.initial_hidden(n)
        got = torch.full((n,), math.nan)
        while bool(got.isnan().any()):
            feats = obs.features if obs_rms is None else obs_rms.normalize(obs.features)
            bp = obs.blueprint_indices
            if blank_blueprints:
                bp = torch.full_like(bp, NULL_BLUEPRINT)
            act = policy.get_action(
                feats, bp, obs.masks, hidden=hidden, deterministic=deterministic
            )
            obs, _r, term, trunc, info = env.step(act.actions)
            ended = (term | trunc).cpu()
            keep = (~ended).to(act.hidden[0].dtype).view(1, -1, 1).to(act.hidden[0].device)
            hidden = (act.hidden[0] * keep, act.hidden[1] * keep)
            first = ended & got.isnan()
            got[first] = info["episode_return"].cpu()[first].float()
        returns.extend(got.tolist()[: episodes - len(returns)])
        round_ += 1
    return returns


# -- files ---------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary file and ``os.replace``: a crash never leaves a
    half-written checkpoint, metrics file or plot. The file gets the usual umask permissions
    (``mkstemp`` would leave it readable by its owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda fh: torch.save(obj, fh))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise ValueError(f"{path}: not a readable esper-ref checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an esper-ref checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def _np_state_to_safe(st: tuple[Any, ...]) -> list[Any]:
    return [st[0], torch.from_numpy(np.asarray(st[1]).astype(np.int64)), *st[2:]]


def _np_state_from_safe(st: list[Any]) -> tuple[Any, ...]:
    return (st[0], st[1].numpy().astype(np.uint32), *st[2:])


def _to_safe(obj: Any) -> Any:
    """numpy arrays become tagged tensors so checkpoints load with ``weights_only=True``."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(obj.copy()), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _to_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_safe(v) for v in obj)
    return obj


def _from_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return obj["__ndarray__"].numpy().astype(obj["dtype"])
        return {k: _from_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_from_safe(v) for v in obj)
    return obj


def _to_tuple(obj: Any) -> Any:
    if isinstance(obj, list | tuple):
        return tuple(_to_tuple(v) for v in obj)
    return obj


def _truncate_metrics(path: Path, last_update: int) -> None:
    """Drop rows written after the checkpoint we resume from (a crash after it)."""
    if not path.exists():
        return
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if float(r["update"]) <= last_update]
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=METRIC_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    data = text.getvalue().encode()
    atomic_write(path, lambda fh: fh.write(data))


def _tensorboard_writer(out_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return False
    return SummaryWriter(log_dir=str(out_dir / "tb"))


def write_learning_curve(metrics_csv: Path, png: Path, target: float | None = None) -> bool:
    """Episode return against env steps; returns False when there is nothing to draw."""
    if not metrics_csv.exists():
        return False
    with metrics_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    pts = [
        (float(r["global_step"]), float(r["episode_return_mean"]))
        for r in rows
        if r["episode_return_mean"] not in ("", "nan")
    ]
    if not pts:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    xs, ys = zip(*pts, strict=True)
    ax.plot(xs, ys, label="episode return (mean per update)")
    if target is not None:
        ax.axhline(target, color="gray", linestyle="--", label="target")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    try:
        atomic_write(png, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        plt.close(fig)
    return True


class _Progress:
    """A rich progress bar with the recent return and steps per second."""

    def __init__(self, total: int, done: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
            TextColumn("return {task.fields[ret]}"),
            TextColumn("{task.fields[sps]} steps/s"),
            TimeRemainingColumn(),
        )
        self._p.start()
        self._task = self._p.add_task("train", total=total, completed=done, ret="-", sps="-")
        self._recent: deque[float] = deque(maxlen=5)

    def advance(self, step: int, ret: float, sps: float) -> None:
        self._recent.append(sps)
        self._p.update(
            self._task,
            completed=step,
            ret="-" if math.isnan(ret) else f"{ret:.3f}",
            sps=f"{np.mean(self._recent):,.0f}",
        )

    def close(self) -> None:
        self._p.stop()
