"""One rank of the distributed tests (``test_distributed.py`` starts it under torchrun).

``dist_worker.py update DATA OUT``: every rank takes its envs' rows of the saved rollouts and
runs one PPO update per case on them (and the observation normaliser on its rows); rank 0
saves the parameters. ``dist_worker.py train FOLDER CONFIG_JSON SPLIT``: trains ``SPLIT``
updates into FOLDER, checkpoints, then trains to the end; ``dist_worker.py resume FOLDER
CHECKPOINT``: resumes it into FOLDER and trains to the end. Rank 0 saves the final
parameters and episodes to ``FOLDER/final.pt``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

from esper_ref.config import TrainConfig
from esper_ref.distributed import Comm
from esper_ref.ppo import PPO
from esper_ref.train import RunningMeanStd, Trainer, make_policy


def update(data_path: str, out_path: str) -> None:
    comm = Comm.from_environment("cpu", timeout_s=60)
    data = torch.load(data_path, weights_only=False)
    results = []
    for case in data["cases"]:
        cfg = TrainConfig.from_dict(case["config"])
        batch = case["batch"]
        local = comm.local_count(cfg.num_envs)
        lo = comm.rank * local
        mine = (batch.env_index >= lo) & (batch.env_index < lo + local)
        part = batch.select(mine.nonzero().squeeze(1))
        part = dataclasses.replace(part, env_index=part.env_index - lo)
        policy = make_policy(cfg, data["obs_dim"])
        policy.load_state_dict(case["policy"])
        ppo = PPO(policy, cfg, comm)
        torch.manual_seed(case["update_seed"])  # rank 0 draws the minibatch split
        stats = ppo.update(part)
        results.append({"params": policy.state_dict(), "stats": dataclasses.asdict(stats)})
    obs = data["obs"]
    half = obs.shape[0] // comm.world_size
    rms = RunningMeanStd(obs.shape[1])
    for chunk in obs[comm.rank * half : (comm.rank + 1) * half].split(7):
        rms.update(chunk, comm)
    if comm.is_main:
        torch.save({"cases": results, "rms": rms.state_dict()}, out_path)
    comm.close(wait=True)


def _save_final(trainer: Trainer, folder: Path) -> None:
    if trainer.comm.is_main:
        torch.save(
            {
                "params": trainer.policy.state_dict(),
                "returns": trainer.episode_returns,
                "steps": trainer.episode_steps,
                "global_step": trainer.global_step,
            },
            folder / "final.pt",
        )


def train(folder: str, config_json: str, split: str) -> None:
    cfg = TrainConfig.from_dict(json.loads(config_json))
    comm = Comm.from_environment("cpu", timeout_s=60)
    trainer = Trainer(cfg, out_dir=folder, comm=comm)
    trainer.train(max_updates=int(split))
    trainer.save_checkpoint(Path(folder) / "split.pt")
    trainer.train()
    _save_final(trainer, Path(folder))
    comm.close(wait=True)


def resume(folder: str, checkpoint: str) -> None:
    comm = Comm.from_environment("cpu", timeout_s=60)
    torch.manual_seed(1234)  # whatever happens in between must not matter
    trainer = Trainer.resume(checkpoint, out_dir=folder, comm=comm)
    trainer.train()
    _save_final(trainer, Path(folder))
    comm.close(wait=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    task, *args = sys.argv[1:]
    {"update": update, "train": train, "resume": resume}[task](*args)
    # As esper_ref/__main__.py does for a rank: its work is done and written, so skip the
    # finalisation in which gloo's threads can abort the process.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
