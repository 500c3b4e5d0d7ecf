"""The agent: owns a policy and the per-head weights it was configured with."""

from __future__ import annotations

from agentb.policy import Policy


class Agent:
    def __init__(self, policy: Policy, head_weights: dict[str, float] | None = None) -> None:
        self.policy = policy
        self.head_weights = head_weights

    def step(self, obs: list[float], hidden: float) -> dict[str, float]:
        return self.policy.act(obs, hidden, head_weights=self.head_weights)

    def estimate(self, obs: list[float]) -> float:
        return self.policy.value(obs, head_weights=self.head_weights)
