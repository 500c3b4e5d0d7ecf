"""Inputs a hostile user sends: unreadable tensors in range checks, absurdly deep specs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError

from contracts import ContractError, check, contract, mode, spec


def _ranged(x: torch.Tensor) -> torch.Tensor:
    return x


def test_range_checks_skip_meta_tensors() -> None:
    checked = contract(x="float[n] in [0, 1]")(_ranged)
    meta = torch.empty(3, device="meta")
    with mode("full"):
        assert checked(meta) is meta  # no values to read: shape and dtype still checked
        with pytest.raises(ContractError, match="expected float"):
            checked(torch.empty(3, dtype=torch.int64, device="meta"))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_range_checks_read_sparse_values_and_implicit_zeros(layout: str) -> None:
    checked = contract(x="float32[r, c] in [1, 5]")(_ranged)
    positive = contract(x="float32[r, c] in [-1, 5]")(_ranged)
    dense = torch.tensor([[0.0, 2.0], [7.0, 0.0]])
    sparse = dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()
    with mode("full"):
        with pytest.raises(ContractError) as info:
            checked(sparse)
        assert str(info.value) == "_ranged: x: values in [0, 7] outside [1, 5]"  # 0 not stored
        with pytest.raises(ContractError, match=r"values in \[0, 7\] outside \[-1, 5\]"):
            positive(sparse)
        full = torch.ones(2, 2).to_sparse()
        assert positive(full) is full


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_range_checks_read_float8(dtype: torch.dtype) -> None:
    checked = contract(x="float[n] in [0, 1]")(_ranged)
    with mode("full"):
        ok = torch.tensor([0.5, 1.0]).to(dtype)
        assert checked(ok) is ok
        with pytest.raises(ContractError, match=r"values in \[0.5, 2\] outside \[0, 1\]"):
            checked(torch.tensor([0.5, 2.0]).to(dtype))


def test_a_tensor_whose_values_cannot_be_read_is_a_contract_error_not_a_torch_error() -> None:
    class Opaque(torch.Tensor):
        @classmethod
        def __torch_function__(
            cls, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            if func is torch.aminmax:
                raise NotImplementedError("no values here")
            return super().__torch_function__(func, types, args, kwargs or {})

    x = torch.zeros(3).as_subclass(Opaque)
    with mode("full"), pytest.raises(ContractError) as info:
        check("read", x=(x, "float32[n] in [0, 1]"))
    assert str(info.value).startswith("read: x: cannot read its values to check the range [0, 1]")
    assert "no values here" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "list[" * 3000 + "float32[n]" + "]" * 3000,
        "tuple[" * 3000 + "float32[n]" + "]" * 3000,
        "dict[str, " * 3000 + "float32[n]" + "]" * 3000,
        "float32[" + "(" * 3000 + "n" + ")" * 3000 + "]",
        "float32[" + "[" * 3000,
    ],
)
def test_deep_spec_strings_are_validation_errors(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec(text)
    assert len(str(info.value)) < 2000  # the message does not repeat the 3000-deep input


def test_deep_spec_literals_are_validation_errors() -> None:
    deep: Any = "float32[n]"
    for _ in range(3000):
        deep = {"k": deep}
    with pytest.raises(ValidationError, match="nested more than 32 deep"):
        spec(deep)
    deep = "float32[n]"
    for _ in range(3000):
        deep = (deep,)
    with pytest.raises(ValidationError, match="nested more than 32 deep"):
        spec(deep)
    with pytest.raises(ValidationError):
        contract(x="list[" * 3000 + "float32[n]" + "]" * 3000)(_ranged)


def test_nesting_within_the_limit_still_works() -> None:
    nested = spec("list[" * 30 + "float32[n]" + "]" * 30)
    value: Any = torch.zeros(2)
    for _ in range(30):
        value = [value]
    check("deep", x=(value, nested))
