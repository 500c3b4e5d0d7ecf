"""Why the KL early stop fires: the approximate KL of each minibatch, epoch by epoch.

Trains with the KL stop off (so every epoch runs) and records, before each optimiser step, the
approximate KL between the rollout policy and the current one on that minibatch, and per head.
For each config it prints the KL at the end of each epoch (median over updates), the share of
updates in which the configured ``target_kl`` would have stopped the update and after how many
optimiser steps, and the greedy return at the end.

    python bench/kl_stop.py --updates 60
    python bench/kl_stop.py --updates 60 --set learning_rate=1e-3 --set update_epochs=4

The last line reads ``stop_rate: X mean_steps_before_stop: Y``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from typing import Any

import numpy as np
import torch

from contracts.phase4 import HEAD_NAMES
from esper_ref import ppo as ppo_module
from esper_ref.config import TrainConfig
from esper_ref.evaluation import run_episodes
from esper_ref.train import Trainer, make_env


def _parse(assignments: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in assignments:
        key, _, raw = item.partition("=")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--updates", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="TrainConfig field=value")
    args = p.parse_args()
    torch.set_num_threads(1)
    base = TrainConfig(seed=args.seed)
    cfg = dataclasses.replace(base, **_parse(args.set))
    target_kl = cfg.target_kl
    cfg = dataclasses.replace(cfg, target_kl=None, total_steps=cfg.batch_size * args.updates)

    per_update: list[list[float]] = []
    per_head: list[dict[str, float]] = []
    original = ppo_module.ppo_loss

    def spy(bundle: Any, mb: Any, c: TrainConfig, relevance: torch.Tensor) -> Any:
        loss, info = original(bundle, mb, c, relevance)
        per_update[-1].append(info["approx_kl"])
        per_head.append(info.get("head_kl", {}))
        return loss, info

    ppo_module.ppo_loss = spy  # type: ignore[assignment]
    trainer = Trainer(cfg)
    for _ in range(args.updates):
        per_update.append([])
        trainer.train(max_updates=1)
    ppo_module.ppo_loss = original

    mbs = max(1, min(cfg.num_minibatches, cfg.num_envs))
    kl = np.array([u[: mbs * cfg.update_epochs] for u in per_update])  # [updates, steps]
    ends = kl[:, mbs - 1 :: mbs]  # last minibatch of each epoch
    print(
        f"config: lr {cfg.learning_rate} epochs {cfg.update_epochs} minibatches {mbs} "
        f"(~{cfg.batch_size // mbs} steps each) target_kl {target_kl} norm_adv {cfg.norm_adv}"
    )
    quart = max(1, args.updates // 4)
    for name, rows in (("first quarter", ends[:quart]), ("last quarter", ends[-quart:])):
        med = np.median(rows, axis=0)
        print(f"  KL at the end of each epoch, {name}: " + " ".join(f"{v:.4f}" for v in med))
    if per_head and per_head[-1]:
        heads = {h: float(np.median([d[h] for d in per_head if d])) for h in HEAD_NAMES}
        print(
            "  median per-head KL over all minibatches: "
            + " ".join(f"{h} {v:.4f}" for h, v in heads.items())
        )
    if target_kl is None:
        stop_rate, steps = 0.0, float(kl.shape[1])
    else:
        over = kl > target_kl
        stopped = over.any(axis=1)
        first = np.where(stopped, over.argmax(axis=1), kl.shape[1])
        stop_rate, steps = float(stopped.mean()), float(first.mean())
    env = make_env(cfg, num_envs=64, seed=10_000)
    ret = float(np.mean(run_episodes(env, trainer.policy, 256, trainer.obs_rms, seed=10_000)))
    print(f"  greedy return after {args.updates} updates: {ret:.3f}")
    print(f"stop_rate: {stop_rate:.3f} mean_steps_before_stop: {steps:.1f}")


if __name__ == "__main__":
    main()
