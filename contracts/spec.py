"""Tensor specs as pydantic models, and the compact string form they are usually written in.

Grammar of the string form (whitespace is free)::

    spec    := atom ("|" "None")?  |  "None" "|" atom
    atom    := tensor | "dict[str, " spec "]" | "list[" spec "]" | "tuple[" spec ", ...]"
             | "tuple[" spec ("," spec)* "]"
    tensor  := DTYPE "[" (dim ("," dim)*)? "]" ("@" DEVICE)? ("in" "[" NUM "," NUM "]")?
    dim     := expr | "_" | "*" name | "*" | "..."
    expr    := INT | name | expr ("+" | "-" | "*" | "//") expr | "(" expr ")"

``DTYPE`` is an exact torch dtype (``float32``, ``int64``, ``bool`` ...) or a family (``float``,
``integer``, ``signed``, ``complex``, ``any``). A ``name`` dim is a symbol bound by its first
occurrence in a call and compared everywhere else; ``_`` is one dimension of any size; ``*name``
binds any number of leading/trailing dimensions as a tuple; ``*`` and ``...`` are any number of
dimensions. An expression such as ``24 + 30*num_slots`` is checked against the symbols it uses
(see ``contracts.dims``); ``list[spec]`` and ``tuple[spec, ...]`` hold any number of items.
``DEVICE`` is ``cpu``, ``cuda``, ``cuda:1``, ... or ``same`` (the same device as the other
``@same`` tensors of the call). ``in [lo, hi]`` is an inclusive value range, checked only
in ``full`` mode because it reads the values (a device sync). Per-key dicts and tuples can also
be written as Python ``dict``/``tuple`` literals of specs, see :func:`spec`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Annotated, Final, Literal, Self, TypeAlias, Union

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.dims import MAX_DEPTH, parse_dim

__all__ = [
    "SUPPORTED",
    "DictSpec",
    "ListSpec",
    "Spec",
    "SpecLike",
    "TensorSpec",
    "TupleSpec",
    "dtype_matches",
    "spec",
]


def _all_dtypes() -> dict[str, torch.dtype]:
    found: dict[str, torch.dtype] = {}
    for value in vars(torch).values():
        if isinstance(value, torch.dtype):
            found[str(value).removeprefix("torch.")] = value
    return found


#: Exact dtypes by canonical name (``float32``, never the alias ``float``).
DTYPES: Final[dict[str, torch.dtype]] = _all_dtypes()
_INT_NAME = re.compile(r"u?int\d+")
#: Dtype families: a spec naming one accepts any member.
FAMILIES: Final[dict[str, frozenset[torch.dtype]]] = {
    "float": frozenset(d for d in DTYPES.values() if d.is_floating_point),
    "complex": frozenset(d for d in DTYPES.values() if d.is_complex),
    "integer": frozenset(d for n, d in DTYPES.items() if _INT_NAME.fullmatch(n)),
    "signed": frozenset(d for n, d in DTYPES.items() if n.startswith("int")),
    "any": frozenset(DTYPES.values()),
}

_DIM_STR = re.compile(r"\*?[A-Za-z_][A-Za-z0-9_]*|\*|\.\.\.")
#: What a spec can be, for messages about what it cannot.
SUPPORTED: Final = (
    "a spec is dtype[dims] (an exact dtype such as float32, int64, bool, or a family: "
    "float, integer, signed, complex, any), dict[str, spec], list[spec], tuple[spec, ...], "
    "tuple[spec, spec, ...] or spec | None"
)
_SPECIAL_DEVICES: Final = frozenset({"same"})


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_matches(dtype_spec: str, dtype: torch.dtype) -> bool:
    """Whether ``dtype`` is ``dtype_spec`` (an exact name or a family)."""
    family = FAMILIES.get(dtype_spec)
    if family is not None:
        return dtype in family
    return DTYPES.get(dtype_spec) is dtype


def _fmt_num(x: float) -> str:
    if isinstance(x, int) or (math.isfinite(x) and x == int(x) and abs(x) < 2**53):
        return str(int(x))
    return repr(x)


def is_variadic(dim: int | str) -> bool:
    return isinstance(dim, str) and (dim.startswith("*") or dim == "...")


class _SpecBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: ``None`` is accepted in place of the value.
    optional: bool = False

    def or_none(self) -> Self:
        """The same spec, also accepting ``None``."""
        return self.model_copy(update={"optional": True})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def _suffix(self) -> str:
        return " | None" if self.optional else ""


class TensorSpec(_SpecBase):
    """One tensor: dtype (exact or family), shape dims, optional device and value range."""

    kind: Literal["tensor"] = "tensor"
    dtype: str
    shape: tuple[int | str, ...]
    device: str | None = None
    low: int | float | None = None
    high: int | float | None = None

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        if v not in DTYPES and v not in FAMILIES:
            raise ValueError(
                f"unknown dtype {v!r}; use an exact torch dtype such as float32, int64, bool, "
                f"or a family: {', '.join(sorted(FAMILIES))}"
            )
        return v

    @field_validator("shape")
    @classmethod
    def _valid_dims(cls, dims: tuple[int | str, ...]) -> tuple[int | str, ...]:
        out: list[int | str] = []
        for d in dims:
            if isinstance(d, int):
                if d < 0:
                    raise ValueError(f"dimension {d} is negative")
            elif not _DIM_STR.fullmatch(d):
                try:
                    d = parse_dim(d)
                except ValueError as e:
                    raise ValueError(
                        f"dimension {d!r} is not an int, a name, '_', '*name', '*', '...' or "
                        f"an expression: {e}"
                    ) from None
                if isinstance(d, int) and d < 0:
                    raise ValueError(f"dimension {d} is negative")
            out.append(d)
        dims = tuple(out)
        if sum(1 for d in dims if is_variadic(d)) > 1:
            raise ValueError("at most one variadic dimension ('*name', '*' or '...') per tensor")
        return dims

    @field_validator("device")
    @classmethod
    def _valid_device(cls, v: str | None) -> str | None:
        if v is not None and v not in _SPECIAL_DEVICES:
            try:
                torch.device(v)
            except RuntimeError as e:
                raise ValueError(f"invalid device {v!r}: {e}") from None
        return v

    @model_validator(mode="after")
    def _valid_bounds(self) -> TensorSpec:
        if (self.low is None) != (self.high is None):
            raise ValueError("give both bounds of a range (use -inf or inf for an open side)")
        if self.low is not None and self.high is not None:
            if math.isnan(self.low) or math.isnan(self.high):
                raise ValueError("range bounds must not be NaN")
            if self.low > self.high:
                raise ValueError(f"empty range [{self.low}, {self.high}]")
        return self

    @classmethod
    def parse(cls, text: str) -> TensorSpec:
        """Parse ``"int64[batch, num_slots] in [-1, 12]"``; a bad string raises ValidationError."""
        parsed = spec(text)
        if not isinstance(parsed, TensorSpec):
            raise TypeError(f"{text!r} is a {parsed.kind} spec, not a tensor spec")
        return parsed

    @property
    def has_range(self) -> bool:
        return self.low is not None

    def signature(self) -> str:
        """``dtype[dims]@device``: what error messages show as expected (no range)."""
        dims = ", ".join(str(d) for d in self.shape)
        dev = f"@{self.device}" if self.device is not None else ""
        return f"{self.dtype}[{dims}]{dev}"

    def __str__(self) -> str:
        rng = ""
        if self.low is not None and self.high is not None:
            rng = f" in [{_fmt_num(self.low)}, {_fmt_num(self.high)}]"
        return f"{self.signature()}{rng}{self._suffix()}"


class DictSpec(_SpecBase):
    """A ``dict[str, Tensor]``: either the same spec for every value, or one spec per key.

    With per-key specs, exactly those keys must be present.
    """

    kind: Literal["dict"] = "dict"
    values: Spec | None = None
    keys: dict[str, Spec] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> DictSpec:
        if (self.values is None) == (self.keys is None):
            raise ValueError("a dict spec has either 'values' (one spec for all) or 'keys'")
        return self

    def signature(self) -> str:
        if self.values is not None:
            return f"dict[str, {self.values}]"
        assert self.keys is not None
        inner = ", ".join(f"{k!r}: {v}" for k, v in self.keys.items())
        return "{" + inner + "}"

    def __str__(self) -> str:
        return self.signature() + self._suffix()


class TupleSpec(_SpecBase):
    """A tuple of specs: fixed length, such as an LSTM's ``(h, c)``, or with ``variadic``
    any number of items of its one spec (``tuple[float32[n], ...]``)."""

    kind: Literal["tuple"] = "tuple"
    items: tuple[Spec, ...] = Field(min_length=1)
    variadic: bool = False

    @model_validator(mode="after")
    def _one_variadic_item(self) -> TupleSpec:
        if self.variadic and len(self.items) != 1:
            raise ValueError("a variadic tuple spec has exactly one item spec")
        return self

    def signature(self) -> str:
        if self.variadic:
            return f"tuple[{self.items[0]}, ...]"
        return "tuple[" + ", ".join(str(i) for i in self.items) + "]"

    def __str__(self) -> str:
        return self.signature() + self._suffix()


class ListSpec(_SpecBase):
    """A ``list`` of any length whose items all match one spec."""

    kind: Literal["list"] = "list"
    item: Spec

    def signature(self) -> str:
        return f"list[{self.item}]"

    def __str__(self) -> str:
        return self.signature() + self._suffix()


Spec: TypeAlias = Annotated[
    Union[TensorSpec, DictSpec, TupleSpec, ListSpec],  # noqa: UP007
    Field(discriminator="kind"),
]
#: Anything :func:`spec` turns into a spec: a spec, a spec string, a dict of specs per key, or
#: a tuple of specs.
SpecLike: TypeAlias = Union[  # noqa: UP007
    TensorSpec,
    DictSpec,
    TupleSpec,
    ListSpec,
    str,
    Mapping[str, "SpecLike"],
    tuple["SpecLike", ...],
]
SPEC_TYPES: Final = (TensorSpec, DictSpec, TupleSpec, ListSpec)

DictSpec.model_rebuild()
TupleSpec.model_rebuild()
ListSpec.model_rebuild()


# ---------------------------------------------------------------------------------- parsing

_TOKEN = re.compile(
    r"\s*(?:(?P<num>inf\b|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?::\d+)?)"
    r"|(?P<op>\.\.\.|//|[\[\],|@*+\-()]))"
)
_CONTAINERS: Final = {"dict": "dict", "Dict": "dict", "list": "list", "List": "list"}
_TUPLES: Final = frozenset({"tuple", "Tuple"})


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if m is None or m.end() == pos:
                raise ValueError(f"unexpected character {stripped[pos:].lstrip()[:1]!r}")
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0
        self.depth = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _where(self) -> str:
        tok = self._peek()
        return "at end" if tok is None else f"at {tok[1]!r} (column {tok[2] + 1})"

    def _take(self, value: str | None = None, kind: str | None = None) -> str:
        tok = self._peek()
        if tok is None or (value is not None and tok[1] != value) or (kind and tok[0] != kind):
            want = repr(value) if value is not None else (kind or "a token")
            raise ValueError(f"expected {want} {self._where()}")
        self.i += 1
        return tok[1]

    def _accept(self, value: str) -> bool:
        tok = self._peek()
        if tok is not None and tok[1] == value and tok[0] != "num":
            self.i += 1
            return True
        return False

    def parse(self) -> dict[str, object]:
        out = self._spec()
        if self._peek() is not None:
            raise ValueError(f"unexpected {self._where()}")
        return out

    def _spec(self) -> dict[str, object]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"specs nested more than {MAX_DEPTH} deep")
        if self._accept("None"):
            self._take("|")
            atom = self._atom()
            atom["optional"] = True
        else:
            atom = self._atom()
            if self._accept("|"):
                self._take("None")
                atom["optional"] = True
        self.depth -= 1
        return atom

    def _atom(self) -> dict[str, object]:
        head = self._take(kind="name")
        container = _CONTAINERS.get(head)
        if container == "dict":
            self._take("[")
            self._take("str")
            self._take(",")
            values = self._spec()
            self._take("]")
            return {"kind": "dict", "values": values}
        if container == "list":
            self._take("[")
            item = self._spec()
            if not self._accept("]"):
                raise ValueError(f"list[...] takes one spec; expected ']' {self._where()}")
            return {"kind": "list", "item": item}
        if head in _TUPLES:
            self._take("[")
            items = [self._spec()]
            variadic = False
            while self._accept(","):
                if self._accept("..."):
                    if len(items) != 1:
                        raise ValueError("'...' in a tuple follows its only item: tuple[spec, ...]")
                    variadic = True
                    break
                items.append(self._spec())
            self._take("]")
            return {"kind": "tuple", "items": items, "variadic": variadic}
        if head not in DTYPES and head not in FAMILIES:
            raise ValueError(f"unknown dtype {head!r}; {SUPPORTED}")
        return self._tensor(head)

    def _tensor(self, dtype: str) -> dict[str, object]:
        self._take("[")
        dims: list[int | str] = []
        if not self._accept("]"):
            while True:
                dims.append(self._dim())
                if self._accept("]"):
                    break
                if not self._accept(","):
                    raise ValueError(f"expected ',' or ']' {self._where()}")
        out: dict[str, object] = {"kind": "tensor", "dtype": dtype, "shape": dims}
        if self._accept("@"):
            out["device"] = self._take(kind="name")
        if self._accept("in"):
            self._take("[")
            out["low"] = self._num()
            self._take(",")
            out["high"] = self._num()
            self._take("]")
        return out

    def _dim(self) -> int | str:
        tok = self._peek()
        if tok is None:
            raise ValueError(f"expected a dimension {self._where()}")
        kind, value, _ = tok
        if value == "*":
            self.i += 1
            nxt = self._peek()
            if nxt is not None and nxt[0] == "name":
                self.i += 1
                return "*" + nxt[1]
            return "*"
        if value == "...":
            self.i += 1
            return "..."
        if kind == "num" and not value.isdigit():
            raise ValueError(f"dimension {value!r} is not a non-negative integer")
        # An int, a symbol or an expression: every token up to the next ',' or ']' outside
        # parentheses, handed to the expression parser.
        start, parens, parts = self.i, 0, []
        while (tok := self._peek()) is not None:
            if tok[1] == "]" or (tok[1] == "," and parens == 0):
                break
            if tok[1] == "[":
                raise ValueError(
                    f"a dimension cannot be subscripted {self._where()}: nest specs only in "
                    f"dict[...], list[...] or tuple[...]; {SUPPORTED}"
                )
            parens += {"(": 1, ")": -1}.get(tok[1], 0)
            if parens > MAX_DEPTH:
                raise ValueError(f"expression nested more than {MAX_DEPTH} deep")
            parts.append(tok[1])
            self.i += 1
        if not parts:
            raise ValueError(f"expected a dimension {self._where()}")
        if len(parts) == 1 and self.tokens[start][0] == "name":
            return parts[0]
        return parse_dim(" ".join(parts))

    def _num(self) -> int | float:
        sign = "-" if self._accept("-") else ""
        if not sign:
            self._accept("+")
        value = sign + self._take(kind="num")
        try:
            return int(value)
        except ValueError:
            return float(value)


def _parse_string(text: str) -> dict[str, object]:
    try:
        return _Parser(text).parse()
    except ValueError as e:
        shown = text if len(text) <= 120 else text[:100] + "..."
        raise ValueError(f"invalid spec {shown!r}: {e}") from None


def _to_data(value: object, depth: int = 0) -> object:
    """Turn a spec-like into plain data that ``_SpecHolder`` validates."""
    if depth > MAX_DEPTH:
        raise ValueError(f"specs nested more than {MAX_DEPTH} deep")
    if isinstance(value, SPEC_TYPES):
        return value
    if isinstance(value, str):
        return _parse_string(value)
    if isinstance(value, Mapping):
        return {"kind": "dict", "keys": {k: _to_data(v, depth + 1) for k, v in value.items()}}
    if isinstance(value, tuple):
        return {"kind": "tuple", "items": [_to_data(v, depth + 1) for v in value]}
    return value


class _SpecHolder(BaseModel):
    """Validates any spec-like, so that a bad one fails with a pydantic ValidationError."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="spec")
    spec: Spec

    @field_validator("spec", mode="before")
    @classmethod
    def _from_spec_like(cls, value: object) -> object:
        return _to_data(value)


@functools.lru_cache(maxsize=4096)
def _spec_from_string(text: str) -> Spec:
    return _SpecHolder(spec=text).spec  # type: ignore[arg-type]  # parsed by the validator


def spec(value: SpecLike) -> Spec:
    """Turn a spec-like into a spec; an invalid one raises ``pydantic.ValidationError``.

    ``spec("float32[batch, obs_dim]")``, ``spec({"op": "bool[batch, 6]", ...})`` (per-key
    dict), ``spec(("float[l, b, h]", "float[l, b, h]"))`` (tuple), or a spec itself.
    """
    if isinstance(value, SPEC_TYPES):
        return value
    if isinstance(value, str):
        return _spec_from_string(value)
    return _SpecHolder(spec=value).spec  # type: ignore[arg-type]  # converted by the validator
