"""Env steps per second of the built-in SlotLifecycleVecEnv with random masked actions.

    python bench/env_throughput.py --num-envs 64 --steps 500

Runs on one thread; the last line reads ``env_steps_per_s: X``. (This replaced a timed unit test:
throughput on a shared machine is a benchmark figure, not a pass/fail test.)
"""

from __future__ import annotations

import argparse
import time

import torch

from esper_ref.env import SlotLifecycleVecEnv, random_actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many timed loops")
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = SlotLifecycleVecEnv(num_envs=args.num_envs, seed=0)
    obs = env.reset()
    gen = torch.Generator().manual_seed(0)
    # Actions drawn up front so the loop times the env alone.
    actions = [random_actions(obs.masks, gen) for _ in range(8)]
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        for i in range(args.steps):
            env.step(actions[i % 8])
        best = min(best, time.perf_counter() - start)
    print(f"env_steps_per_s: {args.num_envs * args.steps / best:.0f}")


if __name__ == "__main__":
    main()
