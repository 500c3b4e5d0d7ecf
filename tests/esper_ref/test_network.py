"""FactoredRecurrentActorCritic: Q(s, op), blueprint embeddings, LSTM stepping, masked heads."""

from __future__ import annotations

import pytest
import torch

from contracts.phase4 import HEAD_NAMES, NUM_BLUEPRINTS, NUM_OPS, head_sizes
from esper_ref.network import FactoredRecurrentActorCritic

STATE_DIM = 10
SLOTS = 3
SIZES = head_sizes(SLOTS)


def tiny_net(seed: int = 0) -> FactoredRecurrentActorCritic:
    torch.manual_seed(seed)
    return FactoredRecurrentActorCritic(
        STATE_DIM,
        SLOTS,
        feature_dim=16,
        lstm_hidden_dim=12,
        head_hidden_dim=8,
        value_hidden_dim=8,
    )


def with_op_mask(op_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Masks of every head: ``op_mask`` for the op head, all allowed for the others."""
    lead = tuple(op_mask.shape[:-1])
    masks = {n: torch.ones(*lead, size, dtype=torch.bool) for n, size in SIZES.items()}
    masks["op"] = op_mask
    return masks


def inputs(*lead: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = torch.randn(*lead, STATE_DIM, generator=g)
    idx = torch.randint(-1, NUM_BLUEPRINTS, (*lead, SLOTS), generator=g)
    return state, idx


# ---------------------------------------------------------------- audit test 1: value of another op


@pytest.mark.parametrize("lead", [(2, 5), (4,)])
def test_op_conditioned_value_is_q_of_the_sampled_op(lead: tuple[int, ...]) -> None:
    net = tiny_net()
    state, idx = inputs(*lead)
    out = net(state, idx)
    assert out["value"].shape == lead
    assert out["sampled_op"].shape == lead
    assert out["sampled_op"].dtype == torch.int64
    assert ((out["sampled_op"] >= 0) & (out["sampled_op"] < NUM_OPS)).all()
    assert out["q_values"].shape == (*lead, NUM_OPS)
    expected = out["q_values"].gather(-1, out["sampled_op"].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out["value"], expected, rtol=0, atol=0)
    for name in HEAD_NAMES:
        assert out[f"{name}_logits"].shape == (*lead, SIZES[name])  # type: ignore[literal-required]
    assert out["hidden"][0].shape == (1, lead[0], 12)


def test_get_action_values_the_op_it_returns() -> None:
    """Value of another op: the value must belong to the op of the action, not to a second draw."""
    net = tiny_net()
    state, idx = inputs(256)
    res = net.get_action(state, idx)
    assert torch.equal(res.sampled_op, res.actions["op"])
    q = net.get_value(state, idx)
    torch.testing.assert_close(res.value, q.gather(-1, res.sampled_op[:, None]).squeeze(-1))
    # With a near-uniform policy over 6 ops, a second independent draw would disagree often.
    assert res.sampled_op.unique().numel() > 1


@pytest.mark.parametrize("deterministic", [False, True])
def test_stored_op_value_consistency_on_the_network(deterministic: bool) -> None:
    """The audit's second test, as written there: forward, then evaluate the stored op."""
    net = tiny_net()
    state, idx = inputs(2, 5)
    fwd_out = net(state, idx, deterministic=deterministic)
    stored_op = fwd_out["sampled_op"]
    actions = {name: torch.zeros(2, 5, dtype=torch.long) for name in HEAD_NAMES}
    actions["op"] = stored_op
    eval_out = net.evaluate_actions(state, idx, actions)
    torch.testing.assert_close(fwd_out["value"], eval_out.value, atol=1e-5, rtol=0)
    if deterministic:
        assert torch.equal(stored_op, fwd_out["op_logits"].argmax(-1))


# ---------------------------------------------------------------- audit test 3: ignored blueprints


def test_blueprint_indices_change_the_outputs_and_minus_one_is_handled() -> None:
    net = tiny_net()
    state = torch.randn(2, 1, STATE_DIM)
    active = torch.tensor([[0, 2, 5], [1, 3, 7]]).unsqueeze(1)
    inactive = torch.tensor([[-1, -1, -1], [0, -1, 2]]).unsqueeze(1)
    q_active = net.get_value(state, active)
    q_inactive = net.get_value(state, inactive)
    assert torch.isfinite(q_inactive).all()
    assert not torch.allclose(q_active, q_inactive)
    la = net(state, active, deterministic=True)["op_logits"]
    li = net(state, inactive, deterministic=True)["op_logits"]
    assert not torch.allclose(la, li)
    # Every row differs, not just on average.
    assert ((q_active - q_inactive).abs().sum(-1) > 0).all()


def test_minus_one_uses_the_learned_null_row() -> None:
    net = tiny_net()
    state = torch.randn(3, STATE_DIM)
    idx = torch.tensor([[-1, 4, -1]] * 3)
    before = net.get_value(state, idx)
    with torch.no_grad():
        net.blueprint_embedding.weight[0] += 1.0  # the null row
    after_null = net.get_value(state, idx)
    assert not torch.allclose(before, after_null)
    with torch.no_grad():
        net.blueprint_embedding.weight[13] += 1.0  # blueprint 12, absent from idx
    torch.testing.assert_close(net.get_value(state, idx), after_null, rtol=0, atol=0)


def test_blueprint_embedding_receives_gradients() -> None:
    net = tiny_net()
    state, _ = inputs(2, 5)
    idx = torch.tensor([[[-1, 2, 5]] * 5, [[1, -1, 7]] * 5])
    actions = {name: torch.zeros(2, 5, dtype=torch.long) for name in HEAD_NAMES}
    ev = net.evaluate_actions(state, idx, actions)
    loss = ev.value.pow(2).mean() - sum(lp.mean() for lp in ev.log_probs.values())
    loss.backward()
    grad = net.blueprint_embedding.weight.grad
    assert grad is not None
    used = [0, 2, 3, 6, 8]  # rows of -1, 1, 2, 5, 7
    unused = [r for r in range(NUM_BLUEPRINTS + 1) if r not in used]
    assert (grad[used].abs().sum(-1) > 0).all()
    assert (grad[unused] == 0).all()


# ---------------------------------------------------------------- LSTM stepping


def test_stepping_one_step_at_a_time_equals_one_sequence_call() -> None:
    net = tiny_net()
    state, idx = inputs(3, 7)
    masks = {"op": torch.rand(3, 7, NUM_OPS) < 0.6}
    masks["op"][..., 0] = True
    h0 = (torch.randn(1, 3, 12), torch.randn(1, 3, 12))
    seq = net(state, idx, with_op_mask(masks["op"]), hidden=h0, deterministic=True)
    hidden = h0
    for t in range(7):
        step = net(state[:, t], idx[:, t], with_op_mask(masks["op"][:, t]), hidden=hidden)
        torch.testing.assert_close(step["op_logits"], seq["op_logits"][:, t], atol=1e-5, rtol=0)
        torch.testing.assert_close(step["q_values"], seq["q_values"][:, t], atol=1e-5, rtol=0)
        hidden = step["hidden"]
    for carried, whole in zip(hidden, seq["hidden"], strict=True):
        torch.testing.assert_close(carried, whole, atol=1e-5, rtol=0)


def test_single_step_does_not_call_the_sequence_lstm(monkeypatch: pytest.MonkeyPatch) -> None:
    net = tiny_net()
    state, idx = inputs(4)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("nn.LSTM.forward called for a single step")

    monkeypatch.setattr(net.lstm, "forward", forbidden)
    res = net.get_action(state, idx)
    assert res.hidden[0].shape == (1, 4, 12)


def test_episode_starts_reset_the_state_and_stop_gradients() -> None:
    """State across episodes: nothing, neither value nor gradient, crosses an episode boundary."""
    net = tiny_net()
    state, idx = inputs(2, 6)
    state.requires_grad_(True)
    starts = torch.zeros(2, 6, dtype=torch.bool)
    starts[0, 3] = True  # env 0: a new episode begins at step 3
    h0 = (torch.randn(1, 2, 12), torch.randn(1, 2, 12))
    actions = {name: torch.zeros(2, 6, dtype=torch.long) for name in HEAD_NAMES}
    ev = net.evaluate_actions(state, idx, actions, hidden=h0, episode_starts=starts)
    # Steps 3.. of env 0 equal a fresh episode from zero state.
    fresh = net.evaluate_actions(
        state[:1, 3:], idx[:1, 3:], {k: v[:1, 3:] for k, v in actions.items()}
    )
    torch.testing.assert_close(ev.value[0, 3:], fresh.value[0], atol=1e-5, rtol=0)
    # Without resets, env 1 equals the plain sequence path.
    plain = net.evaluate_actions(state, idx, actions, hidden=h0)
    torch.testing.assert_close(ev.value[1], plain.value[1], atol=1e-5, rtol=0)
    assert not torch.allclose(ev.value[0, 3:], plain.value[0, 3:])
    ev.value[0, 3:].sum().backward()
    assert state.grad is not None
    assert (state.grad[0, :3] == 0).all()
    assert (state.grad[0, 3:].abs().sum(-1) > 0).all()
    # A single step honours episode_starts as well: env 0 restarts, env 1 carries on.
    step_actions = {k: v[:, 3] for k, v in actions.items()}
    x3 = state[:, 3].detach()
    one = net.evaluate_actions(x3, idx[:, 3], step_actions, hidden=h0, episode_starts=starts[:, 3])
    from_zero = net.evaluate_actions(x3, idx[:, 3], step_actions)
    carried = net.evaluate_actions(x3, idx[:, 3], step_actions, hidden=h0)
    torch.testing.assert_close(one.value[0], from_zero.value[0], atol=0, rtol=0)
    torch.testing.assert_close(one.value[1], carried.value[1], atol=0, rtol=0)


# ---------------------------------------------------------------- masking: all-false masks


def test_masked_logit_never_wins_even_when_largest() -> None:
    net = tiny_net()
    with torch.no_grad():
        # Make the last op overwhelmingly preferred, then forbid it.
        net.policy_out.bias.zero_()
        net.policy_out.bias[NUM_OPS - 1] = 100.0
    state, idx = inputs(500)
    op_mask = torch.ones(500, NUM_OPS, dtype=torch.bool)
    op_mask[:, NUM_OPS - 1] = False
    for deterministic in (True, False):
        res = net.get_action(state, idx, with_op_mask(op_mask), deterministic=deterministic)
        assert (res.actions["op"] != NUM_OPS - 1).all()
        assert torch.isfinite(res.log_probs["op"]).all()
    out = net(state, idx, with_op_mask(op_mask))
    assert (out["op_logits"][:, NUM_OPS - 1] == torch.finfo(torch.float32).min).all()


def test_all_false_rows_are_finite_in_values_and_gradients() -> None:
    net = tiny_net()
    state, idx = inputs(2, 4)
    masks = {name: torch.ones(2, 4, size, dtype=torch.bool) for name, size in SIZES.items()}
    for name in HEAD_NAMES:
        masks[name][1, 2:] = False  # env 1 is padding from step 2 on
    actions = {name: torch.zeros(2, 4, dtype=torch.long) for name in HEAD_NAMES}
    ev = net.evaluate_actions(state, idx, actions, masks)
    for name in HEAD_NAMES:
        assert torch.isfinite(ev.log_probs[name]).all()
        assert torch.isfinite(ev.entropy[name]).all()
        assert (ev.log_probs[name][1, 2:] == 0).all()
        assert (ev.entropy[name][1, 2:] == 0).all()
    loss = sum(ev.log_probs[n].sum() + ev.entropy[n].sum() for n in HEAD_NAMES)
    loss.backward()
    for p in net.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    res = net.get_action(state[:, 3], idx[:, 3], {k: m[:, 3] for k, m in masks.items()})
    for name in HEAD_NAMES:
        assert res.actions[name][1] == 0
        assert res.log_probs[name][1] == 0


def test_get_value_shape_and_debug_only_doc() -> None:
    net = tiny_net()
    state, idx = inputs(4)
    assert net.get_value(state, idx).shape == (4, NUM_OPS)
    state, idx = inputs(4, 3)
    assert net.get_value(state, idx).shape == (4, 3, NUM_OPS)
    assert "not for training" in (net.get_value.__doc__ or "")


@pytest.mark.parametrize(
    "kwargs",
    [{"state_dim": 0}, {"state_dim": 10, "num_slots": -1}, {"state_dim": 10, "feature_dim": 2.5}],
)
def test_bad_sizes_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be a positive int"):
        FactoredRecurrentActorCritic(**kwargs)  # type: ignore[arg-type]
