"""The built-in slot lifecycle environment: interface, rules, determinism and task scale."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from contracts.phase4 import HEAD_NAMES, NUM_BLUEPRINTS, Op, head_sizes, obs_dim
from esper_ref.env import (
    EnvObs,
    SlotLifecycleGymEnv,
    SlotLifecycleVecEnv,
    Stage,
    feature_names,
    oracle_actions,
    random_actions,
    random_return,
    scripted_oracle_return,
    target_return,
)
from esper_ref.env import tables as T


def _actions(n: int, **heads: int) -> dict[str, torch.Tensor]:
    return {h: torch.full((n,), heads.get(h, 0), dtype=torch.int64) for h in HEAD_NAMES}


def _rollout(env: SlotLifecycleVecEnv, steps: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    obs = env.observation
    out = []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(random_actions(obs.masks, gen))
        out += [obs.features, obs.blueprint_indices, reward, terminated, truncated]
        out += [info["executed_op"], info["final_obs"].features]
    return out


def test_observation_matches_the_contract() -> None:
    env = SlotLifecycleVecEnv(num_envs=8, num_slots=3, seed=1)
    obs = env.reset()
    assert isinstance(obs, EnvObs)
    assert obs.features.shape == (8, obs_dim(3)) == (8, 114)
    assert obs.features.dtype == torch.float32
    assert obs.blueprint_indices.shape == (8, 3) and obs.blueprint_indices.dtype == torch.int64
    assert int(obs.blueprint_indices.min()) >= -1
    assert int(obs.blueprint_indices.max()) < NUM_BLUEPRINTS
    assert set(obs.masks) == set(HEAD_NAMES)
    for h, size in head_sizes(3).items():
        assert obs.masks[h].shape == (8, size) and obs.masks[h].dtype == torch.bool


def test_feature_names_describe_the_columns() -> None:
    names = feature_names(3)
    assert len(names) == obs_dim(3) and len(set(names)) == len(names)
    env = SlotLifecycleVecEnv(num_envs=16, seed=2)
    env.reset()
    _rollout(env, 7)
    f, hs = env.observation.features, env.hidden_state()
    col = {n: i for i, n in enumerate(names)}
    for s in range(3):
        assert torch.allclose(f[:, col[f"slot{s}.alpha"]], hs["alpha"][:, s])
        assert torch.allclose(f[:, col[f"slot{s}.maturity"]], hs["maturity"][:, s])
        for st in Stage:
            expected = (hs["stage"][:, s] == st).float()
            assert torch.equal(f[:, col[f"slot{s}.stage_{st.name.lower()}"]], expected)
    assert torch.allclose(f[:, col["epoch_fraction"]], hs["t"].float() / env.episode_length)
    for op in Op:
        expected = env.observation.masks["op"][:, op].float()
        assert torch.equal(f[:, col[f"op_allowed_{op.name.lower()}"]], expected)


@pytest.mark.parametrize("num_slots", [1, 2, 4])
def test_other_slot_counts(num_slots: int) -> None:
    env = SlotLifecycleVecEnv(num_envs=4, num_slots=num_slots, seed=0)
    env.reset()
    out = _rollout(env, 30)
    assert out[0].shape == (4, obs_dim(num_slots))
    assert env.observation.masks["slot"].shape == (4, num_slots)


def test_same_seed_same_trajectory_other_seed_differs() -> None:
    a, b, c = (SlotLifecycleVecEnv(num_envs=16, seed=s) for s in (7, 7, 8))
    for env in (a, b, c):
        env.reset()
    ra, rb, rc = _rollout(a, 60), _rollout(b, 60), _rollout(c, 60)
    assert all(torch.equal(x, y) for x, y in zip(ra, rb, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(ra, rc, strict=True))
    # reset(seed) restarts the same sequence.
    a.reset(seed=7)
    assert all(torch.equal(x, y) for x, y in zip(_rollout(a, 60), ra, strict=True))


def test_state_dict_resumes_bit_for_bit() -> None:
    env = SlotLifecycleVecEnv(num_envs=16, seed=3)
    env.reset()
    _rollout(env, 37, seed=1)
    saved = env.state_dict()
    expected = _rollout(env, 40, seed=2)
    fresh = SlotLifecycleVecEnv(num_envs=16, seed=999)
    fresh.load_state_dict(saved)
    got = _rollout(fresh, 40, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(got, expected, strict=True))
    with pytest.raises(ValueError, match="config"):
        SlotLifecycleVecEnv(num_envs=4).load_state_dict(saved)


def test_masks_always_allow_something_and_invalid_requests_never_run() -> None:
    env = SlotLifecycleVecEnv(num_envs=32, seed=5)
    obs = env.reset()
    gen = torch.Generator().manual_seed(0)
    executed_ops = torch.zeros(len(Op), dtype=torch.int64)
    for _ in range(150):
        for h in HEAD_NAMES:
            assert bool(obs.masks[h].any(1).all()), h
        # Requests drawn ignoring the masks entirely: the env must refuse what is not allowed.
        act = {h: torch.randint(0, n, (32,), generator=gen) for h, n in head_sizes(3).items()}
        stage_before = env.hidden_state()["stage"].clone()
        masks = obs.masks
        obs, _, _, _, info = env.step(act)
        ex = info["executed_op"]
        ran = ex != Op.WAIT
        rows = torch.arange(32)
        assert bool((ex[ran] == act["op"][ran]).all())
        assert bool(masks["op"][rows, ex].all())
        assert bool(masks["slot"][rows[ran], act["slot"][ran]].all())
        germ = ex == Op.GERMINATE
        assert bool(masks["blueprint"][rows[germ], act["blueprint"][germ]].all())
        # The op was legal for the stage the chosen slot was in.
        st = stage_before[rows, act["slot"]]
        legal = {
            Op.GERMINATE: st == Stage.EMPTY,
            Op.SET_ALPHA_TARGET: (st == Stage.BLENDING) | (st == Stage.HOLDING),
            Op.PRUNE: (st >= Stage.TRAINING) & (st <= Stage.HOLDING),
            Op.FOSSILIZE: st == Stage.HOLDING,
            Op.ADVANCE: st == Stage.TRAINING,
        }
        for op, ok in legal.items():
            assert bool(ok[ex == op].all()), op
        assert torch.equal(info["fell_back"], ex != act["op"])
        executed_ops += torch.bincount(ex, minlength=len(Op))
    assert bool((executed_ops > 0).all()), executed_ops  # every op actually happens


def test_jointly_invalid_combination_falls_back_to_wait() -> None:
    env = SlotLifecycleVecEnv(num_envs=2, num_slots=2, seed=0, preplant_prob=0.0)
    obs = env.reset()
    assert bool((obs.blueprint_indices == -1).all())
    # Empty slots: GERMINATE is the only op besides WAIT.
    assert obs.masks["op"][0].tolist() == [True, True, False, False, False, False]
    _, _, _, _, info = env.step(_actions(2, op=Op.PRUNE, slot=1))
    assert info["executed_op"].tolist() == [Op.WAIT, Op.WAIT]
    assert info["fell_back"].all()
    offered = env.observation.masks["blueprint"][0].nonzero().flatten()
    refused = int((~env.observation.masks["blueprint"][0]).nonzero()[0])
    obs, _, _, _, info = env.step(_actions(2, op=Op.GERMINATE, slot=1, blueprint=refused))
    assert info["executed_op"][0] == Op.WAIT and bool((obs.blueprint_indices == -1).all())
    b = int(offered[0])
    act = _actions(2, op=Op.GERMINATE, slot=1, blueprint=b)
    obs, _, _, _, info = env.step(act)
    assert info["executed_op"][0] == Op.GERMINATE
    assert obs.blueprint_indices[0].tolist() == [-1, b]
    # Now slot 1 is TRAINING: ADVANCE on slot 0 (empty) is refused, on slot 1 it runs.
    _, _, _, _, info = env.step(_actions(2, op=Op.ADVANCE, slot=0))
    assert info["executed_op"][0] == Op.WAIT
    _, _, _, _, info = env.step(_actions(2, op=Op.ADVANCE, slot=1))
    assert info["executed_op"][0] == Op.ADVANCE


def test_each_offered_blueprint_is_planted_at_most_once() -> None:
    env = SlotLifecycleVecEnv(num_envs=1, num_slots=3, seed=0, preplant_prob=0.0)
    obs = env.reset()
    offered = obs.masks["blueprint"][0].nonzero().flatten().tolist()
    assert len(offered) == T.AVAILABLE_BLUEPRINTS
    for slot, b in enumerate(offered):
        assert obs.masks["op"][0, Op.GERMINATE]
        obs, _, _, _, info = env.step(_actions(1, op=Op.GERMINATE, slot=slot, blueprint=b))
        assert info["executed_op"][0] == Op.GERMINATE
        assert not env.hidden_state()["avail"][0, b]
    # Offers spent: GERMINATE is masked out although a slot is empty, and the blueprint head
    # (irrelevant now) allows everything rather than nothing.
    assert bool((obs.blueprint_indices[0] == -1).any())
    assert not obs.masks["op"][0, Op.GERMINATE]
    assert bool(obs.masks["blueprint"].all())
    _, _, _, _, info = env.step(_actions(1, op=Op.GERMINATE, slot=2, blueprint=offered[0]))
    assert info["executed_op"][0] == Op.WAIT


def test_reward_by_hand_and_fossilizing_everything_terminates() -> None:
    L = 25
    env = SlotLifecycleVecEnv(num_envs=1, num_slots=1, episode_length=L, preplant_prob=0.0)
    obs = env.reset(seed=4)
    b = int(obs.masks["blueprint"][0].nonzero()[0])
    style = int(env.style_fit[b].argmax())
    q = float(env.hidden_state()["q_ep"][0, b, 0])
    fit = float(env.style_fit[b, style])
    obs, r, *_ = env.step(_actions(1, op=Op.GERMINATE, blueprint=b, style=style, alpha_target=2))
    assert math.isclose(float(r), -T.GERMINATE_COST - T.RENT, abs_tol=1e-6)
    # ADVANCE: FAST tempo blends linearly over 3 epochs; after this epoch alpha = 1/3, age 2.
    _, r, *_ = env.step(_actions(1, op=Op.ADVANCE))
    m = 1 - math.exp(-2 / T.MATURITY_EPOCHS)
    expected = q * fit * m / 3 - T.RENT - T.SHOCK / 9
    assert math.isclose(float(r), expected, abs_tol=1e-5)
    for _ in range(2):
        obs, r, *_ = env.step(_actions(1))
    assert int(env.hidden_state()["stage"][0, 0]) == Stage.HOLDING
    assert obs.masks["op"][0, Op.FOSSILIZE]
    _, r, terminated, truncated, info = env.step(_actions(1, op=Op.FOSSILIZE))
    # Fossilizing freezes maturity where it was (age 4), and pays the frozen seed's gain for
    # this epoch and every remaining one, with no rent.
    m = 1 - math.exp(-4 / T.MATURITY_EPOCHS)
    assert math.isclose(float(r), q * fit * m * (1 + L - 5), rel_tol=1e-5)
    assert bool(terminated[0]) and not bool(truncated[0])
    assert int(info["episode_length"][0]) == 5


def test_auto_reset_and_final_obs() -> None:
    env = SlotLifecycleVecEnv(num_envs=64, seed=2)
    obs = env.reset()
    gen = torch.Generator().manual_seed(0)
    seen_end = False
    for _ in range(60):
        obs, _, terminated, truncated, info = env.step(random_actions(obs.masks, gen))
        done = terminated | truncated
        final: EnvObs = info["final_obs"]
        assert final.features.shape == obs.features.shape
        # Rows still running: next_obs is the post-step state itself.
        assert torch.equal(obs.features[~done], final.features[~done])
        assert torch.equal(obs.blueprint_indices[~done], final.blueprint_indices[~done])
        if bool(done.any()):
            seen_end = True
            # Ended rows restart at epoch 0; final_obs holds the epoch they ended at.
            assert bool((obs.features[done, 0] == 0).all())
            lengths = info["episode_length"][done].float()
            assert torch.allclose(final.features[done, 0], lengths / env.episode_length)
            assert bool((info["episode_length"][done] >= 1).all())
            assert bool(info["episode_return"][done].isfinite().all())
    assert seen_end


@pytest.mark.parametrize("policy", ["random", "oracle"])
def test_both_termination_and_truncation_occur(policy: str) -> None:
    env = SlotLifecycleVecEnv(num_envs=64, seed=11)
    obs = env.reset()
    gen = torch.Generator().manual_seed(0)
    n_term = n_trunc = 0
    for _ in range(100):
        act = random_actions(obs.masks, gen) if policy == "random" else oracle_actions(env)
        obs, _, terminated, truncated, _ = env.step(act)
        assert not bool((terminated & truncated).any())
        n_term += int(terminated.sum())
        n_trunc += int(truncated.sum())
    assert n_term > 0 and n_trunc > 0


def test_features_hide_blueprints_but_the_reward_depends_on_them() -> None:
    n = 512
    env = SlotLifecycleVecEnv(num_envs=n, seed=0, preplant_prob=1.0)
    env.reset()
    q = env.quality  # [13, 3]
    good, bad = q.argmax(0), q.argmin(0)
    assert bool((q[bad, torch.arange(3)] < 0).all())
    envs, mean_reward = {}, {}
    for name, blueprints in (("good", good), ("bad", bad)):
        # The same hidden state except for which blueprint each seed is.
        state = env.state_dict()
        state["slot"]["blueprint"][:] = blueprints
        envs[name] = SlotLifecycleVecEnv(num_envs=n, seed=0, preplant_prob=1.0)
        envs[name].load_state_dict(state)
    first_good, first_bad = envs["good"].observation, envs["bad"].observation
    assert torch.equal(first_good.features, first_bad.features)
    assert not torch.equal(first_good.blueprint_indices, first_bad.blueprint_indices)
    for name, e in envs.items():
        mean_reward[name] = torch.stack([e.step(_actions(n))[1] for _ in range(3)]).mean()
    assert float(mean_reward["good"]) > float(mean_reward["bad"]) + 0.1


def test_oracle_beats_random_and_blind_oracle_clearly() -> None:
    oracle = scripted_oracle_return(512, seed=0)
    blind = scripted_oracle_return(512, seed=0, blind=True)
    rand = random_return(512, seed=0)
    assert oracle > rand + 5.0
    # Knowing the blueprints in the slots is worth more than the 20% the target allows.
    assert blind < 0.8 * oracle
    assert blind > rand + 2.0
    assert math.isclose(target_return(512, seed=0), 0.8 * oracle, rel_tol=1e-6)


def test_oracle_requests_are_always_legal() -> None:
    env = SlotLifecycleVecEnv(num_envs=64, seed=9)
    env.reset()
    for blind in (False, True):
        for _ in range(50):
            act = oracle_actions(env, blind=blind)
            _, _, _, _, info = env.step(act)
            assert not bool(info["fell_back"].any())


def test_bad_actions_get_clear_errors() -> None:
    env = SlotLifecycleVecEnv(num_envs=4)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(_actions(4))
    env.reset()
    act = _actions(4)
    del act["tempo"]
    with pytest.raises(KeyError, match="tempo"):
        env.step(act)
    with pytest.raises(ValueError, match="slot"):
        env.step({**_actions(4), "slot": torch.zeros(3, dtype=torch.int64)})
    with pytest.raises(ValueError, match="alpha_curve"):
        env.step({**_actions(4), "alpha_curve": torch.full((4,), 5)})
    with pytest.raises(TypeError, match="integer"):
        env.step({h: torch.zeros(4) for h in HEAD_NAMES})
    with pytest.raises(ValueError, match="num_envs"):
        SlotLifecycleVecEnv(num_envs=0)


def test_gymnasium_wrapper_passes_check_env_and_runs_episodes() -> None:
    from gymnasium.utils.env_checker import check_env

    env = SlotLifecycleGymEnv(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape == (114 + 3 * NUM_BLUEPRINTS,)
    assert list(env.action_space.nvec) == [head_sizes(3)[h] for h in HEAD_NAMES]
    rng = np.random.default_rng(0)
    episodes, ended_by = 0, set()
    for _ in range(300):
        mask = env.action_masks()
        assert mask.dtype == bool and mask.shape == (sum(head_sizes(3).values()),)
        action, start = [], 0
        for size in env.action_space.nvec:
            allowed = np.flatnonzero(mask[start : start + size])
            action.append(rng.choice(allowed))
            start += size
        obs, reward, terminated, truncated, info = env.step(np.array(action))
        assert env.observation_space.contains(obs) and np.isfinite(reward)
        if terminated or truncated:
            ended_by.add("terminated" if terminated else "truncated")
            assert "episode_return" in info
            episodes += 1
            obs, _ = env.reset()
    assert episodes >= 10
    # The one-hot tail shows the blueprints; the ablation hides them.
    vec = SlotLifecycleVecEnv(num_envs=1, seed=3)
    vobs = vec.reset(seed=3)
    obs, _ = env.reset(seed=3)
    tail = obs[114:].reshape(3, NUM_BLUEPRINTS)
    for s, b in enumerate(vobs.blueprint_indices[0].tolist()):
        assert tail[s].sum() == (b >= 0) and (b < 0 or tail[s, b] == 1)
    blind, _ = SlotLifecycleGymEnv(hide_blueprints=True).reset(seed=3)
    assert np.array_equal(blind[:114], obs[:114]) and not blind[114:].any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_shapes_and_runs() -> None:
    env = SlotLifecycleVecEnv(num_envs=64, seed=0, device="cuda")
    obs = env.reset()
    for _ in range(40):
        obs, r, *_ = env.step(oracle_actions(env))
    assert obs.features.is_cuda and r.is_cuda and obs.features.shape == (64, 114)
