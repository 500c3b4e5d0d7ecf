"""The two loss terms of an update."""

from __future__ import annotations

import math


def masked_entropy(log_probs: list[float], availability_masks: list[bool] | None = None) -> float:
    return -sum(math.exp(lp) * lp for lp in log_probs)


def policy_loss(log_probs: list[float], advantage: float, coef: float = 0.01, availability_masks: list[bool] | None = None) -> float:
    return -max(log_probs) * advantage - coef * masked_entropy(log_probs, availability_masks=availability_masks)
