"""The Phase 4 catalogue accepts what the domain describes and rejects the classic mix-ups."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError

from contracts import ContractError, contract, mode
from contracts import phase4 as P


def _masks(*lead: int, num_slots: int = 3) -> dict[str, torch.Tensor]:
    return {h: torch.ones(*lead, n, dtype=torch.bool) for h, n in P.head_sizes(num_slots).items()}


def _actions(*lead: int) -> dict[str, torch.Tensor]:
    return {h: torch.zeros(*lead, dtype=torch.int64) for h in P.HEAD_NAMES}


def _log_probs(*lead: int) -> dict[str, torch.Tensor]:
    return {h: torch.zeros(*lead) for h in P.HEAD_NAMES}


class Policy:
    def __init__(self, num_slots: int) -> None:
        self.num_slots = num_slots

    @contract(
        features=P.FEATURES_ROLLOUT,
        blueprint_indices=P.BLUEPRINT_INDICES_ROLLOUT,
        masks=P.MASKS_ROLLOUT,
        hidden=P.HIDDEN_OR_NONE,
        bind=P.BIND_FROM_SELF,
        returns=P.VALUE_ROLLOUT,
    )
    def get_action(
        self, features: Any, blueprint_indices: Any, masks: Any, hidden: Any = None
    ) -> torch.Tensor:
        return torch.zeros(features.shape[0])

    @contract(
        features=P.FEATURES,
        blueprint_indices=P.BLUEPRINT_INDICES,
        actions=P.ACTIONS,
        masks=P.MASKS,
        bind=P.BIND_FROM_SELF,
        returns=P.LOG_PROBS,
    )
    def evaluate_actions(
        self, features: Any, blueprint_indices: Any, actions: Any, masks: Any
    ) -> dict[str, torch.Tensor]:
        return {h: torch.zeros(features.shape[:-1]) for h in P.HEAD_NAMES}


@pytest.mark.parametrize("num_slots", [3, 5])
def test_rollout_and_sequence_shapes_pass(num_slots: int) -> None:
    policy = Policy(num_slots)
    obs = P.obs_dim(num_slots)
    idx = torch.full((8, num_slots), P.NULL_BLUEPRINT)
    hidden = (torch.zeros(1, 8, P.LSTM_HIDDEN_DIM), torch.zeros(1, 8, P.LSTM_HIDDEN_DIM))
    with mode("full"):
        policy.get_action(torch.zeros(8, obs), idx, _masks(8, num_slots=num_slots), hidden)
        policy.evaluate_actions(
            torch.zeros(8, 5, obs),
            torch.full((8, 5, num_slots), 12),
            _actions(8, 5),
            _masks(8, 5, num_slots=num_slots),
        )


def test_catalogue_catches_the_phase4_mistakes() -> None:
    policy = Policy(3)
    features, idx = torch.zeros(8, 114), torch.zeros(8, 3, dtype=torch.int64)
    # masks passed where blueprint_indices now goes
    with pytest.raises(ContractError, match="blueprint_indices: expected int64"):
        policy.get_action(features, _masks(8), idx)
    # hidden state for another batch
    bad_hidden = (torch.zeros(1, 4, 16), torch.zeros(1, 4, 16))
    with pytest.raises(ContractError, match=r"hidden\[0\].shape\[1\]=4 but batch=8"):
        policy.get_action(features, idx, _masks(8), bad_hidden)
    # out-of-range indices, in full mode
    with (
        mode("full"),
        pytest.raises(ContractError, match=r"values in \[13, 13\] outside \[-1, 12\]"),
    ):
        policy.get_action(features, torch.full((8, 3), 13), _masks(8))
    # sequence inputs whose leading dims disagree
    with pytest.raises(ContractError, match=r"blueprint_indices.shape\[:-1\]=\(8, 4\) but lead"):
        policy.evaluate_actions(
            torch.zeros(8, 5, 114),
            torch.zeros(8, 4, 3, dtype=torch.int64),
            _actions(8, 5),
            _masks(8, 5),
        )


def test_specs_come_from_the_vocabulary() -> None:
    assert P.BLUEPRINT_INDEX_RANGE == (-1, 12)
    assert str(P.BLUEPRINT_INDICES) == "int64[*lead, num_slots] in [-1, 12]"
    assert P.ACTIONS_ROLLOUT.keys is not None and P.MASKS_SEQUENCE.keys is not None
    assert str(P.ACTIONS_ROLLOUT.keys["blueprint"]) == "int64[batch] in [0, 12]"
    assert str(P.MASKS_SEQUENCE.keys["slot"]) == "bool[batch, seq, num_slots]"
    assert P.fixed_dims(3) == {"num_slots": 3, "obs_dim": 114}


def _rollout(env: int = 4, step: int = 16) -> dict[str, Any]:
    return {
        "features": torch.zeros(env, step, 114),
        "blueprint_indices": torch.full((env, step, 3), -1),
        "actions": _actions(env, step),
        "masks": _masks(env, step),
        "log_probs": _log_probs(env, step),
        "values": torch.zeros(env, step),
        "rewards": torch.zeros(env, step),
        "valid": torch.ones(env, step, dtype=torch.bool),
        "hidden": (torch.zeros(1, env, 32), torch.zeros(1, env, 32)),
    }


def test_rollout_batch_agrees_on_env_and_step_without_copies() -> None:
    data = _rollout()
    batch = P.RolloutBatch(**data)
    assert batch.features is data["features"] and batch.masks is data["masks"]
    assert batch.dims["env"] == 4 and batch.dims["step"] == 16 and batch.dims["num_slots"] == 3
    data["masks"]["slot"] = torch.ones(4, 15, 3, dtype=torch.bool)
    data["values"] = torch.zeros(4, 16, 1)
    with pytest.raises(ValidationError) as info:
        P.RolloutBatch(**data)
    assert info.value.errors()[0]["ctx"]["error"].violations == (
        'RolloutBatch: masks["slot"].shape[1]=15 but step=16 (bound by features.shape[1])',
        "RolloutBatch: values: expected float32[env, step], got float32[4, 16, 1]@cpu",
    )


def test_the_observation_width_is_a_dimension_expression() -> None:
    assert P.OBS_DIM_EXPR == "24 + 30*num_slots"
    assert [P.obs_dim(n) for n in (1, 3, 5)] == [54, 114, 174]
    assert P.fixed_dims(4) == {"num_slots": 4, "obs_dim": 144}

    @contract(
        features=P.FEATURES_ROLLOUT,
        blueprint_indices=P.BLUEPRINT_INDICES_ROLLOUT,
        derived=P.DERIVED,
    )
    def step(features: torch.Tensor, blueprint_indices: torch.Tensor) -> None:
        return None

    for n in (1, 3, 5):
        step(torch.zeros(2, P.obs_dim(n)), torch.zeros(2, n, dtype=torch.int64))
    with pytest.raises(ContractError) as info:
        step(torch.zeros(2, 110), torch.zeros(2, 3, dtype=torch.int64))
    assert str(info.value) == (
        "step: features.shape[1]=110 but obs_dim = 24 + 30*num_slots = 114 "
        "(num_slots=3, bound by blueprint_indices.shape[1])"
    )

    class EnvRollout(P.RolloutBatch):
        contract_derived = P.DERIVED

    env, t, n = 2, 3, 3
    fields: dict[str, Any] = {
        "features": torch.zeros(env, t, P.obs_dim(n) - 1),
        "blueprint_indices": torch.zeros(env, t, n, dtype=torch.int64),
        "actions": _actions(env, t),
        "masks": _masks(env, t, num_slots=n),
        "log_probs": _log_probs(env, t),
        "values": torch.zeros(env, t),
    }
    with pytest.raises(ContractError, match=r"features.shape\[2\]=113 but obs_dim = 24 \+ 30"):
        EnvRollout(**fields)
    fields["features"] = torch.zeros(env, t, 5)  # the plain RolloutBatch keeps obs_dim free
    assert P.RolloutBatch(**fields).dims["obs_dim"] == 5
