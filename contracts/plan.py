"""A decorated function's contract, resolved once at decoration: what to check, where it is.

The plan knows the position of every checked parameter in the signature, the instance,
fixed and derived symbols, and runs the thorough check (:class:`Checker`) whenever the
generated wrapper is unsure: :meth:`Plan.start` before the call, :meth:`Plan.finish` after.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from contracts.annotations import specs_from_annotations
from contracts.checker import Checker, DimValue
from contracts.dims import Expr, is_expr, parse_derived, parse_expr
from contracts.errors import ContractError
from contracts.spec import ListSpec, Spec, SpecLike, TensorSpec, spec
from contracts.switch import FULL

__all__ = ["MISSING", "Plan", "build_plan"]

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Plan:
    """Everything the generated wrapper and the slow path need, computed once."""

    name: str
    fn: Callable[..., object]
    params: tuple[inspect.Parameter, ...]
    #: (parameter name, its index in ``params``, spec), in signature order.
    args: tuple[tuple[str, int, Spec], ...]
    returns: Spec | None
    fixed: tuple[tuple[str, DimValue], ...]
    #: (symbol, path such as "self.num_slots", root parameter index, attribute names).
    bind: tuple[tuple[str, str, int, tuple[str, ...]], ...]
    #: (symbol, expression) of ``derived=``, each after the derived symbols it uses.
    derived: tuple[tuple[str, Expr], ...] = ()

    def symbols_with_variadic(self) -> frozenset[str]:
        names: set[str] = set()
        for s in self._all_specs():
            for t in _tensor_specs(s):
                names.update(d[1:] for d in t.shape if isinstance(d, str) and d.startswith("*"))
        return frozenset(names)

    def _all_specs(self) -> list[Spec]:
        specs = [s for _, _, s in self.args]
        if self.returns is not None:
            specs.append(self.returns)
        return specs

    def start(self, level: int, params: tuple[object, ...]) -> Checker:
        """Bind fixed and instance symbols, check every argument; raise on any violation."""
        checker = Checker(full=level == FULL, derived=self.derived)
        for sym, fixed_value in self.fixed:
            checker.bind(sym, fixed_value, "fixed")
        for sym, path, root, attrs in self.bind:
            value = params[root]
            for attr in attrs:
                value = getattr(value, attr, MISSING)
                if value is MISSING:
                    break
            if value is MISSING:
                checker.violations.append(f"cannot bind {sym}: {path} does not exist")
            elif not _is_dim_value(value):
                checker.violations.append(
                    f"cannot bind {sym}: {path} is a {type(value).__name__}, not an int"
                )
            else:
                checker.bind(sym, value, f"bound by {path}")
        for name, index, s in self.args:
            checker.check(name, params[index], s)
        checker.resolve()
        if checker.violations:
            raise ContractError.of(self.name, checker.violations)
        return checker

    def finish(self, checker: Checker, result: object) -> object:
        """Check the return value with the symbols the arguments bound; raise or return it."""
        if self.returns is not None:
            checker.check("return", result, self.returns)
            checker.resolve()
            if checker.violations:
                raise ContractError.of(self.name, checker.violations)
        return result


def _is_dim_value(value: object) -> TypeGuard[DimValue]:
    if type(value) is int:
        return True
    return isinstance(value, tuple) and all(type(v) is int for v in value)


def _tensor_specs(s: Spec) -> list[TensorSpec]:
    if isinstance(s, TensorSpec):
        return [s]
    out: list[TensorSpec] = []
    if s.kind == "dict":
        children = [s.values] if s.values is not None else list((s.keys or {}).values())
        for c in children:
            if c is not None:
                out.extend(_tensor_specs(c))
    elif isinstance(s, ListSpec):
        out.extend(_tensor_specs(s.item))
    else:
        for c in s.items:
            out.extend(_tensor_specs(c))
    return out


def build_plan(
    fn: Callable[..., object],
    arg_specs: Mapping[str, SpecLike],
    returns: SpecLike | None,
    bind: Mapping[str, str] | None,
    fixed: Mapping[str, DimValue] | None,
    derived: Mapping[str, str] | None = None,
) -> Plan:
    name = getattr(fn, "__name__", type(fn).__name__)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise TypeError(f"contract for {name}: cannot read its signature: {e}") from None
    params = tuple(signature.parameters.values())
    index = {p.name: i for i, p in enumerate(params)}
    for p in params:
        if p.name.startswith("_ct_"):
            raise TypeError(f"contract for {name}: parameter names starting '_ct_' are reserved")
    annotated, annotated_returns = specs_from_annotations(fn, name)
    both = [a for a in arg_specs if a in annotated]
    if returns is not None and annotated_returns is not None:
        both.append("returns")
    if both:
        raise TypeError(
            f"contract for {name}: {', '.join(both)} has a spec both in its annotation and "
            "as a keyword of @contract; keep one"
        )
    arg_specs = {**annotated, **arg_specs}
    if returns is None:
        returns = annotated_returns
    if not arg_specs and returns is None:
        raise TypeError(
            f"contract for {name}: no specs given, it would check nothing (give them as "
            "keywords of @contract or in the annotations, e.g. x: F32['batch n'])"
        )
    if returns is not None and (
        inspect.iscoroutinefunction(fn)
        or inspect.isgeneratorfunction(fn)
        or inspect.isasyncgenfunction(fn)
    ):
        # The call returns a coroutine or generator, never the value the spec describes.
        raise TypeError(
            f"contract for {name}: `returns` cannot check an async or generator function"
        )
    unknown = [a for a in arg_specs if a not in index]
    if unknown:
        raise TypeError(
            f"contract for {name}: no parameter named {', '.join(map(repr, unknown))} "
            f"(parameters: {', '.join(index)})"
        )
    for a in arg_specs:
        if params[index[a]].kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            raise TypeError(f"contract for {name}: cannot put a spec on *{a} or **{a}")
    args = tuple(
        (p.name, i, spec(arg_specs[p.name])) for i, p in enumerate(params) if p.name in arg_specs
    )
    fixed_items: list[tuple[str, DimValue]] = []
    for sym, value in (fixed or {}).items():
        if not _is_dim_value(value):
            raise TypeError(f"contract for {name}: fixed {sym}={value!r} is not an int")
        fixed_items.append((sym, value))
    bind_items: list[tuple[str, str, int, tuple[str, ...]]] = []
    for sym, path in (bind or {}).items():
        if not isinstance(path, str) or not _PATH.fullmatch(path):
            raise TypeError(
                f"contract for {name}: bind {sym}={path!r} is not a path like 'self.num_slots'"
            )
        root, *attrs = path.split(".")
        if root not in index:
            raise TypeError(f"contract for {name}: bind {sym}={path!r}: no parameter {root!r}")
        if sym in dict(fixed_items):
            raise TypeError(f"contract for {name}: {sym} is both fixed and bound")
        bind_items.append((sym, path, index[root], tuple(attrs)))
    # A derived symbol may also be fixed or bound: the relation then checks that value.
    derived_items = parse_derived(derived, f"contract for {name}")
    plan = Plan(
        name=name,
        fn=fn,
        params=params,
        args=args,
        returns=None if returns is None else spec(returns),
        fixed=tuple(fixed_items),
        bind=tuple(bind_items),
        derived=derived_items,
    )
    variadic = plan.symbols_with_variadic()
    for sym, value in plan.fixed:
        if (sym in variadic) != isinstance(value, tuple):
            kind = "a tuple of ints" if sym in variadic else "an int"
            raise TypeError(f"contract for {name}: fixed {sym} must be {kind}")
    check_expressions(
        f"contract for {name}",
        plan._all_specs(),
        {s for s, _ in plan.fixed} | {b[0] for b in plan.bind},
        plan.derived,
    )
    return plan


def check_expressions(
    where: str,
    specs: list[Spec],
    given: set[str],
    derived: tuple[tuple[str, Expr], ...],
) -> None:
    """Refuse expressions that could never be checked: a variadic symbol in one, or a
    symbol that nothing binds (unless the expression can solve for it)."""
    plain: set[str] = set(given) | {s for s, _ in derived}
    variadic: set[str] = set()
    exprs: list[Expr] = [e for _, e in derived]
    for s in specs:
        for t in _tensor_specs(s):
            for d in t.shape:
                if not isinstance(d, str):
                    continue
                if d.startswith("*"):
                    variadic.add(d[1:])
                elif is_expr(d):
                    exprs.append(parse_expr(d))
                elif d not in ("_", "..."):
                    plain.add(d)
    for e in exprs:
        bad = sorted(e.symbols & variadic)
        if bad:
            raise TypeError(
                f"{where}: {', '.join(bad)} binds several dims (*{bad[0]}) and cannot be "
                f"used in the expression {e}"
            )
        free = sorted(e.symbols - plain)
        if free and not (len(free) == 1 and e.solvable(free[0])):
            raise TypeError(
                f"{where}: nothing binds {', '.join(free)} in the expression {e}: name it "
                "as a dimension of some argument, or give it with bind=, fixed= or derived="
            )
