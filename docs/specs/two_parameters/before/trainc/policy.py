"""A softmax policy over a few actions."""

from __future__ import annotations

import math


class Policy:
    def __init__(self, logits: list[float]) -> None:
        self.logits = logits

    def act(self, obs: float) -> int:
        probs = self.log_prob(obs)
        return max(range(len(probs)), key=probs.__getitem__)

    def log_prob(self, obs: float) -> list[float]:
        scaled = [x * obs for x in self.logits]
        top = max(scaled)
        norm = math.log(sum(math.exp(x - top) for x in scaled)) + top
        return [x - norm for x in scaled]
