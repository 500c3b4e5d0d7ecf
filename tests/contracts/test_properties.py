"""Properties over random specs: matching tensors pass, one wrong dim or dtype is named."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contracts import ContractError, contract
from contracts.checker import Checker
from contracts.spec import DictSpec, dtype_matches, spec

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}
FAMILY_OF = {"float": torch.float32, "integer": torch.int16, "signed": torch.int8}
SYMBOLS = ("a", "b", "c")
# CONTRACTS_EXAMPLES=1000 for a deeper search than the quick default.
SETTINGS = settings(
    max_examples=int(os.environ.get("CONTRACTS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class Case:
    text: str
    dtype: torch.dtype
    dims: list[int | str]  # the spec's dims
    values: dict[str, int | tuple[int, ...]]  # symbol values, variadic ones as tuples

    def shape(self) -> list[int]:
        out: list[int] = []
        for d in self.dims:
            if isinstance(d, int):
                out.append(d)
            elif d.startswith("*"):
                v = self.values[d[1:]]
                assert isinstance(v, tuple)
                out.extend(v)
            elif d == "_":
                out.append(2)
            else:
                v = self.values[d]
                assert isinstance(v, int)
                out.append(v)
        return out


@st.composite
def cases(draw: st.DrawFn) -> Case:
    dtype_name = draw(st.sampled_from([*DTYPES, *FAMILY_OF]))
    dtype = DTYPES.get(dtype_name) or FAMILY_OF[dtype_name]
    n = draw(st.integers(0, 4))
    dims: list[int | str] = [
        draw(st.one_of(st.integers(1, 5), st.sampled_from([*SYMBOLS, "_"]))) for _ in range(n)
    ]
    if draw(st.booleans()):
        dims.insert(draw(st.integers(0, len(dims))), "*lead")
    values: dict[str, int | tuple[int, ...]] = {s: draw(st.integers(1, 5)) for s in SYMBOLS}
    values["lead"] = tuple(draw(st.lists(st.integers(1, 4), max_size=2)))
    text = f"{dtype_name}[{', '.join(str(d) for d in dims)}]"
    return Case(text, dtype, dims, values)


def _checked(case: Case) -> Any:
    @contract(x=case.text, y=case.text)
    def f(x: torch.Tensor, y: torch.Tensor) -> str:
        return "ok"

    return f


def _tensor(shape: list[int], dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype)


@SETTINGS
@given(cases())
def test_a_tensor_built_to_match_passes(case: Case) -> None:
    x = _tensor(case.shape(), case.dtype)
    y = _tensor(case.shape(), case.dtype)
    assert _checked(case)(x, y) == "ok"


@SETTINGS
@given(cases(), st.data())
def test_changing_one_dimension_fails_naming_that_argument(case: Case, data: st.DataObject) -> None:
    shape = case.shape()
    # Positions whose size the spec pins: literals, symbols (bound by x), variadic members.
    pinned = [i for i in range(len(shape)) if _pinned(case, i)]
    if not pinned:
        return
    i = data.draw(st.sampled_from(pinned))
    bad = list(shape)
    bad[i] += data.draw(st.integers(1, 3))
    x = _tensor(shape, case.dtype)
    y = _tensor(bad, case.dtype)
    try:
        _checked(case)(x, y)
    except ContractError as e:
        assert all(v.startswith("f: y") for v in e.violations), e.violations
    else:
        raise AssertionError(f"{case.text}: {bad} accepted where {shape} is bound")


@SETTINGS
@given(cases(), st.sampled_from([*DTYPES.values(), torch.uint8, torch.float16]))
def test_changing_the_dtype_fails_naming_that_argument(case: Case, dtype: torch.dtype) -> None:
    dtype_spec = case.text.split("[", 1)[0]
    if dtype_matches(dtype_spec, dtype):
        return
    x = _tensor(case.shape(), case.dtype)
    y = _tensor(case.shape(), dtype)
    try:
        _checked(case)(x, y)
    except ContractError as e:
        assert e.violations == (f"f: y: expected {case.text}, got {_describe(y)}",)
    else:
        raise AssertionError(f"{dtype} accepted for {case.text}")


@SETTINGS
@given(cases(), cases(), st.data())
def test_fast_path_agrees_with_the_thorough_checker(a: Case, b: Case, data: st.DataObject) -> None:
    """Whatever comes, the generated fast path and the reference checker decide alike."""

    @contract(x=a.text, y=b.text)
    def f(x: torch.Tensor, y: torch.Tensor) -> str:
        return "ok"

    shapes = [a.shape(), b.shape()]
    for s in shapes:
        if len(s) > 0 and data.draw(st.booleans()):
            s[data.draw(st.integers(0, len(s) - 1))] += 1
    x, y = _tensor(shapes[0], a.dtype), _tensor(shapes[1], b.dtype)
    checker = Checker()
    checker.check("x", x, spec(a.text))
    checker.check("y", y, spec(b.text))
    try:
        f(x, y)
        fast_ok = True
    except ContractError as e:
        fast_ok = False
        assert list(e.violations) == [f"f: {v}" for v in checker.violations]
    assert fast_ok == (not checker.violations)


def _pinned(case: Case, i: int) -> bool:
    pos = 0
    for d in case.dims:
        width = len(case.values[d[1:]]) if isinstance(d, str) and d.startswith("*") else 1  # type: ignore[arg-type]
        if pos <= i < pos + width:
            return d != "_"
        pos += width
    raise AssertionError("position out of range")


def _describe(t: torch.Tensor) -> str:
    dims = ", ".join(str(d) for d in t.shape)
    return f"{str(t.dtype).removeprefix('torch.')}[{dims}]@cpu"


# ----------------------------------------------------------------- nested specs, devices

Node = Any  # ("tensor", Case, device) | ("dict", Node) | ("keys", dict) | ("tuple", list), opt


@st.composite
def nodes(draw: st.DrawFn, values: dict[str, int | tuple[int, ...]], depth: int = 0) -> Node:
    kinds = ["tensor", "tensor", "dict", "keys", "tuple"] if depth < 2 else ["tensor"]
    kind = draw(st.sampled_from(kinds))
    optional = draw(st.booleans())
    if kind == "tensor":
        case = draw(cases())
        case.values = values
        device = draw(st.sampled_from([None, None, "same", "cpu", "meta"]))
        return ("tensor", case, device), optional
    if kind == "dict":
        return ("dict", draw(nodes(values, depth + 1))), optional
    if kind == "keys":
        keys = draw(st.lists(st.sampled_from("pqr"), min_size=1, max_size=3, unique=True))
        return ("keys", {k: draw(nodes(values, depth + 1)) for k in keys}), optional
    n = draw(st.integers(1, 3))
    return ("tuple", [draw(nodes(values, depth + 1)) for _ in range(n)]), optional


def _text(node: Node) -> Any:
    (kind, *rest), optional = node
    if kind == "tensor":
        case, device = rest
        text = case.text + (f"@{device}" if device else "")
        return spec(text + (" | None" if optional else ""))
    if kind == "dict":
        out: Any = DictSpec(values=_text(rest[0]))
    elif kind == "keys":
        out = spec({k: _text(v) for k, v in rest[0].items()})
    else:
        out = spec(tuple(_text(v) for v in rest[0]))
    return out.or_none() if optional else out


@st.composite
def values_for(draw: st.DrawFn, node: Node) -> Any:
    (kind, *rest), _optional = node
    twist = draw(st.integers(0, 9))
    if twist == 0:
        return draw(st.sampled_from([None, [1], "x", torch.zeros(2)]))
    if kind == "tensor":
        case, device = rest
        shape = case.shape()
        if twist == 1 and shape:
            shape[draw(st.integers(0, len(shape) - 1))] += 1
        dtype = torch.float64 if twist == 2 else case.dtype
        where = draw(st.sampled_from(["cpu", "meta"])) if twist == 3 else (device or "cpu")
        return torch.zeros(shape, dtype=dtype, device="cpu" if where == "same" else where)
    if kind == "dict":
        keys = draw(st.lists(st.sampled_from("abcd"), max_size=3, unique=True))
        return {k: draw(values_for(rest[0])) for k in keys}
    if kind == "keys":
        out = {k: draw(values_for(v)) for k, v in rest[0].items()}
        if twist == 4:
            out.pop(next(iter(out)))
        if twist == 5:
            out["extra"] = torch.zeros(1)
        return out
    items = [draw(values_for(v)) for v in rest[0]]
    return tuple(items[:-1]) if twist == 4 else tuple(items)


@SETTINGS
@given(st.data())
def test_fast_path_agrees_with_the_thorough_checker_on_nested_specs(data: st.DataObject) -> None:
    values: dict[str, int | tuple[int, ...]] = {s: data.draw(st.integers(1, 4)) for s in SYMBOLS}
    values["lead"] = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2)))
    a, b = data.draw(nodes(values)), data.draw(nodes(values))
    spec_a, spec_b = _text(a), _text(b)
    x, y = data.draw(values_for(a)), data.draw(values_for(b))

    @contract(x=spec_a, y=spec_b, returns=spec_a)
    def f(x: Any, y: Any) -> Any:
        return x

    checker = Checker()
    checker.check("x", x, spec_a)
    checker.check("y", y, spec_b)
    if not checker.violations:
        checker.check("return", x, spec_a)
    try:
        assert f(x, y) is x
    except ContractError as e:
        event("rejected")
        assert list(e.violations) == [f"f: {v}" for v in checker.violations]
    else:
        event("accepted")
        assert not checker.violations, checker.violations
