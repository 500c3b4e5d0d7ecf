"""TensorBatch: fields validated together with shared symbols, never converted or copied."""

from __future__ import annotations

from typing import Annotated, ClassVar

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

from contracts import ContractError, TensorBatch, TensorField, mode


class Steps(TensorBatch):
    states: Annotated[Tensor, TensorField("float32[env, step, obs_dim]")]
    masks: Annotated[dict[str, Tensor], TensorField("dict[str, bool[env, step, *]]")]
    hidden: Annotated[
        tuple[Tensor, Tensor] | None,
        TensorField("tuple[float32[l, env, h], float32[l, env, h]] | None"),
    ] = None
    note: str = "not a tensor field"


def _good() -> dict[str, object]:
    return {
        "states": torch.zeros(4, 16, 114),
        "masks": {"op": torch.ones(4, 16, 6, dtype=torch.bool)},
        "hidden": (torch.zeros(1, 4, 8), torch.zeros(1, 4, 8)),
    }


def test_valid_batch_keeps_the_very_objects() -> None:
    data = _good()
    batch = Steps(**data)  # type: ignore[arg-type]
    assert batch.states is data["states"]
    assert batch.masks is data["masks"]
    assert batch.hidden is data["hidden"]
    states = data["states"]
    assert isinstance(states, Tensor) and batch.states.data_ptr() == states.data_ptr()
    assert batch.dims == {"env": 4, "step": 16, "obs_dim": 114, "l": 1, "h": 8}
    assert Steps.model_validate(data).masks is data["masks"]
    assert [name for name, _ in Steps.contract_fields] == ["states", "masks", "hidden"]


def test_fields_must_agree_on_shared_symbols() -> None:
    data = _good()
    data["masks"] = {"op": torch.ones(4, 15, 6, dtype=torch.bool)}
    data["hidden"] = (torch.zeros(1, 4, 8), torch.zeros(1, 3, 8))
    with pytest.raises(ValidationError) as info:
        Steps(**data)  # type: ignore[arg-type]
    error = info.value.errors()[0]["ctx"]["error"]
    assert isinstance(error, ContractError)
    assert error.violations == (
        'Steps: masks["op"].shape[1]=15 but step=16 (bound by states.shape[1])',
        "Steps: hidden[1].shape[1]=3 but env=4 (bound by states.shape[0])",
    )
    assert "tensor(" not in str(info.value)  # inputs are never printed


def test_wrong_kinds_are_contract_violations_too() -> None:
    data = _good()
    data["states"] = [[0.0]]
    data["masks"] = torch.ones(4, 16, 6, dtype=torch.bool)
    with pytest.raises(ValidationError) as info:
        Steps(**data)  # type: ignore[arg-type]
    assert info.value.errors()[0]["ctx"]["error"].violations == (
        "Steps: states: expected float32[env, step, obs_dim], got list",
        "Steps: masks: expected dict[str, bool[env, step, *]], got bool[4, 16, 6]@cpu",
    )


def test_fixed_symbols_and_missing_fields() -> None:
    class Fixed(TensorBatch):
        contract_fixed: ClassVar[dict[str, int]] = {"obs_dim": 114}
        states: Annotated[Tensor, TensorField("float32[env, obs_dim]")]

    Fixed(states=torch.zeros(2, 114))
    with pytest.raises(ValidationError, match=r"states.shape\[1\]=5 but obs_dim=114 \(fixed\)"):
        Fixed(states=torch.zeros(2, 5))
    with pytest.raises(ValidationError, match="Field required"):
        Fixed()  # type: ignore[call-arg]


def test_off_skips_tensor_checks_and_full_adds_ranges() -> None:
    class Ranged(TensorBatch):
        idx: Annotated[Tensor, TensorField("int64[env] in [-1, 12]")]

    Ranged(idx=torch.tensor([20]))
    with mode("full"), pytest.raises(ValidationError, match=r"values in \[20, 20\] outside"):
        Ranged(idx=torch.tensor([20]))
    with mode("off"):
        assert Ranged(idx="not checked").dims == {}  # type: ignore[arg-type]


def test_tensor_field_given_as_a_default_value_is_refused_at_class_definition() -> None:
    with pytest.raises(TypeError, match=r"Misused\.states: write `states: Annotated\[Tensor"):

        class Misused(TensorBatch):
            states: Tensor = TensorField("float32[env, step, 114]")
