"""TamiyoRolloutBuffer: storage layout, per-env GAE, sequences that respect episodes."""

from __future__ import annotations

import pydantic
import pytest
import torch

import contracts
from contracts.phase4 import HEAD_NAMES, NULL_BLUEPRINT, head_sizes
from esper_ref.buffer import TamiyoRolloutBuffer

OBS, SLOTS, HID = 5, 3, 4


def _buf(num_envs: int, max_steps: int) -> TamiyoRolloutBuffer:
    return TamiyoRolloutBuffer(num_envs, max_steps, obs_dim=OBS, num_slots=SLOTS, hidden_dim=HID)


def _step(
    buf: TamiyoRolloutBuffer,
    n: int,
    t: int,
    *,
    reward: list[float] | None = None,
    value: list[float] | None = None,
    term: list[bool] | None = None,
    trunc: list[bool] | None = None,
    boot: list[float] | None = None,
    bp: torch.Tensor | None = None,
) -> None:
    sizes = head_sizes(SLOTS)
    buf.add(
        features=torch.full((n, OBS), float(t)),
        blueprint_indices=bp if bp is not None else torch.full((n, SLOTS), t % 13),
        actions={h: torch.full((n,), t % sizes[h]) for h in HEAD_NAMES},
        log_probs={h: torch.full((n,), -0.1 * t) for h in HEAD_NAMES},
        values=torch.tensor(value) if value else torch.zeros(n),
        masks={h: torch.ones(n, s, dtype=torch.bool) for h, s in sizes.items()},
        rewards=torch.tensor(reward) if reward else torch.zeros(n),
        terminated=torch.tensor(term) if term else torch.zeros(n, dtype=torch.bool),
        truncated=torch.tensor(trunc) if trunc else torch.zeros(n, dtype=torch.bool),
        executed_op=torch.full((n,), t % 6),
        hidden=(torch.full((1, n, HID), float(t)), torch.full((1, n, HID), -float(t))),
        bootstrap_values=torch.tensor(boot) if boot else None,
    )


def test_layout_is_preallocated_per_env_with_null_padding() -> None:
    buf = _buf(2, 6)
    assert buf.features.shape == (2, 6, OBS)
    assert buf.blueprint_indices.shape == (2, 6, SLOTS)
    assert buf.blueprint_indices.dtype == torch.int64
    assert bool((buf.blueprint_indices == NULL_BLUEPRINT).all())
    assert set(buf.actions) == set(HEAD_NAMES)


def test_gae_by_hand_with_truncation_bootstrap_and_independent_envs() -> None:
    gamma, lam = 0.9, 0.8
    buf = _buf(2, 4)
    values = [[0.5, 1.0], [0.6, 1.0], [0.7, 1.0], [0.8, 1.0]]
    rewards = [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]]
    for t in range(4):
        _step(
            buf,
            2,
            t,
            reward=rewards[t],
            value=values[t],
            # env 0 hits a time limit at t=1 (bootstrap 10); env 1 terminates at t=2
            trunc=[t == 1, False],
            term=[False, t == 2],
            boot=[10.0, 99.0],  # 99 must never be read: env 1 is not truncated
        )
    buf.compute_returns_and_advantages(torch.tensor([2.0, 5.0]), gamma, lam)
    # env 0: d3 = 4 + .9*2 - .8 = 5; d2 = 3 + .9*.8 - .7 = 3.02, A2 = 3.02 + .72*5
    #        d1 = 2 + .9*10 - .6 = 10.4 (truncated: bootstrap, no carry); A0 = 1.04 + .72*10.4
    # env 1: A3 = 1 + .9*5 - 1 = 4.5; t=2 terminated: A2 = 1 + 0 - 1 = 0; A1 = .9; A0 = .9+.72*.9
    expected = torch.tensor([[8.528, 10.4, 6.62, 5.0], [1.548, 0.9, 0.0, 4.5]])
    torch.testing.assert_close(buf.advantages, expected)
    torch.testing.assert_close(buf.returns, expected + torch.tensor(values).T)

    # Treating the time limit as a termination would give a different answer.
    assert abs(float(buf.advantages[0, 1]) - (2.0 - 0.6)) > 1.0

    # Envs are independent: changing env 1 leaves env 0 untouched.
    other = _buf(2, 4)
    for t in range(4):
        _step(
            other,
            2,
            t,
            reward=[rewards[t][0], -7.0],
            value=[values[t][0], 3.0],
            trunc=[t == 1, False],
            term=[False, t == 0],
            boot=[10.0, 0.0],
        )
    other.compute_returns_and_advantages(torch.tensor([2.0, -1.0]), gamma, lam)
    torch.testing.assert_close(other.advantages[0], expected[0])


