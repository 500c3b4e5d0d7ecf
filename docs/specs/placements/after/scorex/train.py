"""One evaluation pass, through the loss module's names."""

from __future__ import annotations

import scorex.losses
import scorex.losses as L
from scorex.agent import Agent


def evaluate(agent: Agent, obs: list[list[float]], targets: list[float]) -> tuple[float, float]:
    values = [agent.act(o, 0.0) for o in obs]
    total = sum(map(abs, values)) or 1.0
    return scorex.losses.total_loss(values, targets, reduction="mean"), L.entropy([abs(v) / total for v in values], reduction="mean")
