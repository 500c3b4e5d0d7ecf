"""Helpers for tests of code with contracts: make sure the checks really run.

from contracts.testing import require_checks

def test_policy_rejects_bad_masks():
    require_checks(Policy.get_action)   # fails loudly under ESPER_CONTRACTS=off
    with pytest.raises(ContractError): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.switch import ENV_VAR, OFF, compiled_out, current_level

__all__ = ["ContractsDisabledError", "require_checks"]


class ContractsDisabledError(AssertionError):
    """The contracts a test relies on are compiled out or switched off: it would test nothing.

    An ``AssertionError``, so a test runner reports it as a failed test.
    """


def require_checks(*functions: Callable[..., Any]) -> None:
    """Raise :class:`ContractsDisabledError` unless contracts are checking here.

    With functions given, each must carry a contract (decorated while contracts were on);
    without, no function of the process may have been decorated while they were off. In both
    cases the current level (``mode()`` block or ``ESPER_CONTRACTS``) must not be ``off``.
    """
    problems: list[str] = []
    if current_level() == OFF:
        problems.append(f"contracts are off here ({ENV_VAR} or an enclosing mode('off'))")
    if functions:
        for fn in functions:
            target = getattr(fn, "__func__", fn)
            if getattr(target, "__contract__", None) is None:
                name = getattr(target, "__qualname__", repr(fn))
                problems.append(f"{name} has no active contract (decorated while off?)")
    else:
        missing = compiled_out()
        if missing:
            problems.append(
                f"{len(missing)} function(s) were decorated while contracts were off: "
                + ", ".join(missing[:10])
                + (", ..." if len(missing) > 10 else "")
            )
    if problems:
        raise ContractsDisabledError(
            "require_checks: these checks would not run: " + "; ".join(problems)
        )
