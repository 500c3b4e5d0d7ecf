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


def test_a_violation_is_a_contract_error_that_is_also_a_validation_error() -> None:
    data = _good()
    data["states"] = torch.zeros(4, 15, 114)
    for build in (lambda: Steps(**data), lambda: Steps.model_validate(data)):  # type: ignore[arg-type]
        with pytest.raises(ContractError) as info:
            build()
        error = info.value
        assert isinstance(error, ValidationError) and isinstance(error, ValueError)
        assert str(error) == 'Steps: masks["op"].shape[1]=16 but step=15 (bound by states.shape[1])'
        assert error.function == "Steps" and error.violations == (str(error),)
        inner = error.errors()[0]["ctx"]["error"]  # pydantic's view: one value_error
        assert isinstance(inner, ContractError) and inner.violations == error.violations
    with pytest.raises(ValidationError) as plain:  # pydantic's own failures stay pydantic's
        Steps(states=torch.zeros(1, 1, 1))  # type: ignore[call-arg]
    assert not isinstance(plain.value, ContractError)

    class Outer(TensorBatch):  # nested in another model: inside that model's error
        steps: Steps

    with pytest.raises(ValidationError, match="but step=15"):
        Outer(steps=data)  # type: ignore[arg-type]


def test_derived_symbols_relate_fields() -> None:
    class Obs(TensorBatch):
        contract_derived: ClassVar[dict[str, str]] = {"obs_dim": "24 + 30*num_slots"}
        features: Annotated[Tensor, TensorField("float32[env, obs_dim]")]
        blueprint_indices: Annotated[Tensor, TensorField("int64[env, num_slots]")]

    idx = torch.zeros(2, 3, dtype=torch.int64)
    assert Obs(features=torch.zeros(2, 114), blueprint_indices=idx).dims["obs_dim"] == 114
    with pytest.raises(ContractError) as info:
        Obs(features=torch.zeros(2, 110), blueprint_indices=idx)
    assert str(info.value) == (
        "Obs: features.shape[1]=110 but obs_dim = 24 + 30*num_slots = 114 "
        "(num_slots=3, bound by blueprint_indices.shape[1])"
    )
    with pytest.raises(TypeError, match="cycle: a -> b -> a"):

        class Cyclic(TensorBatch):
            contract_derived: ClassVar[dict[str, str]] = {"a": "b + 1", "b": "a - 1"}
            x: Annotated[Tensor, TensorField("float32[a]")]
