"""Spec models and their string form: round trips, families, and errors at definition."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from contracts import DictSpec, TensorSpec, TupleSpec, spec
from contracts.spec import dtype_matches


@pytest.mark.parametrize(
    "text",
    [
        "int64[batch, num_slots] in [-1, 12]",
        "float32[*lead, obs_dim]",
        "float32[*lead, obs_dim]@cuda:0",
        "bool[_, ..., 3]@same",
        "float[]",
        "float32[batch] in [0, 1.5]",
        "float32[batch] in [-inf, 0]",
        "dict[str, bool[batch, *]]",
        "tuple[float[l, b, h], float[l, b, h]] | None",
        "float32[batch] | None",
        "float32[info, inflow, index] in [-inf, inf]",
    ],
)
def test_string_form_round_trips(text: str) -> None:
    parsed = spec(text)
    assert str(parsed) == text
    assert spec(str(parsed)) == parsed


def test_parse_gives_the_fields() -> None:
    s = TensorSpec.parse("int64[batch, num_slots, 3] @ cpu in [-1, 12]")
    assert (s.dtype, s.shape, s.device, s.low, s.high) == (
        "int64",
        ("batch", "num_slots", 3),
        "cpu",
        -1,
        12,
    )
    assert s.signature() == "int64[batch, num_slots, 3]@cpu"
    assert repr(s) == "TensorSpec('int64[batch, num_slots, 3]@cpu in [-1, 12]')"


def test_none_prefix_and_or_none_are_optional() -> None:
    assert spec("None | float32[b]") == spec("float32[b] | None") == spec("float32[b]").or_none()
    assert spec("float32[b] | None").optional


def test_python_dict_and_tuple_forms() -> None:
    masks = spec({"op": "bool[batch, 6]", "slot": "bool[batch, num_slots]"})
    assert isinstance(masks, DictSpec) and masks.keys is not None
    assert list(masks.keys) == ["op", "slot"]
    hidden = spec(("float32[l, b, h]", "float32[l, b, h]"))
    assert isinstance(hidden, TupleSpec) and len(hidden.items) == 2
    assert spec(hidden) is hidden


def test_model_fields_construct_directly() -> None:
    s = TensorSpec(dtype="bool", shape=("batch", 6))
    assert str(s) == "bool[batch, 6]"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("int64[batch", "expected ',' or ']' at end"),
        ("int[3]", "unknown dtype 'int'"),
        ("float32[batch, 0.5]", "dimension '0.5' is not a non-negative integer"),
        ("float32[*a, *b]", "at most one variadic dimension"),
        ("float32[3] in [2, 1]", "empty range [2, 1]"),
        ("float32[3]@gpu", "invalid device 'gpu'"),
        ("float32[3] extra", "unexpected at 'extra'"),
        ("dict[int, float32[3]]", "expected 'str'"),
        ("float32[3] | float32[4]", "expected 'None'"),
        ("float32[#]", "unexpected character '#'"),
    ],
)
def test_invalid_specs_fail_at_definition_with_a_pydantic_error(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec(text)
    assert fragment in str(info.value)


def test_invalid_model_fields_fail_too() -> None:
    with pytest.raises(ValidationError, match="dimension -1 is negative"):
        TensorSpec(dtype="float32", shape=(-1,))
    with pytest.raises(ValidationError, match="give both bounds"):
        TensorSpec(dtype="float32", shape=(), low=0)
    with pytest.raises(ValidationError, match="either 'values'"):
        DictSpec()
    with pytest.raises(TypeError, match="not a tensor spec"):
        TensorSpec.parse("dict[str, float32[3]]")


@pytest.mark.parametrize(
    ("family", "accepted", "rejected"),
    [
        ("float", [torch.float16, torch.bfloat16, torch.float32, torch.float64], [torch.int64]),
        ("integer", [torch.uint8, torch.int8, torch.int32, torch.int64], [torch.bool]),
        ("signed", [torch.int8, torch.int64], [torch.uint8, torch.float32, torch.bool]),
        ("complex", [torch.complex64], [torch.float32]),
        ("any", [torch.bool, torch.float32, torch.int64], []),
        ("int64", [torch.int64], [torch.int32, torch.float64]),
        ("bool", [torch.bool], [torch.uint8]),
    ],
)
def test_dtype_families(
    family: str, accepted: list[torch.dtype], rejected: list[torch.dtype]
) -> None:
    assert all(dtype_matches(family, d) for d in accepted)
    assert not any(dtype_matches(family, d) for d in rejected)
