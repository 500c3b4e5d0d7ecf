"""The GPU path: training, checkpoints and the update on CUDA (``bench/gpu_check.sh`` runs
these on a GPU machine; without CUDA every test here is skipped)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from reflib import tiny_config

from contracts.phase4 import relevance_table
from esper_ref.buffer import SequenceBatch
from esper_ref.config import TrainConfig
from esper_ref.ppo import PPO, normalize_advantages, ppo_loss
from esper_ref.run_io import CHECKPOINT_NAME, load_checkpoint
from esper_ref.train import Trainer

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _tiny(**kw: object) -> TrainConfig:
    """``tiny_config`` with one minibatch (the whole batch) and 2 updates."""
    return tiny_config(**{"total_steps": 4 * 30 * 2, "num_minibatches": 1, **kw})


def test_training_on_cuda_keeps_everything_on_the_gpu(tmp_path: Path) -> None:
    trainer = Trainer(_tiny(device="cuda"), out_dir=tmp_path)
    trainer.train()
    assert all(p.is_cuda for p in trainer.policy.parameters())
    assert trainer.obs.features.is_cuda and trainer.hidden[0].is_cuda
    assert len(trainer.episode_returns) > 0
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert "cuda" in state["rng"]  # sampling on the GPU draws from the CUDA generator


def test_resume_on_cuda_restores_the_cuda_random_stream(tmp_path: Path) -> None:
    trainer = Trainer(_tiny(device="cuda"), out_dir=tmp_path)
    trainer.train(max_updates=1)
    trainer.save_checkpoint()
    expected = torch.rand(8, device="cuda")
    torch.cuda.manual_seed(1234)
    Trainer.resume(tmp_path / CHECKPOINT_NAME, out_dir=tmp_path / "again")
    assert torch.equal(torch.rand(8, device="cuda"), expected)


@pytest.fixture
def full_fp32() -> Iterator[None]:
    """CUDA's float32 without TF32 (cuDNN's LSTM uses it by default on Ampere and later,
    ~1e-3 relative error), so a comparison with the CPU measures the code, not TF32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _to(value: object, device: str) -> object:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: t.to(device) for k, t in value.items()}
    if isinstance(value, tuple):
        return tuple(t.to(device) for t in value)
    return value


def _gradients(policy: object, cfg: TrainConfig, batch: SequenceBatch) -> dict[str, torch.Tensor]:
    """The gradient of the update's first step (one minibatch: the whole batch)."""
    adv = normalize_advantages(batch.advantages, batch.valid)
    sub = normalize_advantages(batch.returns - batch.values, batch.valid)
    batch = dataclasses.replace(
        batch, advantages=adv, sub_advantages=sub if cfg.q_baseline_for_heads else None
    )
    relevance = torch.tensor(relevance_table(), dtype=torch.bool, device=batch.valid.device)
    loss, _ = ppo_loss(policy, batch, cfg, relevance)
    loss.backward()  # type: ignore[no-untyped-call]
    named = policy.named_parameters()  # type: ignore[attr-defined]
    return {n: p.grad.detach().cpu() for n, p in named if p.grad is not None}


def test_the_update_on_cuda_matches_the_cpu_update(full_fp32: None) -> None:
    """Same rollout, same starting weights, one minibatch (no shuffle to differ): the same
    gradient to float tolerance, the same update decisions, and the same parameters after
    it, except where Adam amplifies a gradient at rounding level (its step is ~lr whatever
    the gradient's size, so such an element may move by up to lr the other way)."""
    cfg = _tiny()
    cpu = Trainer(cfg)
    start = {k: v.clone() for k, v in cpu.policy.state_dict().items()}
    cpu.collect_rollout()
    batch = cpu.buffer.get_batched_sequences(cfg.seq_len)
    on_gpu = Trainer(dataclasses.replace(cfg, device="cuda"))
    on_gpu.policy.load_state_dict(start)
    gpu_batch = dataclasses.replace(
        batch, **{f.name: _to(getattr(batch, f.name), "cuda") for f in dataclasses.fields(batch)}
    )

    g_cpu = _gradients(cpu.policy, cfg, batch)
    g_gpu = _gradients(on_gpu.policy, on_gpu.config, gpu_batch)
    assert g_cpu.keys() == g_gpu.keys() and g_cpu
    for name, g in g_cpu.items():
        scale = float(g.abs().max())
        torch.testing.assert_close(g_gpu[name], g, rtol=1e-3, atol=1e-5 * scale, msg=name)

    cpu.policy.load_state_dict(start)
    on_gpu.policy.load_state_dict(start)
    s_cpu = PPO(cpu.policy, cfg).update(batch)
    s_gpu = PPO(on_gpu.policy, on_gpu.config).update(gpu_batch)
    assert (s_gpu.opt_steps, s_gpu.early_stopped) == (s_cpu.opt_steps, s_cpu.early_stopped)
    assert s_gpu.approx_kl == pytest.approx(s_cpu.approx_kl, rel=1e-3, abs=1e-6)
    bound = 2 * cfg.learning_rate * s_cpu.opt_steps
    for name, p in cpu.policy.state_dict().items():
        diff = (on_gpu.policy.state_dict()[name].cpu() - p).abs()
        assert float(diff.max()) <= bound + 1e-4, name
        assert float((diff > 1e-4).float().mean()) <= 0.002, name


def test_cli_trains_on_cuda_and_evaluates_on_the_cpu(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "esper_ref"]
    small = ["--num-envs", "4", "--num-steps", "30", "--total-steps", "240"]
    small += ["--final-eval-episodes", "8", "--eval-every", "0"]
    done = subprocess.run(
        [*run, "train", "--device", "cuda", "--out-dir", str(tmp_path / "r"), *small],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "device cuda" in done.stdout
    done = subprocess.run(
        [*run, "evaluate", str(tmp_path / "r"), "--device", "cpu", "--episodes", "8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl needs a GPU per rank")
def test_two_ranks_train_on_two_gpus_with_nccl(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "esper_ref", "train", "--device", "cuda", "--nproc", "2"]
    cmd += ["--out-dir", str(tmp_path / "r"), "--num-envs", "4", "--num-steps", "30"]
    cmd += ["--total-steps", "480", "--final-eval-episodes", "8", "--eval-every", "2"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0,1")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 ranks" in done.stdout
    state = load_checkpoint(tmp_path / "r" / CHECKPOINT_NAME)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
