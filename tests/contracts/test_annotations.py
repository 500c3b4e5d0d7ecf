"""Specs read from annotations: the aliases, Annotated, containers, and their errors."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Annotated, Any, Optional, Union

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

from contracts import (
    F32,
    I64,
    Bool,
    ContractError,
    DictSpec,
    Float,
    ListSpec,
    Shaped,
    TensorField,
    TensorSpec,
    TupleSpec,
    contract,
    spec,
)

I = torch.int64  # noqa: E741


def _ints(*shape: int) -> Tensor:
    return torch.zeros(*shape, dtype=I)


@pytest.mark.parametrize(
    ("alias", "text", "expected"),
    [
        (F32, "batch obs_dim", "float32[batch, obs_dim]"),
        (F32, "batch, 24 + 30*num_slots", "float32[batch, 24 + 30*num_slots]"),
        (F32, "batch 24+30*num_slots", "float32[batch, 24 + 30*num_slots]"),
        (I64, "batch num_slots in [-1, 12]", "int64[batch, num_slots] in [-1, 12]"),
        (Bool, " batch,", "bool[batch]"),
        (Float, "*lead n @cpu", "float[*lead, n]@cpu"),
        (Shaped, "", "any[]"),
        (F32, "b | None", "float32[b] | None"),
    ],
)
def test_alias_spells_a_tensor_spec(alias: Any, text: str, expected: str) -> None:
    annotation = alias[text]
    assert annotation.__origin__ is Tensor  # Annotated[Tensor, spec]
    (meta,) = annotation.__metadata__
    assert isinstance(meta, TensorSpec) and str(meta) == expected


def test_an_invalid_alias_fails_where_it_is_written() -> None:
    with pytest.raises(ValidationError, match="expression ends after an operator"):
        F32["b n+"]
    with pytest.raises(TypeError, match=r"F32\[\.\.\.\] takes one string of dims"):
        F32[3]


@contract
def get_value(
    features: F32["batch obs_dim"],
    blueprint_indices: Annotated[Tensor, "int64[batch, num_slots] in [-1, 12]"],
    done: Bool[" batch,"] | None = None,
    scale: float = 1.0,
) -> F32[" batch,"]:
    return features[:, 0] * scale


def test_bare_decorator_reads_parameter_and_return_annotations() -> None:
    plan = get_value.__contract__  # type: ignore[attr-defined]
    assert [(name, str(s)) for name, _, s in plan.args] == [
        ("features", "float32[batch, obs_dim]"),
        ("blueprint_indices", "int64[batch, num_slots] in [-1, 12]"),
        ("done", "bool[batch] | None"),
    ]
    assert str(plan.returns) == "float32[batch]"
    x = torch.zeros(4, 114)
    assert get_value(x, _ints(4, 3)).shape == (4,)
    assert get_value(x, _ints(4, 3), torch.zeros(4, dtype=torch.bool), scale=2.0).shape == (4,)
    with pytest.raises(ContractError) as info:
        get_value(x, _ints(5, 3), torch.zeros(3, dtype=torch.bool))
    assert info.value.violations == (
        "get_value: blueprint_indices.shape[0]=5 but batch=4 (bound by features.shape[0])",
        "get_value: done.shape[0]=3 but batch=4 (bound by features.shape[0])",
    )


def test_containers_optional_and_keywords_mix() -> None:
    @contract(returns="float32[n]")
    def f(
        xs: list[F32["b n"]],
        pair: tuple[F32["b n"], I64[" b,"]],
        many: tuple[Bool["b n"], ...],
        named: dict[str, F32["b n"]],
        maybe: Optional[F32["b n"]] = None,  # noqa: UP045 - the typing spelling is read too
        other: Union[F32["b n"], None] = None,  # noqa: UP007
        tensor_none: Annotated[Tensor | None, "float32[b]"] = None,
        field: Annotated[Tensor, TensorField("float32[b]")] | None = None,
        untouched: int = 0,
    ) -> Tensor:
        return xs[0][0]

    plan = f.__contract__  # type: ignore[attr-defined]
    specs = {name: s for name, _, s in plan.args}
    assert isinstance(specs["xs"], ListSpec) and str(specs["xs"]) == "list[float32[b, n]]"
    assert isinstance(specs["pair"], TupleSpec) and not specs["pair"].variadic
    assert str(specs["many"]) == "tuple[bool[b, n], ...]"
    assert (
        isinstance(specs["named"], DictSpec) and str(specs["named"]) == "dict[str, float32[b, n]]"
    )
    for name in ("maybe", "other", "tensor_none", "field"):
        assert specs[name].optional, name
    assert "untouched" not in specs
    t, b = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool)
    assert f([t, t], (t, _ints(2)), (b, b), {"a": t}).shape == (3,)
    with pytest.raises(ContractError) as info:
        f([t, torch.zeros(2, 4)], (t, _ints(2)), (b, torch.zeros(3, 3, dtype=torch.bool)), {})
    assert info.value.violations == (
        "f: xs[1].shape[1]=4 but n=3 (bound by xs[0].shape[1])",
        "f: many[1].shape[0]=3 but b=2 (bound by xs[0].shape[0])",
    )


def test_a_spec_both_in_the_annotation_and_as_keyword_is_refused() -> None:
    def f(x: F32["b n"], y: Tensor) -> F32[" b,"]:
        return x[:, 0]

    with pytest.raises(TypeError, match="x has a spec both in its annotation and as a keyword"):
        contract(x="float32[b, n]")(f)
    with pytest.raises(TypeError, match="returns has a spec both"):
        contract(returns="float32[b]")(f)
    checked = contract(y="float32[b, n]")(f)  # other arguments may still take keywords
    with pytest.raises(ContractError, match=r"y.shape\[1\]=4 but n=3"):
        checked(torch.zeros(2, 3), torch.zeros(2, 4))


def test_unsupported_constructs_say_what_is_supported() -> None:
    def seq(x: list[int] | tuple[F32[" b,"], F32[" c,"]] | None) -> None: ...

    def union(x: Union[F32["b n"], I64["b n"]]) -> None: ...  # noqa: UP007

    def partial(x: tuple[F32["b n"], int]) -> None: ...

    def two(x: Annotated[Tensor, "float32[b]", "int64[b]"]) -> None: ...

    for fn, fragment in [
        (seq, "is not supported around a spec; supported: Annotated[Tensor, 'spec']"),
        (union, "Union[...] is not supported around a spec"),
        (partial, "tuple item(s) 1 carry no spec"),
        (two, "holds 2 specs; give one"),
    ]:
        with pytest.raises(TypeError) as info:
            contract(fn)
        assert fragment in str(info.value)


def test_unresolvable_annotations() -> None:
    def later(x: Any, y: F32[" b,"]) -> None: ...

    # Postponed annotations are evaluated at decoration. A name that is not defined yet is an
    # error when the annotation could hold a spec, and is left alone when it cannot.
    later.__annotations__["x"] = 'Missing["float32[b]"]'
    with pytest.raises(TypeError, match="x: cannot read the annotation 'Missing"):
        contract(later)
    later.__annotations__["x"] = 'I64[" b,"] | MissingToo'
    with pytest.raises(TypeError, match="x: cannot read the annotation"):
        contract(later)
    for unresolved in ("SomeClass", "Sequence[OnlyForTypeCheckers]", "dict[str, Later]"):
        later.__annotations__.update({"x": unresolved, "y": 'F32[" b,"]'})
        assert [a[0] for a in contract(later).__contract__.args] == ["y"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    ["float32[b, n]", "int64[*lead, 3] in [-1, 12]", "bool[b] | None", "float[_, 2*n]@cpu"],
)
def test_annotation_and_keyword_forms_build_the_same_plan(text: str) -> None:
    def by_annotation(x: Tensor, n_: int = 0) -> None: ...

    # Set as an object: a postponed annotation could not see the local ``text``.
    by_annotation.__annotations__["x"] = Annotated[Tensor, text]

    def by_keyword(x: Tensor, n_: int = 0) -> None: ...

    extra = {"fixed": {"n": 2}} if "n]" in text else {}
    a = contract(**extra)(by_annotation).__contract__  # type: ignore[call-overload]
    k = contract(x=text, **extra)(by_keyword).__contract__  # type: ignore[arg-type]
    assert [(n, i, str(s)) for n, i, s in a.args] == [(n, i, str(s)) for n, i, s in k.args]


def test_spec_models_and_bad_spec_strings_in_annotations() -> None:
    def f(x: Annotated[Tensor, spec("float32[n]")], y: Annotated[Tensor, "float32[n"]) -> None: ...

    with pytest.raises(ValidationError, match="invalid spec 'float32\\[n'"):
        contract(f)


def test_deep_annotations_fail_cleanly() -> None:
    deep: Any = F32["b"]
    for _ in range(100):
        deep = list[deep]

    def f(x: Any) -> None: ...

    f.__annotations__["x"] = deep
    with pytest.raises(TypeError, match="nested more than 32 deep"):
        contract(f)


def test_typed_usage_module_runs() -> None:
    path = Path(__file__).with_name("typed_usage.py")
    namespace = runpy.run_path(str(path))
    assert namespace["use"]() == 0.0
