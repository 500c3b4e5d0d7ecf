"""A two-head network: the logits of each head, scaled by an optional weight per head."""

from __future__ import annotations


class Network:
    def __init__(self, heads: tuple[str, ...] = ("op", "slot")) -> None:
        self.heads = heads

    def forward(self, obs: list[float], hidden: float, head_weights: dict[str, float] | None = None, scale: float = 1.0) -> dict[str, float]:
        base = sum(obs) * scale + hidden
        return {head: base + i for i, head in enumerate(self.heads)}
