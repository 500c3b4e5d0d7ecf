"""LSTMPolicyBundle: stored-op consistency, PPO ratio 1, bootstrap values, no host sync."""

from __future__ import annotations

import pytest
import torch

import contracts
from contracts import ContractError
from contracts.phase4 import HEAD_NAMES, NUM_BLUEPRINTS, NUM_OPS, head_sizes
from esper_ref.bundle import ActionResult, EvalResult, LSTMPolicyBundle

STATE_DIM = 10
SLOTS = 3
SIZES = head_sizes(SLOTS)


def tiny_bundle(seed: int = 0) -> LSTMPolicyBundle:
    torch.manual_seed(seed)
    return LSTMPolicyBundle(
        STATE_DIM,
        SLOTS,
        feature_dim=16,
        lstm_hidden_dim=12,
        head_hidden_dim=8,
        value_hidden_dim=8,
    )


def rollout_inputs(
    *lead: int, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(*lead, STATE_DIM, generator=g)
    idx = torch.randint(-1, NUM_BLUEPRINTS, (*lead, SLOTS), generator=g)
    masks = {}
    for name, size in SIZES.items():
        m = torch.rand(*lead, size, generator=g) < 0.6
        m[..., size - 1] = True  # at least one allowed action per row
        masks[name] = m
    return features, idx, masks


def step(tree: dict[str, torch.Tensor], t: int) -> dict[str, torch.Tensor]:
    return {k: v[:, t] for k, v in tree.items()}


# ---------------------------------------------------------------- audit test 2: value of another op


@pytest.mark.parametrize("deterministic", [False, True])
def test_stored_op_value_consistency(deterministic: bool) -> None:
    bundle = tiny_bundle()
    features, idx, masks = rollout_inputs(64)
    hidden = (torch.randn(1, 64, 12), torch.randn(1, 64, 12))
    res = bundle.get_action(features, idx, masks, hidden, deterministic=deterministic)
    assert isinstance(res, ActionResult)
    assert torch.equal(res.sampled_op, res.actions["op"])
    ev = bundle.evaluate_actions(features, idx, res.actions, masks, hidden)
    assert isinstance(ev, EvalResult)
    torch.testing.assert_close(ev.value, res.value, rtol=0, atol=0)
    for name in HEAD_NAMES:
        torch.testing.assert_close(ev.log_probs[name], res.log_probs[name], rtol=0, atol=0)
    torch.testing.assert_close(ev.hidden, res.hidden, rtol=0, atol=0)


def test_result_types_and_shapes() -> None:
    bundle = tiny_bundle()
    features, idx, masks = rollout_inputs(5)
    res = bundle.get_action(features, idx, masks)
    for name in HEAD_NAMES:
        assert res.actions[name].shape == (5,)
        assert res.actions[name].dtype == torch.int64
        assert res.log_probs[name].shape == (5,)
        assert res.log_probs[name].dtype == torch.float32
        assert ((res.actions[name] >= 0) & (res.actions[name] < SIZES[name])).all()
    assert res.value.shape == (5,)
    assert res.op_probs.shape == (5, NUM_OPS)
    torch.testing.assert_close(res.op_probs.sum(-1), torch.ones(5))
    assert all(h.shape == (1, 5, 12) for h in res.hidden)
    assert not res.value.requires_grad  # rollout records no autograd graph
    out = bundle.forward(features, idx, masks)
    assert out["value"].requires_grad
    assert out["blueprint_logits"].shape == (5, SIZES["blueprint"])


# ---------------------------------------------------------------- ratio not 1


@pytest.mark.parametrize("deterministic", [False, True])
def test_ppo_ratio_is_exactly_one_before_any_optimiser_step(deterministic: bool) -> None:
    """Roll out step by step with carried hidden, then re-score the sequence as PPO does."""
    bundle = tiny_bundle()
    envs, steps = 4, 7
    features, idx, masks = rollout_inputs(envs, steps)
    hidden = bundle.initial_hidden(envs)
    stored: list[ActionResult] = []
    hiddens = [hidden]
    for t in range(steps):
        res = bundle.get_action(features[:, t], idx[:, t], step(masks, t), hidden, deterministic)
        stored.append(res)
        hidden = res.hidden
        hiddens.append(hidden)
    actions = {n: torch.stack([r.actions[n] for r in stored], 1) for n in HEAD_NAMES}
    old_log_probs = {n: torch.stack([r.log_probs[n] for r in stored], 1) for n in HEAD_NAMES}
    old_values = torch.stack([r.value for r in stored], 1)

    ev = bundle.evaluate_actions(features, idx, actions, masks, bundle.initial_hidden(envs))
    for name in HEAD_NAMES:
        ratio = (ev.log_probs[name] - old_log_probs[name]).exp()
        torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=0, atol=2e-6)
    torch.testing.assert_close(ev.value, old_values, rtol=0, atol=1e-5)

    # A minibatch that starts mid-rollout from the stored hidden state agrees as well.
    tail = {n: a[:, 3:] for n, a in actions.items()}
    tail_masks = {n: m[:, 3:] for n, m in masks.items()}
    ev_tail = bundle.evaluate_actions(features[:, 3:], idx[:, 3:], tail, tail_masks, hiddens[3])
    for name in HEAD_NAMES:
        ratio = (ev_tail.log_probs[name] - old_log_probs[name][:, 3:]).exp()
        torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=0, atol=2e-6)


