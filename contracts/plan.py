"""A decorated function's contract, resolved once at decoration: what to check, where it is.

The plan knows the position of every checked parameter in the signature, the instance or
fixed symbols, and runs the thorough check (:class:`Checker`) for the slow path.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from contracts.checker import Checker, DimValue
from contracts.errors import ContractError
from contracts.spec import Spec, SpecLike, TensorSpec, spec
from contracts.switch import FULL, OFF

__all__ = ["MISSING", "Plan", "build_plan"]

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


_VAR_POSITIONAL = int(inspect.Parameter.VAR_POSITIONAL)
_KEYWORD_ONLY = int(inspect.Parameter.KEYWORD_ONLY)
_VAR_KEYWORD = int(inspect.Parameter.VAR_KEYWORD)


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

    @property
    def call_kinds(self) -> tuple[tuple[str, int], ...]:
        return tuple((p.name, int(p.kind)) for p in self.params)

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
        checker = Checker(full=level == FULL)
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
        if checker.violations:
            raise ContractError.of(self.name, checker.violations)
        return checker

    def slow(self, level: int, params: tuple[object, ...]) -> object:
        """Check thoroughly (unless ``level`` is off), call, check the return value."""
        if level == OFF:
            return self.call(params)
        checker = self.start(level, params)
        return self._finish(checker, self.call(params))

    def call(self, params: tuple[object, ...]) -> object:
        """Call the function with the values of its parameters, in signature order."""
        args: list[object] = []
        kwargs: dict[str, Any] = {}
        for (name, kind), value in zip(self.call_kinds, params, strict=True):
            if kind == _VAR_POSITIONAL:
                args.extend(value)  # type: ignore[arg-type]
            elif kind == _VAR_KEYWORD:
                kwargs.update(value)  # type: ignore[call-overload]
            elif kind == _KEYWORD_ONLY:
                kwargs[name] = value
            else:
                args.append(value)
        return self.fn(*args, **kwargs)

    def slow_return(self, level: int, params: tuple[object, ...], result: object) -> object:
        """The fast path doubted only the return value: check everything thoroughly."""
        return self._finish(self.start(level, params), result)

    def _finish(self, checker: Checker, result: object) -> object:
        if self.returns is not None:
            checker.check("return", result, self.returns)
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
    if not arg_specs and returns is None:
        raise TypeError(f"contract for {name}: no specs given, it would check nothing")
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
    plan = Plan(
        name=name,
        fn=fn,
        params=params,
        args=args,
        returns=None if returns is None else spec(returns),
        fixed=tuple(fixed_items),
        bind=tuple(bind_items),
    )
    variadic = plan.symbols_with_variadic()
    for sym, value in plan.fixed:
        if (sym in variadic) != isinstance(value, tuple):
            kind = "a tuple of ints" if sym in variadic else "an int"
            raise TypeError(f"contract for {name}: fixed {sym} must be {kind}")
    return plan
