"""The policy protocol and its two implementers."""

from __future__ import annotations

from typing import Protocol

from agentb.network import Network


class Policy(Protocol):
    def act(self, obs: list[float], hidden: float = 0.0, head_weights: dict[str, float] | None = None) -> dict[str, float]: ...

    def value(self, obs: list[float], head_weights: dict[str, float] | None = None) -> float: ...


class NetPolicy:
    """Acts with the network; its value is the mean of the heads."""

    def __init__(self, net: Network) -> None:
        self.net = net

    def act(self, obs: list[float], hidden: float = 0.0, head_weights: dict[str, float] | None = None) -> dict[str, float]:
        return self.net.forward(obs, hidden, head_weights, 2.0)

    def value(self, obs: list[float], head_weights: dict[str, float] | None = None) -> float:
        out = self.act(obs, head_weights=head_weights)
        return sum(out.values()) / len(out)


class ConstantPolicy:
    """Ignores the observation (a baseline)."""

    def act(self, obs: list[float], hidden: float = 0.0, head_weights: dict[str, float] | None = None) -> dict[str, float]:
        return {"op": hidden, "slot": hidden}

    def value(self, obs: list[float], head_weights: dict[str, float] | None = None) -> float:
        return 0.0
