"""``@contract(...)`` for functions and methods, and ``check(...)`` for any place in a body."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from contracts.checker import Checker, DimValue
from contracts.compiled import compile_wrapper
from contracts.dims import parse_derived
from contracts.errors import ContractError
from contracts.plan import build_plan, check_expressions
from contracts.spec import Spec, SpecLike, spec
from contracts.switch import FULL, OFF, current_level, note_compiled_out, override_level

__all__ = ["check", "contract"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def contract(fn: F, /) -> F: ...


@overload
def contract(
    *,
    returns: SpecLike | None = None,
    bind: Mapping[str, str] | None = None,
    fixed: Mapping[str, DimValue] | None = None,
    derived: Mapping[str, str] | None = None,
    **arg_specs: SpecLike,
) -> Callable[[F], F]: ...


def contract(
    fn: F | None = None,
    /,
    *,
    returns: SpecLike | None = None,
    bind: Mapping[str, str] | None = None,
    fixed: Mapping[str, DimValue] | None = None,
    derived: Mapping[str, str] | None = None,
    **arg_specs: SpecLike,
) -> F | Callable[[F], F]:
    """Check the arguments (and the return value) of every call against their specs.

    Specs come from the annotations (``x: F32["batch n"]``, ``y: Annotated[Tensor,
    "int64[batch]"]``, ``-> F32["batch"]``) and from keywords (``x="float32[batch, n]"``,
    ``returns=...``); one argument cannot have both. ``@contract`` and ``@contract()`` read
    the annotations only.

    Symbols (``batch``, ``num_slots``, ``*lead``) are bound by their first occurrence in
    signature order and must agree everywhere after; ``bind={"num_slots": "self.num_slots"}``
    binds one from an argument's attribute on each call, ``fixed={"obs_dim": 114}`` fixes
    one at decoration, and ``derived={"obs_dim": "24 + 30*num_slots"}`` ties one to others.
    Specs are validated here, so a bad spec fails at import time.

    The mode is read now (``ESPER_CONTRACTS``, or an enclosing :func:`mode` block): ``off``
    returns ``fn`` itself, untouched.
    """

    def decorate(fn: F) -> F:
        plan = build_plan(fn, arg_specs, returns, bind, fixed, derived)
        level = current_level()
        if level == OFF:
            if override_level() is None:  # off by the environment, not by a mode() block
                note_compiled_out(getattr(fn, "__qualname__", plan.name))
            return fn
        wrapper = compile_wrapper(plan, fn, level)
        wrapper.__contract__ = plan  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    if fn is not None:
        if not callable(fn):
            raise TypeError(
                f"contract: expected a function to decorate, got {type(fn).__name__} "
                "(give specs as keywords: @contract(x='float32[n]'))"
            )
        return decorate(fn)
    return decorate


def check(
    where: str,
    /,
    *,
    bind: Mapping[str, DimValue] | None = None,
    derived: Mapping[str, str] | None = None,
    **values_and_specs: tuple[object, SpecLike],
) -> None:
    """Check values against specs in one go: ``check("rollout", obs=(obs, "float32[b, 114]"))``.

    Symbols are shared across all the pairs (``bind`` gives some up front, ``derived`` ties
    some to others). Raises one :class:`ContractError` naming ``where`` and listing every
    violation; does nothing when contracts are off.
    """
    level = current_level()
    if level == OFF:
        return
    relations = parse_derived(derived, f"check({where!r})")
    pairs: list[tuple[str, object, Spec]] = []
    for name, pair in values_and_specs.items():
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"check({where!r}): {name} must be a (value, spec) pair")
        pairs.append((name, pair[0], spec(pair[1])))
    check_expressions(f"check({where!r})", [s for *_, s in pairs], set(bind or {}), relations)
    checker = Checker(full=level == FULL, derived=relations)
    for sym, value in (bind or {}).items():
        checker.bind(sym, value, "given")
    for name, item, s in pairs:
        checker.check(name, item, s)
    checker.resolve()
    if checker.violations:
        raise ContractError.of(where, checker.violations)
