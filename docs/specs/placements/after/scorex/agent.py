"""The agent: scores with its scorer and its own generator, and computes its loss."""

from __future__ import annotations

import random

from scorex import losses
from scorex.scorers import Scorer


class Agent:
    def __init__(self, scorer: Scorer, seed: int = 0) -> None:
        self.scorer = scorer
        self.rng = random.Random(seed)

    def act(self, obs: list[float], hidden: float) -> float:
        return self.scorer.score(self.rng, obs, hidden)

    def best(self, obs: list[float]) -> int:
        return self.scorer.rank(self.rng, obs)[0]

    def loss(self, obs: list[list[float]], targets: list[float]) -> float:
        values = [self.scorer.score(self.rng, o) for o in obs]
        return losses.total_loss(values, targets, coef=0.1, reduction="mean")
