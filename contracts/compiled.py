"""The fast path: a wrapper generated as Python source for one contract.

The wrapper has the decorated function's own signature, so Python binds the arguments (no
``inspect.bind`` per call), and its body is straight-line code specialised to the specs:
``type(x) is Tensor``, ``x.dtype is torch.int64``, ``len(s := x.shape) == 2``, ``s[0] == batch``.
Every test is a cheap attribute or integer comparison. On the first doubt the wrapper asks
:meth:`Plan.start`, which checks thoroughly and either raises one ``ContractError`` listing
every violation or lets the call proceed (a tensor subclass, a Mapping that is not a dict:
legal, just not on the fast path).

Under ``torch.compile`` the wrapper's own frame is skipped by dynamo (it runs eagerly, around
the compiled graph of the decorated function), so a compiled contracted function is one graph
and a wrong call raises ``ContractError`` itself. Inlined into a larger compiled function,
the wrapper is traced like any Python: its checks become the graph's guards.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import linecache
from collections.abc import Callable
from types import CodeType
from typing import Any

import torch

from contracts.dims import Expr, is_expr, parse_expr
from contracts.plan import MISSING, Plan
from contracts.spec import (
    DTYPES,
    FAMILIES,
    DictSpec,
    ListSpec,
    Spec,
    TensorSpec,
    TupleSpec,
    is_variadic,
)
from contracts.switch import ACTIVE, override_level

__all__ = ["compile_wrapper"]

_counter = itertools.count()

_BOUND, _MAYBE, _UNBOUND = "bound", "maybe", "unbound"


class _Gen:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ns: dict[str, Any] = {
            "_ct_T": torch.Tensor,
            "_ct_M": MISSING,
            "_ct_act": ACTIVE,
            "_ct_ovr": override_level,
            # Builtins under private names: a parameter called ``type`` or ``len`` must not
            # shadow what the generated code calls.
            "_ct_getattr": getattr,
            "_ct_type": type,
            "_ct_len": len,
            "_ct_dict": dict,
            "_ct_tuple": tuple,
            "_ct_int": int,
            "_ct_list": list,
            "_ct_start": plan.start,
            "_ct_finish": plan.finish,
        }
        self.consts: dict[int, str] = {}
        self.tmp = itertools.count()
        self.state: dict[str, str] = {}
        self.device_state = _UNBOUND
        self.needs_init: set[str] = set()
        self.lines: list[str] = []
        self.fail = ""
        #: Expression dims of unconditional tensors: (shape item, expression), checked once
        #: every argument has bound its symbols.
        self.deferred: list[tuple[str, Expr]] = []
        #: Derived symbols not yet checked (they may wait for the return value).
        self.pending_derived: list[tuple[str, Expr]] = list(plan.derived)

    def const(self, value: object, prefix: str) -> str:
        key = id(value)
        if key not in self.consts:
            name = f"_ct_{prefix}{len(self.consts)}"
            self.consts[key] = name
            self.ns[name] = value
        return self.consts[key]

    def var(self, prefix: str) -> str:
        return f"_ct_{prefix}{next(self.tmp)}"

    @staticmethod
    def sym(name: str) -> str:
        return f"_ct_s_{name}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    # --------------------------------------------------------------------------- specs

    def spec(self, s: Spec, expr: str, indent: int, conditional: bool) -> None:
        if s.optional:
            self.emit(indent, f"if {expr} is not None:")
            indent += 1
            conditional = True
        if isinstance(s, TensorSpec):
            self.tensor(s, expr, indent, conditional)
        elif isinstance(s, DictSpec):
            self.dict(s, expr, indent, conditional)
        elif isinstance(s, ListSpec):
            self.sequence(s.item, "_ct_list", expr, indent)
        elif isinstance(s, TupleSpec) and s.variadic:
            self.sequence(s.items[0], "_ct_tuple", expr, indent)
        else:
            n = len(s.items)
            self.emit(indent, f"if _ct_type({expr}) is not _ct_tuple or _ct_len({expr}) != {n}:")
            self.emit(indent + 1, self.fail)
            for i, item in enumerate(s.items):
                v = self.var("v")
                self.emit(indent, f"{v} = {expr}[{i}]")
                self.spec(item, v, indent, conditional)

    def sequence(self, item: Spec, kind: str, expr: str, indent: int) -> None:
        self.emit(indent, f"if _ct_type({expr}) is not {kind}:")
        self.emit(indent + 1, self.fail)
        v = self.var("v")
        self.emit(indent, f"for {v} in {expr}:")
        self.spec(item, v, indent + 1, True)

    def dict(self, s: DictSpec, expr: str, indent: int, conditional: bool) -> None:
        if s.keys is not None:
            keys = self.const(frozenset(s.keys), "keys")
            self.emit(indent, f"if _ct_type({expr}) is not _ct_dict or {expr}.keys() != {keys}:")
            self.emit(indent + 1, self.fail)
            for key, item in s.keys.items():
                v = self.var("v")
                self.emit(indent, f"{v} = {expr}[{key!r}]")
                self.spec(item, v, indent, conditional)
            return
        assert s.values is not None
        self.emit(indent, f"if _ct_type({expr}) is not _ct_dict:")
        self.emit(indent + 1, self.fail)
        v = self.var("v")
        self.emit(indent, f"for {v} in {expr}.values():")
        self.spec(s.values, v, indent + 1, True)

    def tensor(self, s: TensorSpec, expr: str, indent: int, conditional: bool) -> None:
        sh = self.var("sh")
        tests = [f"_ct_type({expr}) is _ct_T"]
        if s.dtype in FAMILIES:
            if s.dtype != "any":
                tests.append(f"{expr}.dtype in {self.const(FAMILIES[s.dtype], 'fam')}")
        else:
            tests.append(f"{expr}.dtype is {self.const(DTYPES[s.dtype], 'dt')}")
        dims = s.shape
        variadic = next((i for i, d in enumerate(dims) if is_variadic(d)), None)
        if variadic is None:
            tests.append(f"_ct_len({sh} := {expr}.shape) == {len(dims)}")
        elif len(dims) > 1:
            tests.append(f"_ct_len({sh} := {expr}.shape) >= {len(dims) - 1}")
        else:
            tests.append(f"({sh} := {expr}.shape) is not None")
        binds: list[str] = []
        here: dict[str, str] = {}
        for i, d in enumerate(dims):
            if variadic is None or i < variadic:
                at = f"{sh}[{i}]"
            elif i == variadic:
                after = len(dims) - variadic - 1
                at = f"{sh}[{i}:{-after if after else ''}]"
            else:
                at = f"{sh}[{i - len(dims)}]"
            if isinstance(d, int):
                tests.append(f"{at} == {d}")
                continue
            if d in ("_", "*", "...", "*_"):
                continue
            if is_expr(d):
                self.expression(parse_expr(d), at, tests, conditional)
                continue
            name = d[1:] if d.startswith("*") else d
            if name in here:  # the same symbol twice in one tensor, e.g. [n, n]
                tests.append(f"{at} == {here[name]}")
                continue
            here[name] = at
            self.symbol(name, at, tests, binds, conditional)
        if s.device is not None:
            self.device(s.device, expr, tests, binds, conditional)
        self.emit(indent, f"if not ({' and '.join(tests)}):")
        self.emit(indent + 1, self.fail)
        for b in binds:
            self.emit(indent, b)

    def symbol(self, name: str, at: str, tests: list[str], binds: list[str], cond: bool) -> None:
        var = self.sym(name)
        state = self.state.get(name, _UNBOUND)
        if state == _BOUND:
            tests.append(f"{at} == {var}")
        elif state == _UNBOUND and not cond:
            binds.append(f"{var} = {at}")
            self.state[name] = _BOUND
        else:
            tests.append(f"({at} == {var} if {var} is not None else ({var} := {at}) is not None)")
            self.needs_init.add(var)
            self.state[name] = _MAYBE if cond else _BOUND

    def expression(self, e: Expr, at: str, tests: list[str], cond: bool) -> None:
        if all(self.state.get(n) == _BOUND for n in e.symbols):
            tests.append(f"{at} == {self.py(e)}")
        elif not cond:
            self.deferred.append((at, e))
        else:
            # Inside a loop or an optional value, with a symbol not yet bound: leave it to
            # the thorough check (which can also solve for the symbol).
            tests.append("False")

    def py(self, e: Expr) -> str:
        return e.python({n: self.sym(n) for n in e.symbols})

    def settle(self, indent: int) -> None:
        """After the arguments (and again after the return value): deferred expression dims,
        then derived symbols, solving a linear unknown where the thorough check would."""
        for at, e in self.deferred:
            guard = self.guard(e)
            if guard is None and not self.solve(e, at, indent):
                self.emit(indent, self.fail)  # a symbol only the thorough check can find
                return
            if guard is not None:
                self.emit(indent, f"if {guard}{at} != {self.py(e)}:")
                self.emit(indent + 1, self.fail)
        self.deferred = []
        progress = True
        while progress:
            progress = False
            for sym, e in list(self.pending_derived):
                settled = self.derive(sym, e, indent)
                if settled is None:
                    return  # the code from here on is unreachable: the thorough check runs
                if settled:
                    self.pending_derived.remove((sym, e))
                    progress = True

    def derive(self, sym: str, e: Expr, indent: int) -> bool | None:
        """Code checking ``sym = e``: True when emitted, False to retry later, None when it
        emitted an unconditional hand-over to the thorough check."""
        guard = self.guard(e)
        state = self.state.get(sym, _UNBOUND)
        var = self.sym(sym)
        if guard is None:
            if state == _UNBOUND:
                return False  # neither side known yet
            if state == _BOUND and self.solve(e, var, indent):
                return True
            self.emit(indent, self.fail)
            return None
        if state == _UNBOUND:
            if guard:
                self.emit(indent, f"if {guard[:-4]}:")  # some symbol missing
                self.emit(indent + 1, self.fail)
            self.emit(indent, f"{var} = {self.py(e)}")
            self.state[sym] = _BOUND
            return True
        if state == _MAYBE:
            guard = f"{var} is None or {guard}"
        self.emit(indent, f"if {guard}{var} != {self.py(e)}:")
        self.emit(indent + 1, self.fail)
        return True

    def solve(self, e: Expr, at: str, indent: int) -> bool:
        """Bind the one unknown symbol of ``e`` from ``at == e`` if ``e`` is linear in it."""
        unknown = [n for n in e.symbols if self.state.get(n, _UNBOUND) != _BOUND]
        if len(unknown) != 1 or self.state.get(unknown[0], _UNBOUND) != _UNBOUND:
            return False
        x = unknown[0]
        if not e.solvable(x):
            return False
        names = {n: self.sym(n) for n in e.symbols}
        b, a, t = self.var("b"), self.var("a"), self.var("t")
        self.emit(indent, f"{b} = {e.python({**names, x: '0'})}")
        self.emit(indent, f"{a} = {e.python({**names, x: '1'})} - {b}")
        self.emit(indent, f"{t} = {at} - {b}")
        self.emit(indent, f"if {a} == 0 or {t} % {a} or {t} // {a} < 0:")
        self.emit(indent + 1, self.fail)
        self.emit(indent, f"{self.sym(x)} = {t} // {a}")
        self.state[x] = _BOUND
        return True

    def guard(self, e: Expr) -> str | None:
        """``"a is None or b is None or "`` for maybe-bound symbols; None if one is unbound."""
        parts = []
        for n in sorted(e.symbols):
            state = self.state.get(n, _UNBOUND)
            if state == _UNBOUND:
                return None
            if state == _MAYBE:
                parts.append(f"{self.sym(n)} is None or ")
        return "".join(parts)

    def device(
        self, device: str, expr: str, tests: list[str], binds: list[str], cond: bool
    ) -> None:
        if device != "same":
            want = torch.device(device)
            if want.index is None:
                tests.append(f"{expr}.device.type == {want.type!r}")
            else:
                tests.append(f"{expr}.device == {self.const(want, 'dev')}")
            return
        var = "_ct_dev"
        if self.device_state == _BOUND:
            tests.append(f"{expr}.device == {var}")
        elif self.device_state == _UNBOUND and not cond:
            binds.append(f"{var} = {expr}.device")
            self.device_state = _BOUND
        else:
            tests.append(
                f"({expr}.device == {var} if {var} is not None "
                f"else ({var} := {expr}.device) is not None)"
            )
            self.needs_init.add(var)
            self.device_state = _MAYBE if cond else _BOUND

    # ------------------------------------------------------------------------- function

    def build(self, fn: Callable[..., Any], default_level: int) -> Callable[..., Any]:
        plan = self.plan
        self.ns["_ct_fn"] = fn
        sig_parts: list[str] = []
        call_parts: list[str] = []
        seen_kw_marker = False
        prev_kind = None
        for i, p in enumerate(plan.params):
            if (
                prev_kind == inspect.Parameter.POSITIONAL_ONLY
                and p.kind != inspect.Parameter.POSITIONAL_ONLY
            ):
                sig_parts.append("/")
            default = ""
            if p.default is not inspect.Parameter.empty:
                # The very default object, so that mutable defaults keep their identity.
                self.ns[f"_ct_default{i}"] = p.default
                default = f"=_ct_default{i}"
            if p.kind == inspect.Parameter.VAR_POSITIONAL:
                sig_parts.append(f"*{p.name}")
                call_parts.append(f"*{p.name}")
                seen_kw_marker = True
            elif p.kind == inspect.Parameter.VAR_KEYWORD:
                sig_parts.append(f"**{p.name}")
                call_parts.append(f"**{p.name}")
            elif p.kind == inspect.Parameter.KEYWORD_ONLY:
                if not seen_kw_marker:
                    sig_parts.append("*")
                    seen_kw_marker = True
                sig_parts.append(f"{p.name}{default}")
                call_parts.append(f"{p.name}={p.name}")
            else:
                sig_parts.append(f"{p.name}{default}")
                call_parts.append(p.name)
            prev_kind = p.kind
        if prev_kind == inspect.Parameter.POSITIONAL_ONLY:
            sig_parts.append("/")
        call = f"_ct_fn({', '.join(call_parts)})"
        params = "(" + "".join(f"{p.name}, " for p in plan.params) + ")"
        # On doubt: the thorough check raises or returns its checker, then the call, then the
        # return value's thorough check (argument order is evaluation order).
        self.fail = f"return _ct_finish(_ct_start(_ct_l, {params}), {call})"

        body = self.lines
        # The per-context mode is read only while some mode() block is open somewhere.
        self.emit(1, "if _ct_act[0]:")
        self.emit(2, "_ct_l = _ct_ovr()")
        self.emit(2, "if _ct_l is None:")
        self.emit(3, f"_ct_l = {default_level}")
        self.emit(1, "else:")
        self.emit(2, f"_ct_l = {default_level}")
        self.emit(1, "if _ct_l != 1:")
        self.emit(2, "if _ct_l == 0:")
        self.emit(3, f"return {call}")
        self.emit(2, self.fail)
        # Symbols first bound inside a loop or an optional argument start as None.
        init_at = len(body)
        for sym, value in plan.fixed:
            self.emit(1, f"{self.sym(sym)} = {self.const(value, 'fix')}")
            self.state[sym] = _BOUND
        for sym, _path, root, attrs in plan.bind:
            expr = plan.params[root].name
            for a in attrs:
                expr = f"_ct_getattr({expr}, {a!r}, _ct_M)"
            self.emit(1, f"{self.sym(sym)} = {expr}")
            self.emit(1, f"if _ct_type({self.sym(sym)}) is not _ct_int:")
            self.emit(2, self.fail)
            self.state[sym] = _BOUND
        for name, _index, s in plan.args:
            self.spec(s, name, 1, False)
        self.settle(1)
        self.emit(1, f"_ct_r = {call}")
        if plan.returns is not None:
            self.fail = f"return _ct_finish(_ct_start(_ct_l, {params}), _ct_r)"
            self.spec(plan.returns, "_ct_r", 1, False)
            self.settle(1)
        self.emit(1, "return _ct_r")
        body[init_at:init_at] = [f"    {v} = None" for v in sorted(self.needs_init)]

        filename = f"<contract {plan.name} #{next(_counter)}>"
        source = f"def {_safe_name(plan.name)}({', '.join(sig_parts)}):\n" + "\n".join(body) + "\n"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        code = compile(source, filename, "exec")
        exec(code, self.ns)
        wrapper: Callable[..., Any] = self.ns[_safe_name(plan.name)]
        _dynamo_runs_eagerly(wrapper.__code__, recursive=False)
        functools.update_wrapper(wrapper, fn)
        wrapper.__contract_source__ = source  # type: ignore[attr-defined]
        return wrapper


def _dynamo_runs_eagerly(code: CodeType, recursive: bool) -> None:
    """Have ``torch.compile`` run ``code``'s frames eagerly instead of tracing them.

    Non-recursive for the wrapper (the decorated function it calls is still compiled, one
    graph), recursive for the thorough check (it raises ``ContractError`` in plain Python,
    which a traced frame would turn into dynamo's own error). Only frames entered from eager
    code are affected: inlined into a traced function, the same code is still traced.
    """
    try:
        from torch._C._dynamo.eval_frame import (
            _FrameAction,
            _FrameExecStrategy,
            set_code_exec_strategy,
        )
    except ImportError:  # pragma: no cover - a torch without dynamo: nothing compiles frames
        return
    nested = _FrameAction.SKIP if recursive else _FrameAction.DEFAULT
    set_code_exec_strategy(code, _FrameExecStrategy(_FrameAction.SKIP, nested))


for _code in (Plan.start.__code__, Plan.finish.__code__, override_level.__code__):
    _dynamo_runs_eagerly(_code, recursive=True)


def _safe_name(name: str) -> str:
    return name if name.isidentifier() else "checked"


def compile_wrapper(plan: Plan, fn: Callable[..., Any], default_level: int) -> Callable[..., Any]:
    """The checked wrapper of ``fn`` for ``plan`` (``default_level`` is ON or FULL)."""
    return _Gen(plan).build(fn, default_level)
