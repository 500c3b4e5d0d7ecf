"""The thorough checker: walks values against specs and collects every violation.

This is the reference semantics. The decorator's compiled fast path only decides "all fine"
faster; whenever it is unsure it hands the call to this checker, which either finds nothing
(and the call proceeds) or raises one :class:`ContractError` listing every problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from contracts.dims import Expr, is_expr, parse_expr
from contracts.spec import (
    FAMILIES,
    DictSpec,
    ListSpec,
    Spec,
    TensorSpec,
    TupleSpec,
    _fmt_num,
    dtype_matches,
    dtype_name,
    is_variadic,
)

__all__ = ["Checker", "describe"]

DimValue = int | tuple[int, ...]


def _dims_str(shape: tuple[int, ...]) -> str:
    return ", ".join(str(int(d)) for d in shape)


def describe(value: object) -> str:
    """What came, without its values: ``float32[32, 3]@cpu`` for a tensor, else the type."""
    if isinstance(value, torch.Tensor):
        return f"{dtype_name(value.dtype)}[{_dims_str(tuple(value.shape))}]@{value.device}"
    if value is None:
        return "None"
    return type(value).__name__


def _fmt_dim(value: DimValue) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(str(int(v)) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(int(value))


def _is_compiling() -> bool:
    return bool(torch.compiler.is_compiling())


class Checker:
    """One call's worth of checking: shared symbol bindings and the violations found so far."""

    __slots__ = (
        "_device",
        "derived",
        "full",
        "origins",
        "pending",
        "sources",
        "symbols",
        "violations",
    )

    def __init__(self, full: bool = False, derived: tuple[tuple[str, Expr], ...] = ()) -> None:
        self.full = full
        self.symbols: dict[str, DimValue] = {}
        self.sources: dict[str, str] = {}
        #: Where a symbol bound from a tensor came from, such as ``features.shape[1]``.
        self.origins: dict[str, str] = {}
        #: Expression dimensions waiting for their symbols: (label.where, actual, expr).
        self.pending: list[tuple[str, int, Expr]] = []
        #: Derived symbols still to check: (symbol, expression), dependencies first.
        self.derived = list(derived)
        self._device: tuple[torch.device, str] | None = None
        self.violations: list[str] = []

    def bind(self, name: str, value: DimValue, source: str) -> None:
        """Bind ``name`` before checking (``source`` reads as "fixed", "bound by ...")."""
        self.symbols[name] = value
        self.sources[name] = source

    # ------------------------------------------------------------------------ expressions

    def resolve(self) -> None:
        """Check every expression whose symbols are known, solving for one unknown if needed.

        Called after the arguments and again after the return value; what still lacks a
        symbol then (an optional argument was None) is left unchecked.
        """
        progress = True
        while progress and (self.pending or self.derived):
            before = len(self.pending) + len(self.derived)
            self.pending = [p for p in self.pending if not self._resolve_dim(*p)]
            self.derived = [d for d in self.derived if not self._resolve_derived(*d)]
            progress = len(self.pending) + len(self.derived) < before

    def _ints(self, expr: Expr) -> tuple[dict[str, int], list[str]]:
        known: dict[str, int] = {}
        unknown: list[str] = []
        for name in sorted(expr.symbols):
            value = self.symbols.get(name)
            if isinstance(value, int):
                known[name] = value
            elif value is None:
                unknown.append(name)
        return known, unknown

    def _detail(self, known: Mapping[str, int]) -> str:
        return "; ".join(f"{n}={v}, {self.sources[n]}" for n, v in known.items())

    def _compare(self, left: str, actual: int, name: str, expr: Expr) -> bool:
        """Check ``actual`` against ``expr``; ``name`` prefixes it for a derived symbol.

        ``left`` says where ``actual`` came from (``features.shape[1]=110``). Returns whether
        the expression was settled (checked or solved), False while a symbol is missing.
        """
        known, unknown = self._ints(expr)
        if len(known) + len(unknown) < len(expr.symbols):
            # A symbol holds a tuple (``*lead``): not a number, say so once.
            self.violations.append(f"{left} but {name}{expr.text} uses a variadic symbol")
            return True
        if unknown:
            if len(unknown) > 1 or not expr.solvable(unknown[0]):
                return False
            value = expr.solve(unknown[0], known, actual)
            if value is None:
                detail = f" ({self._detail(known)})" if known else ""
                self.violations.append(
                    f"{left} but {name}{expr.text} has no whole-number solution for "
                    f"{unknown[0]}{detail}"
                )
            else:
                self.bind(unknown[0], value, f"solved from {left} ({name}{expr.text})")
            return True
        try:
            want = expr.evaluate(known)
        except ZeroDivisionError as e:
            self.violations.append(f"{left} but {name}{expr.text}: {e} ({self._detail(known)})")
            return True
        if want != actual:
            detail = f" ({self._detail(known)})" if known else ""
            self.violations.append(f"{left} but {name}{expr.text} = {want}{detail}")
        return True

    def _resolve_dim(self, where: str, actual: int, expr: Expr) -> bool:
        return self._compare(f"{where}={actual}", actual, "", expr)

    def _resolve_derived(self, sym: str, expr: Expr) -> bool:
        bound = self.symbols.get(sym)
        if isinstance(bound, tuple):
            self.violations.append(f"{sym} is derived ({sym} = {expr.text}) but binds several dims")
            return True
        if bound is None:
            known, unknown = self._ints(expr)
            if unknown or len(known) < len(expr.symbols):
                return False
            try:
                self.bind(sym, expr.evaluate(known), f"{sym} = {expr.text} ({self._detail(known)})")
            except ZeroDivisionError:
                return False
            return True
        origin = self.origins.get(sym)
        left = f"{origin}={bound}" if origin is not None else f"{sym}={bound} ({self.sources[sym]})"
        return self._compare(left, int(bound), f"{sym} = ", expr)

    def check(self, label: str, value: object, spec: Spec) -> None:
        if value is None:
            if not spec.optional:
                self.violations.append(f"{label}: expected {spec.signature()}, got None")
            return
        if isinstance(spec, TensorSpec):
            self._tensor(label, value, spec)
        elif isinstance(spec, DictSpec):
            self._dict(label, value, spec)
        elif isinstance(spec, ListSpec):
            self._list(label, value, spec)
        else:
            self._tuple(label, value, spec)

    # ------------------------------------------------------------------------------ kinds

    def _dict(self, label: str, value: object, spec: DictSpec) -> None:
        if not isinstance(value, Mapping):
            self.violations.append(f"{label}: expected {spec.signature()}, got {describe(value)}")
            return
        if spec.values is not None:
            for key, item in value.items():
                self.check(f"{label}[{_key(key)}]", item, spec.values)
            return
        assert spec.keys is not None
        missing = [k for k in spec.keys if k not in value]
        extra = [k for k in value if k not in spec.keys]
        if missing:
            self.violations.append(f"{label}: missing key(s) {', '.join(map(repr, missing))}")
        if extra:
            self.violations.append(
                f"{label}: unexpected key(s) {', '.join(map(repr, extra))} "
                f"(expected {', '.join(map(repr, spec.keys))})"
            )
        for key, item_spec in spec.keys.items():
            if key in value:
                self.check(f"{label}[{_key(key)}]", value[key], item_spec)

    def _list(self, label: str, value: object, spec: ListSpec) -> None:
        if not isinstance(value, list):
            self.violations.append(f"{label}: expected {spec.signature()}, got {describe(value)}")
            return
        for i, item in enumerate(value):
            self.check(f"{label}[{i}]", item, spec.item)

    def _tuple(self, label: str, value: object, spec: TupleSpec) -> None:
        if not isinstance(value, tuple):
            self.violations.append(f"{label}: expected {spec.signature()}, got {describe(value)}")
            return
        if spec.variadic:
            names = getattr(type(value), "_fields", None)
            for i, item in enumerate(value):
                where = f".{names[i]}" if isinstance(names, tuple) else f"[{i}]"
                self.check(f"{label}{where}", item, spec.items[0])
            return
        if len(value) != len(spec.items):
            self.violations.append(
                f"{label}: expected a tuple of {len(spec.items)}, got a tuple of {len(value)}"
            )
            return
        # A NamedTuple's items are named by field (``return.value``), others by index.
        names = getattr(type(value), "_fields", None)
        for i, (item, item_spec) in enumerate(zip(value, spec.items, strict=True)):
            where = f".{names[i]}" if isinstance(names, tuple) else f"[{i}]"
            self.check(f"{label}{where}", item, item_spec)

    def _tensor(self, label: str, value: object, spec: TensorSpec) -> None:
        if not isinstance(value, torch.Tensor):
            self.violations.append(f"{label}: expected {spec.signature()}, got {describe(value)}")
            return
        shape = tuple(value.shape)
        dims = spec.shape
        variadic = next((i for i, d in enumerate(dims) if is_variadic(d)), None)
        fixed_rank = len(dims) - (variadic is not None)
        rank_ok = len(shape) == fixed_rank if variadic is None else len(shape) >= fixed_rank
        literal_ok = rank_ok and all(
            isinstance(d, str) or shape[self._index(i, variadic, dims, shape)] == d
            for i, d in enumerate(dims)
            if not is_variadic(d)
        )
        device_ok = spec.device in (None, "same") or _device_matches(value.device, spec.device)
        if not (dtype_matches(spec.dtype, value.dtype) and literal_ok and device_ok):
            # Its shape cannot be trusted to bind symbols for the other arguments.
            self.violations.append(f"{label}: expected {spec.signature()}, got {describe(value)}")
            return
        for i, d in enumerate(dims):
            if isinstance(d, int) or d in ("_", "*", "...", "*_"):
                continue
            if is_expr(d):
                j = self._index(i, variadic, dims, shape)
                self.pending.append((f"{label}.shape[{j}]", int(shape[j]), parse_expr(str(d))))
            elif is_variadic(d):
                assert variadic is not None
                stop = len(shape) - (len(dims) - variadic - 1)
                actual: DimValue = shape[variadic:stop]
                where = f"shape[{variadic or ''}:{stop - len(shape) or ''}]"
                self._symbol(label, where, d[1:], actual)
            else:
                j = self._index(i, variadic, dims, shape)
                self._symbol(label, f"shape[{j}]", d, shape[j])
        if spec.device == "same":
            if self._device is None:
                self._device = (value.device, f"{label}.device")
            elif value.device != self._device[0]:
                self.violations.append(
                    f"{label}.device={value.device} but the other tensors are on "
                    f"{self._device[0]} (bound by {self._device[1]})"
                )
        if self.full and spec.has_range:
            self._range(label, value, spec)

    # ---------------------------------------------------------------------------- helpers

    @staticmethod
    def _index(
        i: int, variadic: int | None, dims: tuple[int | str, ...], shape: tuple[int, ...]
    ) -> int:
        if variadic is None or i < variadic:
            return i
        return len(shape) - (len(dims) - i)

    def _symbol(self, label: str, where: str, name: str, actual: DimValue) -> None:
        bound = self.symbols.get(name)
        if bound is None:
            self.bind(name, actual, f"bound by {label}.{where}")
            self.origins[name] = f"{label}.{where}"
        elif _normalise(bound) != _normalise(actual):
            self.violations.append(
                f"{label}.{where}={_fmt_dim(actual)} but {name}={_fmt_dim(bound)} "
                f"({self.sources[name]})"
            )

    def _range(self, label: str, value: torch.Tensor, spec: TensorSpec) -> None:
        if value.numel() == 0 or value.dtype is torch.bool or value.dtype in FAMILIES["complex"]:
            return
        if _is_compiling() or value.is_meta:
            return  # no values to read (meta), or reading them would break the graph
        assert spec.low is not None and spec.high is not None
        bounds = f"[{_fmt_num(spec.low)}, {_fmt_num(spec.high)}]"
        try:
            extremes = _extremes(value)
        except (RuntimeError, NotImplementedError, TypeError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.violations.append(
                f"{label}: cannot read its values to check the range {bounds} "
                f"({describe(value)}, layout {value.layout}): {reason}"
            )
            return
        if extremes is None:
            return
        mn, mx = extremes
        if math.isnan(mn) or math.isnan(mx):
            self.violations.append(f"{label}: contains NaN, expected values in {bounds}")
        elif mn < spec.low or mx > spec.high:
            self.violations.append(
                f"{label}: values in [{_fmt_num(mn)}, {_fmt_num(mx)}] outside {bounds}"
            )


def _extremes(value: torch.Tensor) -> tuple[float, float] | None:
    """(min, max) of the values, reading sparse tensors' stored values and implicit zeros."""
    data = value.detach()
    implicit_zero = False
    if data.layout is not torch.strided:
        # Sparse: stored values, plus the zeros that are not stored, if there are any.
        stored = data.coalesce().values() if data.layout is torch.sparse_coo else data.values()
        implicit_zero = stored.numel() < data.numel()
        data = stored
    if data.dtype.is_floating_point and data.element_size() == 1:
        data = data.float()  # float8 has no min/max kernels
    if data.numel() == 0:
        return (0.0, 0.0) if implicit_zero else None
    lo, hi = torch.aminmax(data)
    mn, mx = lo.item(), hi.item()
    if implicit_zero:
        mn, mx = min(mn, 0), max(mx, 0)
    return mn, mx


def _key(key: object) -> str:
    return f'"{key}"' if isinstance(key, str) else repr(key)


def _normalise(value: DimValue) -> DimValue:
    if isinstance(value, tuple):
        return tuple(int(v) for v in value)
    return int(value)


def _device_matches(device: torch.device, wanted: str) -> bool:
    want = torch.device(wanted)
    if want.index is None:
        return device.type == want.type
    return device == want
