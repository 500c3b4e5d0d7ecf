"""The one error a broken contract raises."""

from __future__ import annotations

from collections.abc import Sequence


class ContractError(TypeError, ValueError):
    """A call, return value or batch broke its tensor contract.

    A subclass of both ``TypeError`` and ``ValueError`` so that code which already catches
    either for bad arguments keeps working. ``violations`` holds one line per problem, each
    starting with the function name; ``str(error)`` is those lines joined by newlines.
    """

    def __init__(self, function: str, violations: Sequence[str]) -> None:
        self.function = function
        self.violations: tuple[str, ...] = tuple(f"{function}: {v}" for v in violations)
        super().__init__("\n".join(self.violations))
