"""Latency of one gloo all-reduce between ranks of this machine, by message size.

What a synchronisation of ``esper-ref train --nproc N`` costs here: the per-optimiser-step
gradient all-reduce is ~0.8 MB (196k float32 at the default sizes), the normaliser's fold and
the diagnostics are a few KB. Starts itself under ``torch.distributed.run`` (``--nproc``, 2
by default); rank 0 prints one line per size, then
``allreduce_ms: 16B=X 4KB=Y 200KB=Z 800KB=W`` (medians of ``--reps`` timed calls).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

SIZES = {"16B": 4, "4KB": 1_000, "200KB": 50_000, "800KB": 196_000}


def measure(reps: int) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    figures = {}
    for label, n in SIZES.items():
        x = torch.ones(n)
        for _ in range(5):
            dist.all_reduce(x)
        times = []
        for _ in range(reps):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            times.append(time.perf_counter() - t0)
        figures[label] = statistics.median(times) * 1e3
        if dist.get_rank() == 0:
            print(f"all_reduce {label:>6}: median {figures[label]:.3f} ms over {reps}", flush=True)
    if dist.get_rank() == 0:
        print("allreduce_ms: " + " ".join(f"{k}={v:.3f}" for k, v in figures.items()))
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    if "RANK" in os.environ:
        measure(args.reps)
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(args.nproc), __file__, "--reps", str(args.reps)]
    sys.exit(subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode)


if __name__ == "__main__":
    main()
