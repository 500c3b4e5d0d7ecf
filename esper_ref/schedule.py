"""The learning-rate schedule of a run, saved with its checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from esper_ref.config import TrainConfig

ExtendMode = Literal["constant", "reanneal"]


@dataclass
class LRSchedule:
    """The learning rate per update: linear pieces ``(first, last, lr_first, lr_last)``.

    A run starts with one piece (``TrainConfig.anneal_lr``: from ``learning_rate`` down to
    ``learning_rate / num_updates`` at the last update, CleanRL's schedule; else constant).
    The schedule is saved with the checkpoint, so a resumed run keeps it whatever its new
    ``total_steps``; training past its end needs an explicit ``extend``.
    """

    pieces: list[tuple[int, int, float, float]]

    @classmethod
    def for_config(cls, cfg: TrainConfig) -> LRSchedule:
        n, lr = cfg.num_updates, cfg.learning_rate
        return cls([(1, n, lr, lr / n if cfg.anneal_lr else lr)])

    @property
    def last_update(self) -> int:
        return self.pieces[-1][1]

    def rate(self, update: int) -> float:
        for first, last, lr_first, lr_last in self.pieces:
            if first <= update <= last:
                if last == first:
                    return lr_first
                return lr_first + (lr_last - lr_first) * (update - first) / (last - first)
        return self.pieces[-1][3]

    def extend(self, done: int, new_last: int, mode: ExtendMode) -> LRSchedule:
        """Continue after update ``done`` up to ``new_last``: ``constant`` holds the rate the
        run would use next (its last rate, for a finished run); ``reanneal`` decays linearly
        from that rate, as the original schedule does, to ``rate / remaining updates``."""
        if new_last <= done:
            raise ValueError(f"extend: new_last={new_last} must be after update {done}")
        start = self.rate(min(done + 1, self.last_update))
        end = start if mode == "constant" else start / (new_last - done)
        kept = [p for p in self.pieces if p[0] <= done]
        if kept:
            first, last, lr_first, _ = kept[-1]
            if last > done:  # cut the piece we are in at ``done``, keeping its slope
                kept[-1] = (first, done, lr_first, self.rate(done))
        return LRSchedule([*kept, (done + 1, new_last, start, end)])

    def describe_tail(self) -> str:
        first, last, lr_first, lr_last = self.pieces[-1]
        if lr_first == lr_last:
            return f"constant {lr_first:.3g} from update {first} to {last}"
        return f"linear from {lr_first:.3g} at update {first} to {lr_last:.3g} at update {last}"

    def to_state(self) -> list[list[float]]:
        return [list(p) for p in self.pieces]

    @classmethod
    def from_state(cls, state: Any) -> LRSchedule:
        return cls([(int(a), int(b), float(c), float(d)) for a, b, c, d in state])
