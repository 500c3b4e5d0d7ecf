"""Scorers: a protocol and the classes that implement it."""

from __future__ import annotations

from typing import Protocol
import random


class Scorer(Protocol):
    def score(self, rng: random.Random, obs: list[float], hidden: float = 0.0) -> float:
        """The score of an observation.

        Args:
            rng: The noise source.
            obs: The observation.
            hidden: The recurrent state.
        """
        ...

    def rank(self, rng: random.Random, obs: list[float]) -> list[int]: ...


class LinearScorer:
    def __init__(self, weights: list[float]) -> None:
        self.weights = weights

    def score(
        self,
        rng: random.Random,
        obs: list[float],
        hidden: float = 0.0,
    ) -> float:
        return sum(w * x for w, x in zip(self.weights, obs, strict=True)) + hidden

    def rank(self, rng: random.Random, obs: list[float]) -> list[int]:
        return sorted(range(len(obs)), key=lambda i: -obs[i] * self.weights[i])


class ClippedScorer(LinearScorer):
    def score(
        self,
        rng: random.Random,
        obs: list[float],
        hidden: float = 0.0,
    ) -> float:
        return min(1.0, super().score(rng, obs, hidden))


class ConstantScorer:
    """Implements `Scorer` without naming it: every member matches."""

    def score(self, rng: random.Random, obs: list[float], hidden: float = 0.0) -> float:
        return hidden

    def rank(self, rng: random.Random, obs: list[float]) -> list[int]:
        return list(range(len(obs)))