def test_separate_state_values_are_the_gae_baseline() -> None:
    buf = _buf(1, 2)
    sizes = head_sizes(SLOTS)
    for t in range(2):
        buf.add(
            torch.zeros(1, OBS),
            torch.full((1, SLOTS), -1),
            {h: torch.zeros(1, dtype=torch.int64) for h in HEAD_NAMES},
            {h: torch.zeros(1) for h in HEAD_NAMES},
            values=torch.tensor([100.0]),  # Q(s, op): stored for the critic, not the baseline
            masks={h: torch.ones(1, s, dtype=torch.bool) for h, s in sizes.items()},
            rewards=torch.tensor([1.0]),
            terminated=torch.tensor([t == 1]),
            truncated=torch.tensor([False]),
            executed_op=torch.zeros(1, dtype=torch.int64),
            hidden=(torch.zeros(1, 1, HID), torch.zeros(1, 1, HID)),
            state_values=torch.tensor([0.5]),
        )
    buf.compute_returns_and_advantages(torch.tensor([0.0]), 1.0, 1.0)
    torch.testing.assert_close(buf.advantages, torch.tensor([[1.5, 0.5]]))
    torch.testing.assert_close(buf.returns, torch.tensor([[2.0, 1.0]]))


def test_round_trip_sequences_split_at_episode_ends_with_null_padding() -> None:
    buf = _buf(2, 5)
    bps = []
    for t in range(5):
        bp = torch.tensor([[t, -1, 12], [-1, -1, t]])
        bps.append(bp)
        _step(buf, 2, t, bp=bp, term=[t == 1, False], trunc=[False, t == 3], boot=[0.0, 1.0])
    buf.compute_returns_and_advantages(torch.zeros(2), 0.99, 0.95)
    batch = buf.get_batched_sequences()
    # env 0: [0,1] | [2,3,4]; env 1: [0..3] | [4]
    assert buf.segments() == [(0, 0, 2), (0, 2, 3), (1, 0, 4), (1, 4, 1)]
    assert batch.features.shape == (4, 4, OBS)
    assert batch.blueprint_indices.shape == (4, 4, SLOTS)
    assert batch.blueprint_indices.dtype == torch.int64
    assert batch.valid.tolist() == [
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, True],
        [True, False, False, False],
    ]
    for row, (env, start, length) in enumerate(buf.segments()):
        for k in range(length):
            assert batch.blueprint_indices[row, k].tolist() == bps[start + k][env].tolist()
            assert batch.actions["op"][row, k] == (start + k) % 6
        assert bool((batch.blueprint_indices[row, length:] == NULL_BLUEPRINT).all())
        # padding never has an all-False mask ("all-false masks") and never counts
        for m in batch.masks.values():
            assert bool(m[row, length:].all())
        # the sequence starts from the LSTM state stored before its first step
        assert float(batch.hidden[0][0, row, 0]) == float(start)
        assert float(batch.hidden[1][0, row, 0]) == -float(start)
        assert int(batch.env_index[row]) == env
    assert batch.hidden[0].shape == (1, 4, HID)
    sub = batch.select(torch.tensor([2]))
    assert sub.features.shape == (1, 4, OBS) and sub.hidden[0].shape == (1, 1, HID)


def test_sequences_are_validated_by_the_contracts_batch_model() -> None:
    buf = _buf(1, 3)
    for t in range(3):
        _step(buf, 1, t)
    buf.compute_returns_and_advantages(torch.zeros(1), 0.99, 0.95)
    buf.get_batched_sequences()  # fine as stored
    buf.blueprint_indices[0, 1, 0] = 13  # no such blueprint: corrupt storage
    with contracts.mode("full"), pytest.raises(pydantic.ValidationError, match="blueprint"):
        buf.get_batched_sequences()
    buf.blueprint_indices[0, 1, 0] = 2
    buf.masks["slot"] = torch.ones(1, 3, SLOTS + 1, dtype=torch.bool)  # wrong width
    with pytest.raises(pydantic.ValidationError, match="slot"):
        buf.get_batched_sequences()


def test_seq_len_chunks_long_episodes() -> None:
    buf = _buf(1, 5)
    for t in range(5):
        _step(buf, 1, t)
    buf.compute_returns_and_advantages(torch.zeros(1), 0.99, 0.95)
    assert buf.segments(seq_len=2) == [(0, 0, 2), (0, 2, 2), (0, 4, 1)]
    assert buf.get_batched_sequences(seq_len=2).features.shape == (3, 2, OBS)


def test_bad_input_is_rejected_with_a_clear_message() -> None:
    buf = _buf(2, 1)
    with pytest.raises(ValueError, match=r"blueprint_indices.shape=\(2, 2\)"):
        _step(buf, 2, 0, bp=torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="bootstrap_values"):
        _step(buf, 2, 0, trunc=[True, False])
    with pytest.raises(RuntimeError, match="compute_returns_and_advantages"):
        buf.get_batched_sequences()
    _step(buf, 2, 0)
    with pytest.raises(RuntimeError, match="full"):
        _step(buf, 2, 1)
    buf.reset()
    assert int(buf.pos.sum()) == 0
