"""The one error a broken contract raises."""

from __future__ import annotations

from collections.abc import Sequence


class ContractError(TypeError, ValueError):
    """A call, return value or batch broke its tensor contract.

    A subclass of both ``TypeError`` and ``ValueError`` so that code which already catches
    either for bad arguments keeps working. ``violations`` holds one line per problem, each
    starting with the function name; ``str(error)`` is those lines joined by newlines.
    Build one with :meth:`of`.
    """

    function: str = ""
    violations: tuple[str, ...] = ()

    @classmethod
    def of(cls, function: str, violations: Sequence[str]) -> ContractError:
        # No custom __init__: torch.compile traces the default one, so a violation found
        # while compiling surfaces as this error rather than as a tracing failure.
        lines = tuple(f"{function}: {v}" for v in violations)
        text = ""
        for line in lines:  # not str.join, which dynamo cannot trace for computed strings
            text = line if not text else text + "\n" + line
        error = cls(text)
        error.function = function
        error.violations = lines
        return error