# ---------------------------------------------------------------- debug value in the bootstrap


def test_expected_value_is_the_policy_average_of_q_over_allowed_ops() -> None:
    bundle = tiny_bundle()
    features, idx, masks = rollout_inputs(8)
    masks["op"][:, 1] = False  # GERMINATE forbidden everywhere
    v = bundle.expected_value(features, idx, masks)
    q = bundle.get_value(features, idx)
    logits = bundle.forward(features, idx, masks)["op_logits"]
    pi = torch.zeros_like(logits)
    for row in range(8):
        allowed = masks["op"][row]
        pi[row, allowed] = torch.softmax(logits[row, allowed], -1)
    assert (pi[:, 1] == 0).all()
    torch.testing.assert_close(v, (pi * q).sum(-1), atol=1e-6, rtol=0)
    assert v.shape == (8,)
    # get_action returns the same expectation with the action, at no extra forward pass.
    res = bundle.get_action(features, idx, masks)
    torch.testing.assert_close(res.expected_value, v, atol=1e-6, rtol=0)
    seq_features, seq_idx, seq_masks = rollout_inputs(2, 3)
    assert bundle.expected_value(seq_features, seq_idx, seq_masks).shape == (2, 3)


def test_greedy_bootstrap_is_q_of_the_best_allowed_op() -> None:
    """The audit's bootstrap: get_action(deterministic=True).value = Q(s', argmax op)."""
    bundle = tiny_bundle()
    features, idx, masks = rollout_inputs(16)
    res = bundle.get_action(features, idx, masks, deterministic=True)
    logits = bundle.forward(features, idx, masks)["op_logits"]
    greedy = logits.argmax(-1)
    assert masks["op"].gather(-1, greedy[:, None]).all()
    assert torch.equal(res.sampled_op, greedy)
    q = bundle.get_value(features, idx)
    torch.testing.assert_close(res.value, q.gather(-1, greedy[:, None]).squeeze(-1))
    # Not the same thing as the expectation: they differ unless the policy is one-hot.
    assert not torch.allclose(res.value, bundle.expected_value(features, idx, masks))


# ---------------------------------------------------------------- rollout path: ratio not 1


def test_rollout_path_never_syncs_or_builds_distributions(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tiny_bundle()
    features, idx, masks = rollout_inputs(6)
    hidden = bundle.initial_hidden(6)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("host-device sync or distribution object in the rollout path")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "numpy", "cpu"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    monkeypatch.setattr(torch.distributions.Distribution, "__init__", forbidden)
    # Contracts "on" (the default) check shapes and dtypes only; "full" reads value ranges.
    with contracts.mode("on"):
        for deterministic in (False, True):
            res = bundle.get_action(features, idx, masks, hidden, deterministic=deterministic)
            bundle.expected_value(features, idx, masks, res.hidden)
    monkeypatch.undo()
    assert res.value.shape == (6,)


# ---------------------------------------------------------------- hidden state and plumbing


def test_initial_and_reset_hidden() -> None:
    bundle = tiny_bundle()
    h, c = bundle.initial_hidden(3)
    assert h.shape == c.shape == (1, 3, 12)
    assert (h == 0).all() and (c == 0).all()
    assert h.data_ptr() != c.data_ptr()
    hidden = (torch.ones(1, 3, 12), torch.full((1, 3, 12), 2.0))
    h, c = bundle.reset_hidden(hidden, torch.tensor([False, True, False]))
    assert (h[:, 1] == 0).all() and (c[:, 1] == 0).all()
    assert (h[:, 0] == 1).all() and (c[:, 2] == 2).all()


def test_state_dict_round_trip_reproduces_outputs() -> None:
    first, second = tiny_bundle(seed=0), tiny_bundle(seed=1)
    features, idx, _ = rollout_inputs(4)
    assert not torch.allclose(first.get_value(features, idx), second.get_value(features, idx))
    second.load_state_dict(first.state_dict())
    torch.testing.assert_close(first.get_value(features, idx), second.get_value(features, idx))
    wrapped = LSTMPolicyBundle.from_network(first.network)
    assert next(iter(wrapped.parameters())) is next(iter(first.parameters()))
    assert wrapped.num_slots == SLOTS and wrapped.state_dim == STATE_DIM
    assert wrapped.device == torch.device("cpu")


def test_mask_heads_must_match_exactly() -> None:
    bundle = tiny_bundle()
    features, idx, masks = rollout_inputs(2)
    masks["slots"] = masks.pop("slot")
    with pytest.raises(ContractError, match="slot"):
        bundle.get_action(features, idx, masks)
    # With contracts switched off the bundle still refuses, with its own message.
    with contracts.mode("off"), pytest.raises(ValueError, match=r"missing head\(s\) \['slot'\]"):
        bundle.get_action(features, idx, masks)


def test_missing_action_heads_are_rejected() -> None:
    bundle = tiny_bundle()
    features, idx, masks = rollout_inputs(2)
    actions = {n: torch.zeros(2, dtype=torch.long) for n in HEAD_NAMES if n != "tempo"}
    with pytest.raises(ContractError, match="tempo"):
        bundle.evaluate_actions(features, idx, actions, masks)
    with contracts.mode("off"), pytest.raises(ValueError, match=r"missing head\(s\) \['tempo'\]"):
        bundle.evaluate_actions(features, idx, actions, masks)
