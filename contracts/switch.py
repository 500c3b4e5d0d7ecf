"""The off/on/full switch: ``ESPER_CONTRACTS`` at decoration time, ``mode()`` per context.

Which switch is read when:

- **Decorating** (``@contract``) reads the current level (an enclosing :func:`mode` block in
  this context, else ``ESPER_CONTRACTS``). ``off`` then returns the function itself: nothing
  can turn its checks on later.
- **Each call** of a checked function reads the :func:`mode` block of the calling thread or
  asyncio task, else the level it was decorated with. The environment is not read again.
- :func:`contracts.check` and :class:`contracts.TensorBatch` read the current level on
  every call (the ``mode()`` block, else ``ESPER_CONTRACTS``).

``mode()`` is a :class:`contextvars.ContextVar`, so a block in one thread or task never changes
another's. Inside a graph traced by ``torch.compile`` the level is the one seen when tracing.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final, Literal

__all__ = ["ENV_VAR", "Mode", "compiled_out", "current_level", "mode"]

ENV_VAR: Final = "ESPER_CONTRACTS"
Mode = Literal["off", "on", "full"]
OFF: Final = 0
ON: Final = 1
FULL: Final = 2
_LEVELS: Final[dict[str, int]] = {"off": OFF, "on": ON, "full": FULL}

_OVERRIDE: ContextVar[int | None] = ContextVar("contracts_mode", default=None)
#: Number of ``mode()`` blocks open in any thread or task. Generated wrappers read cell 0 on
#: every call and look at the context variable only when it is non-zero, so the common case
#: (no block anywhere) costs one list read, as a process-wide flag did.
ACTIVE: list[int] = [0]
_active_lock = threading.Lock()

#: Names of functions whose contract was compiled out (decorated while contracts were off).
_COMPILED_OUT: list[str] = []
_warned = [False]


def level_of(name: str) -> int:
    try:
        return _LEVELS[name.strip().lower()]
    except (KeyError, AttributeError):
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


def override_level() -> int | None:
    """The level of the innermost ``mode()`` block of this context, or None."""
    return _OVERRIDE.get()


# torch.compile cannot trace ContextVar.get; this marker makes dynamo call the function while
# tracing and use its result as a constant (the level seen when the graph is traced).
override_level._dynamo_marked_constant = True  # type: ignore[attr-defined]


def current_level() -> int:
    """The ``mode()`` block's level if one is active in this context, else the environment's."""
    override = _OVERRIDE.get()
    return env_level() if override is None else override


def note_compiled_out(name: str) -> None:
    """Record that ``name`` was decorated while contracts were off (it checks nothing)."""
    _COMPILED_OUT.append(name)


def compiled_out() -> tuple[str, ...]:
    """Names of the functions decorated while contracts were off, in decoration order."""
    return tuple(_COMPILED_OUT)


def _warn_compiled_out(level: int) -> None:
    if level == OFF or not _COMPILED_OUT or _warned[0]:
        return
    _warned[0] = True
    names = ", ".join(_COMPILED_OUT[:5]) + (", ..." if len(_COMPILED_OUT) > 5 else "")
    warnings.warn(
        f"contracts.mode() cannot turn on the contracts of {len(_COMPILED_OUT)} function(s) "
        f"decorated while contracts were off ({names}): they are the undecorated functions. "
        f"Unset {ENV_VAR}=off (or decorate inside the mode() block) to check them.",
        RuntimeWarning,
        stacklevel=4,
    )


@contextmanager
def mode(name: Mode) -> Iterator[None]:
    """Switch contracts for a block of this thread or task: ``with contracts.mode("off"):``.

    Inside the block, functions decorated there get that mode (``off`` gives back the
    undecorated function), and functions decorated earlier with checks obey it on each call
    (``off`` skips checking, ``full`` adds value ranges). Functions decorated while contracts
    were off stay unchecked (they are the original functions); entering an ``on`` or ``full``
    block then warns once (:func:`contracts.testing.require_checks` raises instead).
    """
    level = level_of(name)
    _warn_compiled_out(level)
    token = _OVERRIDE.set(level)
    with _active_lock:
        ACTIVE[0] += 1
    try:
        yield
    finally:
        with _active_lock:
            ACTIVE[0] -= 1
        _OVERRIDE.reset(token)
