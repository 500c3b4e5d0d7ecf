"""The off/on/full switch: ``ESPER_CONTRACTS`` at decoration time, ``mode()`` for a block."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, Literal

__all__ = ["ENV_VAR", "Mode", "current_level", "mode"]

ENV_VAR: Final = "ESPER_CONTRACTS"
Mode = Literal["off", "on", "full"]
OFF: Final = 0
ON: Final = 1
FULL: Final = 2
_LEVELS: Final[dict[str, int]] = {"off": OFF, "on": ON, "full": FULL}

#: Set while a ``mode()`` block is active; generated wrappers read cell 0 on every call.
OVERRIDE: list[int | None] = [None]


def level_of(name: str) -> int:
    try:
        return _LEVELS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"contracts mode {name!r}: use 'off', 'on' or 'full'") from None


def env_level() -> int:
    """The level ``ESPER_CONTRACTS`` asks for (``on`` when unset)."""
    raw = os.environ.get(ENV_VAR)
    if raw is None or not raw.strip():
        return ON
    try:
        return level_of(raw)
    except ValueError:
        raise ValueError(f"{ENV_VAR}={raw!r}: use 'off', 'on' or 'full'") from None


def current_level() -> int:
    """The ``mode()`` block's level if one is active, else the environment's."""
    override = OVERRIDE[0]
    return env_level() if override is None else override


@contextmanager
def mode(name: Mode) -> Iterator[None]:
    """Switch contracts for a block: ``with contracts.mode("off"): ...``.

    Inside the block, functions decorated there get that mode (``off`` gives back the
    undecorated function), and functions decorated earlier with checks obey it on each call
    (``off`` skips checking, ``full`` adds value ranges). Functions decorated while contracts
    were off stay unchecked: they are the original functions.
    """
    level = level_of(name)
    previous = OVERRIDE[0]
    OVERRIDE[0] = level
    try:
        yield
    finally:
        OVERRIDE[0] = previous
