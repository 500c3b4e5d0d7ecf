"""Every hyperparameter of a training run, in one dataclass (CleanRL style)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

BootstrapMode = Literal["greedy", "expected"]

#: Per-head entropy weights of the original system; multiplied by ``TrainConfig.ent_coef``.
DEFAULT_HEAD_ENT_COEFS: dict[str, float] = {
    "op": 1.0,
    "slot": 1.0,
    "blueprint": 1.3,
    "style": 1.2,
    "tempo": 1.3,
    "alpha_target": 1.2,
    "alpha_speed": 1.2,
    "alpha_curve": 1.2,
}


@dataclass
class TrainConfig:
    # Run
    seed: int = 0
    device: str = "cpu"
    torch_threads: int | None = 1
    """CPU threads for torch (``torch.set_num_threads``); one is fastest for these small
    networks. ``None`` leaves torch's setting alone."""
    total_steps: int = 500_000
    """Environment steps (summed over all envs) to train for."""
    # Environment
    num_envs: int = 16
    num_slots: int = 3
    episode_length: int = 25
    # Policy size
    feature_dim: int = 128
    lstm_hidden_dim: int = 128
    head_hidden_dim: int = 128
    value_hidden_dim: int = 128
    # Rollout
    num_steps: int = 50
    """Steps per env per update (one rollout); the buffer holds ``num_envs x num_steps``."""
    seq_len: int | None = None
    """Longest recurrent sequence in the update; ``None`` = whole episodes within a rollout."""
    bootstrap: BootstrapMode = "greedy"
    """Value of a truncated episode's post-step state: ``greedy`` = Q(s', argmax op) through
    ``get_action(deterministic=True)`` (the audit's choice); ``expected`` = sum over allowed ops
    of pi(op|s') Q(s', op)."""
    use_blueprint_indices: bool = True
    """``False`` replaces every blueprint index by -1 before the policy sees it (ablation)."""
    obs_norm: bool = True
    # PPO
    learning_rate: float = 2.5e-3
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    update_epochs: int = 8
    num_minibatches: int = 8
    """Minibatches per epoch, formed by env (an env's whole rollout stays in one minibatch);
    at most one per env."""
    clip_coef: float = 0.2
    clip_vloss: bool = True
    vf_clip_coef: float = 10.0
    norm_adv: bool = True
    q_baseline_for_heads: bool = True
    """Heads other than ``op`` use Q(s, executed op) as their baseline (the op head uses
    V(s)); ``False`` = every head uses the GAE advantage with baseline V(s)."""
    ent_coef: float = 0.003
    head_ent_coefs: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_HEAD_ENT_COEFS))
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = 0.05
    """Stop the update before the optimiser step at which the approximate KL exceeds this."""
    # Outputs
    checkpoint_every: int = 10
    """Updates between checkpoints (a final one is always written)."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return max(1, self.total_steps // self.batch_size)

    def validate(self) -> TrainConfig:
        problems = []
        for name in ("total_steps", "num_envs", "num_slots", "num_steps", "update_epochs"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.num_minibatches < 1:
            problems.append(f"num_minibatches={self.num_minibatches} must be >= 1")
        if self.bootstrap not in ("greedy", "expected"):
            problems.append(f"bootstrap={self.bootstrap!r} must be 'greedy' or 'expected'")
        if self.seq_len is not None and self.seq_len < 1:
            problems.append(f"seq_len={self.seq_len} must be >= 1 or None")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            problems.append("gamma and gae_lambda must be in [0, 1]")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate={self.learning_rate} must be > 0")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {unknown}")
        return cls(**data)
