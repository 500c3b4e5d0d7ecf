"""Imported first by the package: without torch (the light install of esper-phase4 leaves it
out), ``import contracts`` fails at once with one line naming the extra to install, instead of
"No module named 'torch'" and a traceback from deep inside a submodule."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType

MESSAGE = (
    "contracts needs torch, which the light install of esper-phase4 leaves out: "
    "pip install 'esper-phase4[contracts]' (or [ref])"
)

_Hook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


class MissingExtraError(ModuleNotFoundError):
    """A dependency that an extra of esper-phase4 installs is missing; the message names it."""


def _one_line(previous: _Hook) -> _Hook:
    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if isinstance(value, MissingExtraError):
            sys.stderr.write(f"ModuleNotFoundError: {value}\n")
        else:
            previous(kind, value, tb)

    hook.one_line_missing_extra = True  # type: ignore[attr-defined]
    return hook


try:
    import torch  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name != "torch":
        raise
    # A script that dies of it prints the one line; every other uncaught exception still
    # goes to the hook that was there (interactive shells and notebooks show their own way).
    if not getattr(sys.excepthook, "one_line_missing_extra", False):
        sys.excepthook = _one_line(sys.excepthook)
    raise MissingExtraError(MESSAGE, name="torch") from None
