"""The agent: acts with its policy at its temperature, and computes the update's loss."""

from __future__ import annotations

from trainc.losses import policy_loss
from trainc.policy import Policy


class Agent:
    def __init__(self, policy: Policy, temperature: float = 1.0) -> None:
        self.policy = policy
        self.temperature = temperature

    def step(self, obs: float) -> int:
        return self.policy.act(obs)

    def loss(self, obs: float, advantage: float, availability_masks: list[bool] | None) -> float:
        return policy_loss(self.policy.log_prob(obs), advantage)
