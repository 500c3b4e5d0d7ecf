"""``SlotLifecycleGymEnv``: the same task as one gymnasium environment, for other RL libraries.

The observation is the env's ``features`` followed by a one-hot of each slot's blueprint (13
entries per slot, all zero for an empty slot), so an agent from another library sees exactly
the information ``blueprint_indices`` gives ours. Actions are ``MultiDiscrete`` over the 8 heads
in ``HEAD_NAMES`` order; ``action_masks()`` returns the per-head masks concatenated, the
convention of sb3-contrib's ``MaskablePPO``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from contracts.phase4 import HEAD_NAMES, NUM_BLUEPRINTS
from esper_ref.env.vec_env import FEATURE_BOUND, EnvObs, SlotLifecycleVecEnv


def flat_observation(obs: EnvObs) -> torch.Tensor:
    """``[num_envs, obs_dim + num_slots * 13]``: features, then one-hot blueprints per slot."""
    idx = obs.blueprint_indices
    one_hot = torch.nn.functional.one_hot(idx.clamp(min=0), NUM_BLUEPRINTS) * (idx >= 0)[..., None]
    return torch.cat([obs.features, one_hot.reshape(idx.shape[0], -1).float()], dim=1)


class SlotLifecycleGymEnv(gym.Env[np.ndarray, np.ndarray]):
    """One slot lifecycle environment behind the gymnasium API (no auto-reset: gymnasium
    callers reset themselves after ``terminated`` or ``truncated``)."""

    metadata = {"render_modes": []}  # noqa: RUF012  (gymnasium declares it a plain attribute)

    def __init__(
        self,
        num_slots: int = 3,
        episode_length: int = 25,
        seed: int = 0,
        hide_blueprints: bool = False,
        **env_kwargs: Any,
    ) -> None:
        """``hide_blueprints=True`` zeroes the blueprint one-hot (the ablation)."""
        super().__init__()
        self._env = SlotLifecycleVecEnv(
            num_envs=1, num_slots=num_slots, episode_length=episode_length, seed=seed, **env_kwargs
        )
        self.hide_blueprints = hide_blueprints
        self._sizes = [self._env.head_sizes[h] for h in HEAD_NAMES]
        width = self._env.obs_dim + num_slots * NUM_BLUEPRINTS
        self.observation_space = spaces.Box(
            -FEATURE_BOUND, FEATURE_BOUND, shape=(width,), dtype=np.float32
        )
        self.action_space = spaces.MultiDiscrete(np.array(self._sizes, dtype=np.int64))
        self._obs: EnvObs | None = None
        self._seeded = False

    def _to_numpy(self, obs: EnvObs) -> np.ndarray:
        if self.hide_blueprints:
            obs = obs._replace(blueprint_indices=torch.full_like(obs.blueprint_indices, -1))
        return flat_observation(obs)[0].cpu().numpy().astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None and not self._seeded:
            seed = self._env.seed
        self._seeded = True
        self._obs = self._env.reset(seed=seed)
        return self._to_numpy(self._obs), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("step: call reset() before step()")
        act = np.asarray(action, dtype=np.int64).reshape(-1)
        if act.shape != (len(HEAD_NAMES),):
            raise ValueError(
                f"step: action must have {len(HEAD_NAMES)} entries ({HEAD_NAMES}), "
                f"got shape {np.asarray(action).shape}"
            )
        actions = {
            h: torch.tensor([int(a)], device=self._env.device)
            for h, a in zip(HEAD_NAMES, act, strict=True)
        }
        next_obs, reward, terminated, truncated, info = self._env.step(actions)
        self._obs = next_obs
        out: dict[str, Any] = {
            "executed_op": int(info["executed_op"][0]),
            "fell_back": bool(info["fell_back"][0]),
        }
        ended = bool(terminated[0] | truncated[0])
        if ended:
            out["episode_return"] = float(info["episode_return"][0])
            out["episode_length"] = int(info["episode_length"][0])
        # The inner env already started the next episode; report the true final state.
        shown = info["final_obs"] if ended else next_obs
        return (
            self._to_numpy(shown),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            out,
        )

    def action_masks(self) -> np.ndarray:
        """Flat bool mask, the heads' masks concatenated in ``HEAD_NAMES`` order."""
        if self._obs is None:
            raise RuntimeError("action_masks: call reset() first")
        return torch.cat([self._obs.masks[h][0] for h in HEAD_NAMES]).cpu().numpy()


#: ``gymnasium.make(GYM_ID)`` builds the default task (call ``.unwrapped.action_masks()``).
GYM_ID = "esper_ref/SlotLifecycle-v0"
if GYM_ID not in gym.registry:
    gym.register(GYM_ID, entry_point=SlotLifecycleGymEnv)
