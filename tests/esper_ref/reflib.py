"""Helpers shared by esper_ref's tests."""

from __future__ import annotations

from esper_ref.config import TrainConfig


def tiny_config(**kw: object) -> TrainConfig:
    """A config that trains in seconds: 4 envs x 30 steps, 32-wide networks, 4 updates, no
    evaluation during training; ``kw`` overrides any field."""
    base: dict[str, object] = {
        "num_envs": 4,
        "num_steps": 30,
        "total_steps": 4 * 30 * 4,
        "feature_dim": 32,
        "lstm_hidden_dim": 32,
        "head_hidden_dim": 32,
        "value_hidden_dim": 32,
        "num_minibatches": 2,
        "update_epochs": 2,
        "checkpoint_every": 1000,
        "eval_every": 0,
        "final_eval_episodes": 8,
    }
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]
