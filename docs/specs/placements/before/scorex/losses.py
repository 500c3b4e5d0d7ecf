"""The loss terms of an update."""

from __future__ import annotations

import math


def entropy(probs: list[float]) -> float:
    return -sum(p * math.log(p) for p in probs if p > 0)


def total_loss(values: list[float], targets: list[float], *, coef: float = 0.5) -> float:
    error = sum((v - t) ** 2 for v, t in zip(values, targets, strict=True)) / len(values)
    return error - coef * entropy([abs(v) / (sum(map(abs, values)) or 1.0) for v in values])
