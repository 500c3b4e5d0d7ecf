"""PPO update: causal masks, KL early stop, ratio 1 before the first step, non-finite skips."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.phase4 import HEAD_NAMES, Op, head_sizes, obs_dim
from esper_ref.buffer import SequenceBatch, TamiyoRolloutBuffer
from esper_ref.bundle import LSTMPolicyBundle
from esper_ref.config import TrainConfig
from esper_ref.ppo import PPO, minibatch_groups, normalize_advantages, ppo_loss

SLOTS = 3
OBS = obs_dim(SLOTS)


def _policy(seed: int = 0) -> LSTMPolicyBundle:
    torch.manual_seed(seed)
    return LSTMPolicyBundle(
        OBS, SLOTS, feature_dim=32, lstm_hidden_dim=32, head_hidden_dim=32, value_hidden_dim=32
    )


def _batch(
    policy: LSTMPolicyBundle, num_envs: int = 4, steps: int = 6, force_op: int | None = None
) -> SequenceBatch:
    """A synthetic rollout sampled from ``policy`` (random observations and rewards)."""
    g = torch.Generator().manual_seed(1)
    buf = TamiyoRolloutBuffer(num_envs, steps, OBS, SLOTS, policy.lstm_hidden_dim)
    hidden = policy.initial_hidden(num_envs)
    masks = {h: torch.ones(num_envs, n, dtype=torch.bool) for h, n in head_sizes(SLOTS).items()}
    for _ in range(steps):
        feats = torch.randn(num_envs, OBS, generator=g)
        bp = torch.randint(-1, 13, (num_envs, SLOTS), generator=g)
        act = policy.get_action(feats, bp, masks, hidden=hidden)
        term = torch.rand(num_envs, generator=g) < 0.2
        executed = act.actions["op"] if force_op is None else torch.full((num_envs,), force_op)
        buf.add(
            feats,
            bp,
            act.actions,
            act.log_probs,
            act.value,
            masks,
            torch.randn(num_envs, generator=g),
            term,
            torch.zeros(num_envs, dtype=torch.bool),
            executed,
            hidden,
        )
        keep = (~term).float().view(1, -1, 1)
        hidden = (act.hidden[0] * keep, act.hidden[1] * keep)
    buf.compute_returns_and_advantages(torch.zeros(num_envs), 0.99, 0.95)
    return buf.get_batched_sequences()


def _cfg(**kw: object) -> TrainConfig:
    base = {"num_envs": 4, "num_minibatches": 2, "update_epochs": 1, "target_kl": None}
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _relevance(ppo: PPO) -> torch.Tensor:
    return ppo.relevance


def test_ratio_is_exactly_one_before_the_first_step() -> None:
    policy = _policy()
    batch = _batch(policy)
    ppo = PPO(policy, _cfg())
    _loss, info = ppo_loss(policy, batch, ppo.config, _relevance(ppo))
    assert info["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert info["clipfrac"] == 0.0


@pytest.mark.parametrize("executed", [Op.WAIT, Op.PRUNE, Op.GERMINATE])
def test_causally_irrelevant_heads_get_zero_gradient(executed: Op) -> None:
    policy = _policy()
    batch = _batch(policy, force_op=int(executed))
    ppo = PPO(policy, _cfg())
    captured = {}
    original = policy.evaluate_actions

    def spy(*args: object, **kwargs: object) -> object:
        out = original(*args, **kwargs)  # type: ignore[arg-type]
        for h in HEAD_NAMES:
            out.log_probs[h].retain_grad()
            out.entropy[h].retain_grad()
        captured["out"] = out
        return out

    policy.evaluate_actions = spy  # type: ignore[method-assign]
    loss, _ = ppo_loss(policy, batch, ppo.config, _relevance(ppo))
    loss.backward()
    out = captured["out"]
    table = _relevance(ppo)
    for i, h in enumerate(HEAD_NAMES):
        g_lp, g_ent = out.log_probs[h].grad, out.entropy[h].grad
        if bool(table[i, int(executed)]):
            assert float(g_lp[batch.valid].abs().sum()) > 0, h
        else:
            assert float(g_lp.abs().sum()) == 0.0, h
            assert float(g_ent.abs().sum()) == 0.0, h
        # padding never contributes
        assert float(g_lp[~batch.valid].abs().sum()) == 0.0

    # ... and therefore the irrelevant heads' output weights get exactly zero gradient.
    net = policy.network
    m = net.layout.max_size
    w_grad = net.policy_out.weight.grad.view(len(HEAD_NAMES), m, -1)
    for i, h in enumerate(HEAD_NAMES):
        norm = float(w_grad[i].abs().sum())
        assert (norm > 0) == bool(table[i, int(executed)]), (h, norm)


def test_causal_mask_follows_the_executed_not_the_requested_op() -> None:
    policy = _policy()
    batch = _batch(policy)
    requested = batch.actions["op"]
    # Every step executed WAIT although other ops were requested: only the op head matters.
    waited = dataclasses.replace(batch, executed_op=torch.zeros_like(requested))
    ppo = PPO(policy, _cfg())
    policy.network.zero_grad()
    ppo_loss(policy, waited, ppo.config, _relevance(ppo))[0].backward()
    w = policy.network.policy_out.weight.grad.view(
        len(HEAD_NAMES), policy.network.layout.max_size, -1
    )
    assert float(w[1:].abs().sum()) == 0.0
    assert float(w[0].abs().sum()) > 0.0


def test_kl_early_stop_fires_within_a_single_epoch() -> None:
    policy = _policy()
    batch = _batch(policy, num_envs=4)
    ppo = PPO(policy, _cfg(learning_rate=0.05, num_minibatches=4, target_kl=1e-6))
    stats = ppo.update(batch)
    assert stats.early_stopped
    # The first minibatch sees ratio 1 (KL 0) and steps; the second sees the moved policy.
    assert stats.opt_steps == 1
    assert stats.minibatches_seen == 2

    free = PPO(_policy(), _cfg(learning_rate=0.05, num_minibatches=4, target_kl=None))
    assert free.update(_batch(free.bundle, num_envs=4)).opt_steps == 4


def test_minibatches_keep_each_env_whole() -> None:
    policy = _policy()
    batch = _batch(policy, num_envs=4)
    ppo = PPO(policy, _cfg(num_minibatches=2))
    rows = ppo.minibatch_rows(batch)
    assert len(rows) == 2
    envs = [set(batch.env_index[r].tolist()) for r in rows]
    assert envs[0].isdisjoint(envs[1]) and envs[0] | envs[1] == {0, 1, 2, 3}
    assert sorted(torch.cat(rows).tolist()) == list(range(batch.num_seqs))


def test_non_finite_loss_skips_the_step_and_is_counted() -> None:
    policy = _policy()
    batch = _batch(policy)
    bad = dataclasses.replace(batch, returns=torch.full_like(batch.returns, float("nan")))
    ppo = PPO(policy, _cfg(norm_adv=False))
    before = [p.detach().clone() for p in policy.parameters()]
    stats = ppo.update(bad)
    assert stats.nonfinite_skips == 2 and stats.opt_steps == 0
    assert ppo.total_nonfinite_skips == 2
    for b, p in zip(before, policy.parameters(), strict=True):
        assert torch.equal(b, p)


def test_update_moves_the_policy_at_the_rate_it_is_given() -> None:
    policy = _policy()
    batch = _batch(policy)
    ppo = PPO(policy, _cfg(update_epochs=2, learning_rate=1e-3))
    before = [p.detach().clone() for p in policy.parameters()]
    stats = ppo.update(batch)
    assert stats.opt_steps == 4 and not stats.early_stopped
    assert any(not torch.equal(b, p) for b, p in zip(before, policy.parameters(), strict=True))
    ppo.set_learning_rate(5e-4)
    assert ppo.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_advantages_are_normalised_over_real_steps_only() -> None:
    adv = torch.tensor([[1.0, 3.0, 1000.0], [2.0, -500.0, 4.0]])
    valid = torch.tensor([[True, True, False], [True, False, True]])
    out = normalize_advantages(adv, valid)
    real = out[valid]
    assert float(real.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(real.std()) == pytest.approx(1.0, abs=1e-4)
    assert float(out[~valid].abs().sum()) == 0.0


def test_non_op_heads_use_q_of_the_executed_op_as_baseline() -> None:
    policy = _policy()
    batch = _batch(policy)
    # lambda-returns equal to the stored Q(s, op): nothing left for the non-op heads to learn
    same = dataclasses.replace(batch, returns=batch.values.clone())
    ppo = PPO(policy, _cfg(ent_coef=0.0, vf_coef=0.0))
    prepared = dataclasses.replace(
        same,
        advantages=normalize_advantages(same.advantages, same.valid),
        sub_advantages=normalize_advantages(same.returns - same.values, same.valid),
    )
    policy.network.zero_grad()
    ppo_loss(policy, prepared, ppo.config, ppo.relevance)[0].backward()
    net = policy.network
    w = net.policy_out.weight.grad.view(len(HEAD_NAMES), net.layout.max_size, -1)
    assert float(w[0].abs().sum()) > 0.0  # op: baseline V(s), advantage nonzero
    assert float(w[1:].abs().sum()) == 0.0  # the others: lambda-return - Q(s, op) = 0


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda m: st.tuples(st.just(m), st.integers(m, 96), st.integers(0, 2**31 - 1))
    )
)
def test_minibatch_groups_are_a_stratified_random_split(case: tuple[int, int, int]) -> None:
    groups, num_envs, seed = case
    torch.manual_seed(seed)
    assign = minibatch_groups(num_envs, groups)
    assert assign.shape == (num_envs,) and int(assign.min()) >= 0 and int(assign.max()) < groups
    sizes = torch.bincount(assign, minlength=groups)
    assert int(sizes.max() - sizes.min()) <= 1  # as even as the count allows
    # A rank's block of envs (a multiple of ``groups`` long) is spread evenly: the ranks hold
    # equal shares of every minibatch.
    for block in range(groups, num_envs + 1, groups):
        for lo in range(0, num_envs - block + 1, block):
            counts = torch.bincount(assign[lo : lo + block], minlength=groups)
            assert bool((counts == block // groups).all())


def test_minibatch_groups_put_every_env_anywhere_with_equal_odds() -> None:
    torch.manual_seed(0)
    draws = torch.stack([minibatch_groups(10, 4) for _ in range(4000)])  # [draw, env]
    freq = torch.stack([(draws == g).float().mean(0) for g in range(4)])  # [group, env]
    # Env 8 and 9 are the short last run (2 envs over 4 groups): each group with odds 1/4 too.
    assert float((freq - 0.25).abs().max()) < 0.04
    # And not always the same partners: envs 0 and 4 (different runs) meet by chance.
    together = (draws[:, 0] == draws[:, 4]).float().mean()
    assert abs(float(together) - 0.25) < 0.04
