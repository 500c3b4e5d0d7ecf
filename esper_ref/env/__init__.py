"""The built-in environment: the slot/seed lifecycle of a growing host network.

``SlotLifecycleVecEnv`` is the batched torch environment the trainer uses;
``SlotLifecycleGymEnv`` is the same task as a single gymnasium env for other RL libraries;
``scripted_oracle_return`` and ``target_return`` give the task its scale.
"""

from esper_ref.env.gym_env import SlotLifecycleGymEnv, flat_observation
from esper_ref.env.oracle import (
    TARGET_FRACTION,
    evaluate_policy,
    oracle_actions,
    random_actions,
    random_return,
    scripted_oracle_return,
    target_return,
)
from esper_ref.env.tables import Stage
from esper_ref.env.vec_env import EnvObs, SlotLifecycleVecEnv, feature_names

__all__ = [
    "TARGET_FRACTION",
    "EnvObs",
    "SlotLifecycleGymEnv",
    "SlotLifecycleVecEnv",
    "Stage",
    "evaluate_policy",
    "feature_names",
    "flat_observation",
    "oracle_actions",
    "random_actions",
    "random_return",
    "scripted_oracle_return",
    "target_return",
]
