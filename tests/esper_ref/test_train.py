"""The training loop on the built-in env: bootstrap modes, resume bit-exactness, learning."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from reflib import tiny_config as _tiny

from esper_ref.config import TrainConfig
from esper_ref.evaluation import evaluate_checkpoint, run_episodes
from esper_ref.run_io import CHECKPOINT_NAME, CURVE_NAME, METRICS_NAME, load_checkpoint
from esper_ref.schedule import LRSchedule
from esper_ref.train import RunningMeanStd, Trainer, make_env


def _params(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.policy.parameters()]


def test_resume_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = _tiny()
    straight = Trainer(cfg)
    straight.train()
    assert straight.update_idx == 4

    first = Trainer(cfg, out_dir=tmp_path)
    first.train(max_updates=2)
    assert first.update_idx == 2
    del first
    torch.manual_seed(999)  # whatever happens in between must not matter
    resumed = Trainer.resume(tmp_path / CHECKPOINT_NAME, out_dir=tmp_path)
    assert resumed.update_idx == 2
    resumed.train()
    assert resumed.update_idx == 4 and resumed.global_step == straight.global_step
    for a, b in zip(_params(straight), _params(resumed), strict=True):
        assert torch.equal(a, b)
    assert resumed.episode_returns == straight.episode_returns
    with (tmp_path / METRICS_NAME).open() as fh:
        assert [r["update"] for r in csv.DictReader(fh)] == ["1", "2", "3", "4"]


def test_checkpoint_holds_everything_needed(tmp_path: Path) -> None:
    trainer = Trainer(_tiny(total_steps=4 * 30), out_dir=tmp_path)
    result = trainer.train()
    assert result.checkpoint == tmp_path / CHECKPOINT_NAME
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    for key in ("policy", "optimizer", "obs_rms", "counters", "rng", "env", "config", "rollout"):
        assert key in state, key
    assert set(state["rng"]) == {"torch", "numpy", "python"}
    assert state["counters"]["global_step"] == 4 * 30
    assert (tmp_path / CURVE_NAME).stat().st_size > 0
    umask = os.umask(0o022)
    os.umask(umask)
    for name in (CHECKPOINT_NAME, CURVE_NAME, METRICS_NAME):  # not left owner-only by mkstemp
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    returns = evaluate_checkpoint(tmp_path / CHECKPOINT_NAME, episodes=3)
    assert len(returns) == 3 and all(isinstance(r, float) for r in returns)


def test_bad_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable esper-ref checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(ValueError, match="num_envs=0"):
        TrainConfig(num_envs=0).validate()


@pytest.mark.parametrize("mode", ["greedy", "expected"])
def test_truncation_bootstrap_modes(mode: str) -> None:
    """Time-limit steps store the post-step value from the chosen mode; nothing else does."""
    cfg = _tiny(bootstrap=mode, episode_length=5, num_steps=12, total_steps=4 * 12)
    trainer = Trainer(cfg)
    calls: dict[str, int] = {"greedy": 0, "expected": 0}
    policy = trainer.policy
    get_action, expected_value = policy.get_action, policy.expected_value

    def spy_action(*a: object, **k: object) -> object:
        if k.get("deterministic"):
            calls["greedy"] += 1
        return get_action(*a, **k)  # type: ignore[arg-type]

    def spy_expected(*a: object, **k: object) -> object:
        calls["expected"] += 1
        return expected_value(*a, **k)  # type: ignore[arg-type]

    policy.get_action = spy_action  # type: ignore[method-assign]
    policy.expected_value = spy_expected  # type: ignore[method-assign]
    trainer.collect_rollout()
    buf = trainer.buffer
    assert bool(buf.truncated.any())
    # Every episode here is cut by the time limit (or terminated): truncated rows bootstrap.
    trunc = buf.truncated & ~buf.terminated
    assert bool((buf.bootstrap_values[trunc] != 0).all())
    assert bool((buf.bootstrap_values[~trunc] == 0).all())
    # truncation rounds: 2 (steps 5 and 10); the baseline V(s) of stored steps comes with
    # get_action, so expected_value runs only for the state after the rollout.
    if mode == "greedy":
        assert calls["greedy"] == 2
        assert calls["expected"] == 1
    else:
        assert calls["greedy"] == 0
        assert calls["expected"] == 2 + 1


def test_stored_baseline_equals_the_per_step_expected_value() -> None:
    trainer = Trainer(_tiny(episode_length=7, num_steps=16))
    trainer.collect_rollout()
    buf, policy = trainer.buffer, trainer.policy
    for t in range(buf.max_steps):
        per_step = policy.expected_value(
            buf.features[:, t],
            buf.blueprint_indices[:, t],
            {h: m[:, t] for h, m in buf.masks.items()},
            hidden=(buf.hidden_h[None, :, t], buf.hidden_c[None, :, t]),
        )
        torch.testing.assert_close(buf.state_values[:, t], per_step, atol=1e-5, rtol=1e-4)


def test_greedy_and_expected_bootstrap_values_are_what_they_claim() -> None:
    cfg = _tiny()
    trainer = Trainer(cfg)
    obs = trainer.obs
    feats = trainer._features(obs.features)
    hidden = trainer.hidden
    q_all = trainer.policy.get_value(feats, obs.blueprint_indices, hidden)
    greedy = trainer._bootstrap_value(feats, obs.blueprint_indices, obs.masks, hidden)
    op = trainer.policy.get_action(
        feats, obs.blueprint_indices, obs.masks, hidden=hidden, deterministic=True
    ).sampled_op
    torch.testing.assert_close(greedy, q_all.gather(-1, op[:, None]).squeeze(-1))
    trainer.config.bootstrap = "expected"
    expected = trainer._bootstrap_value(feats, obs.blueprint_indices, obs.masks, hidden)
    pi = trainer.policy.get_action(feats, obs.blueprint_indices, obs.masks, hidden=hidden).op_probs
    torch.testing.assert_close(expected, (pi * q_all).sum(-1))


@pytest.mark.parametrize("every", [1, 7])
def test_each_step_is_normalised_by_the_earlier_blocks_of_steps(every: int) -> None:
    trainer = Trainer(_tiny(obs_norm_every=every))
    assert trainer.obs_rms is not None
    seen = [trainer.obs.features.clone()]
    step = trainer.env.step

    def recording_step(actions: object) -> object:
        out = step(actions)
        seen.append(out[0].features.clone())
        return out

    trainer.env.step = recording_step
    # Skewed statistics make the normalisation visible in what the buffer stores.
    trainer.obs_rms.mean += 0.5
    trainer.obs_rms.var *= 4.0
    replay = RunningMeanStd(seen[0].shape[-1])
    replay.load_state_dict(trainer.obs_rms.state_dict())
    trainer.collect_rollout()
    stored = trainer.buffer.features.transpose(0, 1)  # buffer: [env, step, dim]
    acted_on = seen[:-1]  # the last one is the next rollout's first
    for start in range(0, len(acted_on), every):  # blocks of 7: 7, 7, 7, 7, 2 steps
        block = acted_on[start : start + every]
        for t, raw in enumerate(block, start):
            torch.testing.assert_close(stored[t], replay.normalize(raw), msg=f"step {t}")
        replay.update(torch.cat(block))
    torch.testing.assert_close(trainer.obs_rms.mean, replay.mean)
    torch.testing.assert_close(trainer.obs_rms.var, replay.var)
    assert trainer.obs_rms.count == pytest.approx(replay.count)


def test_ablation_hides_blueprints_from_the_policy() -> None:
    trainer = Trainer(_tiny(use_blueprint_indices=False, total_steps=4 * 30))
    trainer.collect_rollout()
    assert bool((trainer.buffer.blueprint_indices == -1).all())
    assert bool((trainer.obs.blueprint_indices >= 0).any())  # the env does have them


@pytest.mark.slow
def test_short_training_run_improves_the_return() -> None:
    # The default recipe with a smaller network: 30 updates, 24k env steps. Judged by the
    # greedy policy on the same 64 fresh episodes before and after (training returns are
    # noisy at this length).
    cfg = TrainConfig(
        total_steps=16 * 50 * 30,
        feature_dim=64,
        lstm_hidden_dim=64,
        head_hidden_dim=64,
        value_hidden_dim=64,
        seed=0,
    )
    trainer = Trainer(cfg)
    env = make_env(cfg, num_envs=64, seed=777)
    before = float(np.mean(run_episodes(env, trainer.policy, 64, trainer.obs_rms, seed=777)))
    rows: list[dict[str, float]] = []
    trainer.train(on_update=rows.append)
    after = float(np.mean(run_episodes(env, trainer.policy, 64, trainer.obs_rms, seed=777)))
    assert after > before + 0.5, (before, after)
    early = sum(r["episode_return_mean"] for r in rows[:3]) / 3
    late = sum(r["episode_return_mean"] for r in rows[-5:]) / 5
    assert late > early, (early, late)


def test_evaluation_during_training_leaves_the_run_unchanged(tmp_path: Path) -> None:
    quiet = Trainer(_tiny(eval_every=0))
    quiet.train()
    watched = Trainer(_tiny(eval_every=1, eval_episodes=4), out_dir=tmp_path)
    watched.train()
    for a, b in zip(_params(quiet), _params(watched), strict=True):
        assert torch.equal(a, b)
    with (tmp_path / "eval.csv").open() as fh:
        evals = list(csv.DictReader(fh))
    assert [r["update"] for r in evals] == ["1", "2", "3", "4"]
    assert all(r["episodes"] == "4" for r in evals)
    best = max(evals, key=lambda r: float(r["eval_return_mean"]))
    assert best["best"] == "1"
    saved = load_checkpoint(tmp_path / "best.pt")
    assert saved["counters"]["update"] == int(best["update"])


def test_metrics_integers_and_kl_stops_are_counted(tmp_path: Path) -> None:
    trainer = Trainer(_tiny(target_kl=1e-9, eval_every=0), out_dir=tmp_path)
    result = trainer.train()
    with (tmp_path / METRICS_NAME).open() as fh:
        table = list(csv.DictReader(fh))
    for r in table:
        for col in ("update", "global_step", "episodes", "opt_steps", "early_stopped"):
            assert r[col].lstrip("-").isdigit(), (col, r[col])
    # A KL target this small stops every update before its second optimiser step.
    assert result.kl_stops == 4 == sum(int(r["early_stopped"]) for r in table)
    assert any("KL early stop" in line and "4 of 4" in line for line in trainer.summary())


def test_lr_schedule_pieces_and_extensions() -> None:
    sched = LRSchedule.for_config(_tiny(learning_rate=1e-3, total_steps=4 * 30 * 10))
    assert sched.rate(1) == pytest.approx(1e-3)
    assert sched.rate(6) == pytest.approx(5e-4)
    assert sched.rate(10) == pytest.approx(1e-4)
    done = sched.extend(10, 20, "constant")
    assert [done.rate(u) for u in (10, 11, 20)] == pytest.approx([1e-4, 1e-4, 1e-4])
    mid = sched.extend(5, 20, "reanneal")  # extended before the end: from the next rate on
    assert mid.rate(5) == pytest.approx(sched.rate(5))
    assert mid.rate(6) == pytest.approx(sched.rate(6))
    assert mid.rate(20) == pytest.approx(sched.rate(6) / 15)
    assert LRSchedule.from_state(mid.to_state()) == mid
    flat = LRSchedule.for_config(_tiny(anneal_lr=False, learning_rate=3e-4))
    assert flat.rate(1) == flat.rate(4) == pytest.approx(3e-4)


def test_resume_with_more_steps_continues_the_rate_it_had(tmp_path: Path) -> None:
    first = Trainer(_tiny(), out_dir=tmp_path)
    first.train()
    last_lr = first.schedule.rate(4)
    with pytest.raises(ValueError, match="--extend constant"):
        Trainer.resume(tmp_path, overrides={"total_steps": 4 * 30 * 6})
    resumed = Trainer.resume(tmp_path, overrides={"total_steps": 4 * 30 * 6}, extend="reanneal")
    rows: list[dict[str, float]] = []
    resumed.train(on_update=rows.append)
    assert [int(r["update"]) for r in rows] == [5, 6]
    assert rows[0]["learning_rate"] == pytest.approx(last_lr)  # no jump
    assert rows[1]["learning_rate"] < rows[0]["learning_rate"]
    with pytest.raises(ValueError, match="cannot change seed"):
        Trainer.resume(tmp_path, overrides={"seed": 3})


def test_resume_into_another_folder_copies_the_history(tmp_path: Path) -> None:
    src, dest = tmp_path / "a", tmp_path / "b"
    Trainer(_tiny(eval_every=1, eval_episodes=2), out_dir=src).train(max_updates=2)
    resumed = Trainer.resume(src, out_dir=dest)
    resumed.train()
    with (dest / METRICS_NAME).open() as fh:
        assert [r["update"] for r in csv.DictReader(fh)] == ["1", "2", "3", "4"]
    with (src / METRICS_NAME).open() as fh:
        assert [r["update"] for r in csv.DictReader(fh)] == ["1", "2"]
    with pytest.raises(ValueError, match="would replace the run's later"):
        Trainer.resume(src / "best.pt")


def test_trainer_refuses_a_folder_that_holds_a_run(tmp_path: Path) -> None:
    Trainer(_tiny(total_steps=4 * 30), out_dir=tmp_path).train()
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(ValueError, match="holds a run already"):
        Trainer(_tiny(), out_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
