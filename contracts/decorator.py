"""``@contract(...)`` for functions and methods, and ``check(...)`` for any place in a body."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from contracts.checker import Checker, DimValue
from contracts.compiled import compile_wrapper
from contracts.errors import ContractError
from contracts.plan import build_plan
from contracts.spec import SpecLike, spec
from contracts.switch import FULL, OFF, current_level

__all__ = ["check", "contract"]

F = TypeVar("F", bound=Callable[..., Any])


def contract(
    *,
    returns: SpecLike | None = None,
    bind: Mapping[str, str] | None = None,
    fixed: Mapping[str, DimValue] | None = None,
    **arg_specs: SpecLike,
) -> Callable[[F], F]:
    """Check the named arguments (and ``returns``) of every call against their specs.

    Symbols (``batch``, ``num_slots``, ``*lead``) are bound by their first occurrence in
    signature order and must agree everywhere after; ``bind={"num_slots": "self.num_slots"}``
    binds one from an argument's attribute on each call and ``fixed={"obs_dim": 114}`` fixes
    one at decoration. Specs are validated here, so a bad spec fails at import time.

    The mode is read now (``ESPER_CONTRACTS``, or an enclosing :func:`mode` block): ``off``
    returns ``fn`` itself, untouched.
    """

    def decorate(fn: F) -> F:
        plan = build_plan(fn, arg_specs, returns, bind, fixed)
        level = current_level()
        if level == OFF:
            return fn
        wrapper = compile_wrapper(plan, fn, level)
        wrapper.__contract__ = plan  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def check(
    where: str,
    /,
    *,
    bind: Mapping[str, DimValue] | None = None,
    **values_and_specs: tuple[object, SpecLike],
) -> None:
    """Check values against specs in one go: ``check("rollout", obs=(obs, "float32[b, 114]"))``.

    Symbols are shared across all the pairs (and ``bind`` gives some up front). Raises one
    :class:`ContractError` naming ``where`` and listing every violation; does nothing when
    contracts are off.
    """
    level = current_level()
    if level == OFF:
        return
    checker = Checker(full=level == FULL)
    for sym, value in (bind or {}).items():
        checker.bind(sym, value, "given")
    for name, pair in values_and_specs.items():
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"check({where!r}): {name} must be a (value, spec) pair")
        checker.check(name, pair[0], spec(pair[1]))
    if checker.violations:
        raise ContractError.of(where, checker.violations)
