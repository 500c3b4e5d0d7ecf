"""Greedy evaluation of a policy, and the task's reference returns (target, oracle, random).

Evaluation never touches the global RNGs (greedy actions, envs with their own generators and
seeds), so evaluating during training leaves the training run exactly as it would have been.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import torch

from contracts.phase4 import NULL_BLUEPRINT
from esper_ref.config import TrainConfig
from esper_ref.stats import MeanCI, mean_ci

#: Evaluation envs are seeded apart from the training envs (seed + offset).
EVAL_SEED_OFFSET = 1_000_003
#: The end-of-run summary uses other episodes than the evaluations that chose best.pt.
FINAL_SEED_OFFSET = 2_000_003


@dataclass
class EvalPoint:
    """One greedy evaluation during training."""

    update: int
    global_step: int
    ci: MeanCI


class References(NamedTuple):
    target: float
    oracle: float
    random: float

    def describe(self) -> str:
        return (
            f"target {self.target:.3f}, scripted oracle {self.oracle:.3f}, random {self.random:.3f}"
        )


@cache
def references(num_slots: int, episode_length: int) -> References:
    """The env's reference returns (512 seeded episodes each, computed once per process)."""
    from esper_ref.env import TARGET_FRACTION, random_return, scripted_oracle_return

    oracle = scripted_oracle_return(num_slots=num_slots, episode_length=episode_length)
    rand = random_return(num_slots=num_slots, episode_length=episode_length)
    return References(TARGET_FRACTION * oracle, oracle, rand)


@torch.no_grad()
def run_episodes(
    env: Any,
    policy: Any,
    episodes: int,
    obs_rms: Any = None,
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


def evaluate_to_precision(
    env: Any,
    policy: Any,
    obs_rms: Any = None,
    blank_blueprints: bool = False,
    deterministic: bool = True,
    seed: int = 0,
    half_width: float = 0.2,
    min_episodes: int = 200,
    max_episodes: int = 10_000,
) -> tuple[MeanCI, list[float]]:
    """Greedy returns in rounds until the 95% interval of their mean is within
    ``±half_width`` (at least ``min_episodes``, at most ``max_episodes``)."""
    returns: list[float] = []
    round_seed = seed
    while True:
        want = max(min_episodes - len(returns), env.num_envs)
        want = min(want, max_episodes - len(returns))
        returns += run_episodes(
            env, policy, want, obs_rms, blank_blueprints, deterministic, round_seed
        )
        round_seed += math.ceil(want / env.num_envs)
        ci = mean_ci(returns)
        if len(returns) >= max_episodes or (
            len(returns) >= min_episodes and ci.half_width <= half_width
        ):
            return ci, returns


@dataclass
class LoadedPolicy:
    config: TrainConfig
    policy: Any
    obs_rms: Any
    state: dict[str, Any]
    path: Path


def load_for_evaluation(path: str | Path, device: str | None = None) -> LoadedPolicy:
    """The policy of a checkpoint on ``device`` (default: CPU when the checkpoint's device
    is not usable here, else the checkpoint's)."""
    from esper_ref.devices import check_device
    from esper_ref.run_io import load_checkpoint, load_policy_weights
    from esper_ref.train import RunningMeanStd, make_policy

    path = Path(path)
    state = load_checkpoint(path)
    try:
        cfg = TrainConfig.from_dict(state["config"])
    except ValueError as exc:
        raise ValueError(f"{path}: checkpoint's config is not valid ({exc})") from None
    if device is None:
        try:
            check_device(cfg.device)
            device = cfg.device
        except ValueError:
            device = "cpu"
    check_device(device)
    cfg.device = device
    try:
        cfg.validate()
    except ValueError as exc:
        raise ValueError(f"{path}: checkpoint's config is not valid ({exc})") from None
    from contracts.phase4 import obs_dim

    policy = make_policy(cfg, obs_dim(cfg.num_slots))
    load_policy_weights(policy, state, path)
    rms = None
    if state["obs_rms"] is not None:
        rms = RunningMeanStd(obs_dim(cfg.num_slots), device)
        try:
            rms.load_state_dict(state["obs_rms"])
        except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
            raise ValueError(f"{path}: checkpoint's obs_rms is damaged ({exc})") from None
        if rms.mean.shape != (obs_dim(cfg.num_slots),):
            raise ValueError(
                f"{path}: checkpoint's obs_rms has {tuple(rms.mean.shape)} entries, "
                f"its config's env observes {obs_dim(cfg.num_slots)}"
            )
    return LoadedPolicy(cfg, policy, rms, state, path)


@torch.no_grad()
def evaluate_checkpoint(
    path: str | Path,
    episodes: int = 20,
    seed: int = 12345,
    deterministic: bool = True,
    num_envs: int | None = None,
    blank_blueprints: bool | None = None,
    device: str | None = None,
) -> list[float]:
    """Returns of ``episodes`` episodes of the saved policy on a fresh env (seeded)."""
    from esper_ref.train import make_env

    if episodes < 1:
        raise ValueError(f"evaluate: episodes={episodes} must be >= 1")
    loaded = load_for_evaluation(path, device)
    cfg = loaded.config
    env = make_env(cfg, num_envs=num_envs or min(episodes, 256), seed=seed)
    hide = (not cfg.use_blueprint_indices) if blank_blueprints is None else blank_blueprints
    return run_episodes(env, loaded.policy, episodes, loaded.obs_rms, hide, deterministic, seed)
