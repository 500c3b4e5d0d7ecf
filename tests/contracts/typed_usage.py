"""Code written against the contracts aliases, checked by ``mypy --strict`` (pyproject's mypy
``files``) and run by ``test_typing.py``: type checkers see ``F32["batch n"]`` as a Tensor."""

from __future__ import annotations

from typing import Annotated, assert_type

import torch
from torch import Tensor

from contracts import F32, I64, Bool, Float, Shaped, TensorBatch, TensorField, contract
from contracts import phase4 as P
from contracts.testing import require_checks


@contract(derived=P.DERIVED)
def get_value(
    features: F32["batch obs_dim"],
    blueprint_indices: I64["batch num_slots in [-1, 12]"],
    done: Bool[" batch,"] | None = None,
) -> F32[" batch,"]:
    return features[:, 0]


@contract
def stack(parts: list[Float["b n"]], extra: tuple[Shaped[" b,"], ...] = ()) -> F32["k b n"]:
    return torch.stack([p.float() for p in parts])


@contract(returns="float32[b]")
def mixed(x: Annotated[Tensor, "float32[b, 2*n]"], n_hint: int = 0) -> Tensor:
    return x.sum(1)


class Steps(TensorBatch):
    states: Annotated[Tensor, TensorField("float32[env, step, obs_dim]")]
    contract_derived = P.DERIVED


def use() -> float:
    require_checks(get_value, stack, mixed)
    features = torch.zeros(2, P.obs_dim(3))
    value = assert_type(get_value(features, torch.zeros(2, 3, dtype=torch.int64)), Tensor)
    optional: Tensor | None = None
    value = get_value(features, torch.zeros(2, 3, dtype=torch.int64), optional)
    stacked: Tensor = stack([torch.zeros(2, 3)], (torch.zeros(2),))
    summed: Tensor = mixed(torch.zeros(2, 4))
    steps = Steps(states=torch.zeros(1, 2, P.obs_dim(3)))
    return float(value.sum() + stacked.sum() + summed.sum() + steps.states.sum())


if __name__ == "__main__":
    print(use())
