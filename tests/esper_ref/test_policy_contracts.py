"""Invalid input to the policy raises contracts.ContractError naming what is wrong."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import contracts
from contracts import ContractError
from contracts import phase4 as P
from contracts.phase4 import HEAD_NAMES, NUM_BLUEPRINTS, head_sizes
from esper_ref.bundle import LSTMPolicyBundle
from esper_ref.network import FactoredRecurrentActorCritic

STATE_DIM = 10
SLOTS = 3
SIZES = head_sizes(SLOTS)
B = 4


@pytest.fixture(scope="module")
def bundle() -> LSTMPolicyBundle:
    torch.manual_seed(0)
    return LSTMPolicyBundle(
        STATE_DIM, SLOTS, feature_dim=16, lstm_hidden_dim=12, head_hidden_dim=8, value_hidden_dim=8
    )


def good(*lead: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    features = torch.randn(*lead, STATE_DIM)
    idx = torch.randint(-1, NUM_BLUEPRINTS, (*lead, SLOTS))
    masks = {n: torch.ones(*lead, s, dtype=torch.bool) for n, s in SIZES.items()}
    return features, idx, masks


def zeros_actions(*lead: int) -> dict[str, torch.Tensor]:
    return {n: torch.zeros(*lead, dtype=torch.long) for n in HEAD_NAMES}


def raises(call: Callable[[], object], *fragments: str) -> str:
    with pytest.raises(ContractError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_float_indices(bundle: LSTMPolicyBundle) -> None:
    features, idx, masks = good(B)
    msg = raises(
        lambda: bundle.get_action(features, idx.float(), masks),
        "get_action",
        "blueprint_indices",
        "float32[4, 3]",
    )
    assert "tensor(" not in msg  # values are never printed


def test_indices_of_the_wrong_number_of_slots(bundle: LSTMPolicyBundle) -> None:
    features, idx, masks = good(B)
    raises(lambda: bundle.get_action(features, idx[:, :2], masks), "blueprint_indices", "num_slots")


def test_a_dict_where_blueprint_indices_goes(bundle: LSTMPolicyBundle) -> None:
    """The pre-Phase-4 call ``get_action(features, masks, hidden)``, never an AttributeError."""
    features, _, masks = good(B)
    hidden = bundle.initial_hidden(B)
    raises(
        lambda: bundle.get_action(features, masks, hidden),  # type: ignore[arg-type]
        "blueprint_indices",
        "got dict",
    )


def test_masks_passed_positionally_where_blueprint_indices_goes(bundle: LSTMPolicyBundle) -> None:
    features, idx, masks = good(B)
    msg = raises(lambda: bundle.get_action(features, masks, idx), "blueprint_indices", "masks")  # type: ignore[arg-type]
    assert len(msg.splitlines()) >= 2  # both arguments reported in one error


def test_the_old_evaluate_actions_argument_order(bundle: LSTMPolicyBundle) -> None:
    """``evaluate_actions(states, actions, masks, hidden)`` from before the migration."""
    features, _, masks = good(B, 5)
    raises(
        lambda: bundle.evaluate_actions(
            features, zeros_actions(B, 5), masks, bundle.initial_hidden(B)
        ),  # type: ignore[arg-type]
        "evaluate_actions",
        "blueprint_indices",
    )


def test_batch_mismatch_names_where_batch_was_bound(bundle: LSTMPolicyBundle) -> None:
    features, idx, masks = good(B)
    masks["op"] = masks["op"][:2]
    raises(lambda: bundle.get_action(features, idx, masks), 'masks["op"]', "features")


def test_wrong_dtypes_and_widths(bundle: LSTMPolicyBundle) -> None:
    features, idx, masks = good(B)
    raises(lambda: bundle.get_action(features.double(), idx, masks), "features", "float64")
    raises(lambda: bundle.get_action(features[:, :9], idx, masks), "features", "obs_dim")
    int_masks = dict(masks, slot=masks["slot"].long())
    raises(lambda: bundle.get_action(features, idx, int_masks), 'masks["slot"]', "int64")
    wide = (torch.zeros(1, B, 13), torch.zeros(1, B, 13))
    raises(lambda: bundle.get_action(features, idx, masks, wide), "hidden")


def test_hidden_of_another_batch(bundle: LSTMPolicyBundle) -> None:
    features, idx, masks = good(B)
    hidden = bundle.initial_hidden(B + 1)
    raises(
        lambda: bundle.get_action(features, idx, masks, hidden),
        "get_action: hidden[0].shape[1]=5 but batch=4 (bound by features.shape[0])",
    )
    seq_features, seq_idx, seq_masks = good(B, 2)
    raises(
        lambda: bundle.evaluate_actions(
            seq_features, seq_idx, zeros_actions(B, 2), seq_masks, hidden
        ),
        "evaluate_actions",
        "hidden[1]",
    )


def test_sequence_inputs_must_agree_on_batch_and_seq(bundle: LSTMPolicyBundle) -> None:
    features, idx, masks = good(B, 5)
    actions = zeros_actions(B, 4)
    raises(lambda: bundle.evaluate_actions(features, idx, actions, masks), "actions")
    starts = torch.zeros(B, 3, dtype=torch.bool)
    raises(
        lambda: bundle.evaluate_actions(
            features, idx, zeros_actions(B, 5), masks, episode_starts=starts
        ),
        "episode_starts",
    )


def test_out_of_range_indices_are_caught_in_full_mode(bundle: LSTMPolicyBundle) -> None:
    features, idx, masks = good(B)
    idx[0, 0] = NUM_BLUEPRINTS  # 13 is no blueprint
    with contracts.mode("full"):
        raises(lambda: bundle.get_action(features, idx, masks), "blueprint_indices", "[-1, 12]")


def test_the_network_interface_is_checked_too() -> None:
    net = FactoredRecurrentActorCritic(STATE_DIM, SLOTS, feature_dim=8, lstm_hidden_dim=8)
    features, idx, _ = good(B)
    raises(lambda: net(features, idx.float()), "forward", "blueprint_indices")
    bad_mask = torch.ones(B, 5, dtype=torch.bool)
    features, idx, masks = good(B)
    raises(lambda: net.get_action(features, idx, {**masks, "op": bad_mask}), 'masks["op"]')
    partial = {"op": masks["op"]}
    raises(lambda: net.get_action(features, idx, partial), "masks")
    raises(lambda: net.get_value(features, {"op": idx}), "get_value", "blueprint_indices")  # type: ignore[arg-type]


def test_valid_input_passes_in_every_mode(bundle: LSTMPolicyBundle) -> None:
    for mode in ("off", "on", "full"):
        with contracts.mode(mode):  # type: ignore[arg-type]
            features, idx, masks = good(B, 3)
            hidden = bundle.initial_hidden(B)
            ev = bundle.evaluate_actions(features, idx, zeros_actions(B, 3), masks, hidden)
            assert ev.value.shape == (B, 3)
            res = bundle.get_action(
                features[:, 0], idx[:, 0], {k: m[:, 0] for k, m in masks.items()}, hidden
            )
            bundle.reset_hidden(res.hidden, torch.zeros(B, dtype=torch.bool))
            assert bundle.get_value(features, idx, hidden).shape == (B, 3, 6)
            assert bundle.expected_value(features, idx, masks, hidden).shape == (B, 3)


@pytest.mark.parametrize("lead", [(B,), (B, 3)])
def test_get_action_results_meet_the_catalogue_specs(
    bundle: LSTMPolicyBundle, lead: tuple[int, ...]
) -> None:
    features, idx, masks = good(*lead)
    res = bundle.get_action(features, idx, masks, bundle.initial_hidden(B))
    with contracts.mode("full"):
        contracts.check(
            "get_action result",
            bind={"num_slots": SLOTS, "layers": 1, "hidden": 12, "lead": lead},
            actions=(res.actions, P.ACTIONS),
            log_probs=(res.log_probs, P.LOG_PROBS),
            value=(res.value, P.VALUE),
            sampled_op=(res.sampled_op, P.OP),
            hidden=(res.hidden, P.HIDDEN),
            op_probs=(res.op_probs, P.Q_ALL_OPS),
            expected_value=(res.expected_value, P.VALUE),
        )
