"""Data-parallel training on ``torch.distributed``: the ranks of a job and what they share.

Each rank runs its own share of the envs (``TrainConfig.num_envs`` is the global count, split
evenly; rank ``r`` seeds its envs ``rank_seed(seed, r)`` and its action sampling
``sampling_seed(seed, r)``) and one copy of the policy. The update uses the global batch:
gradients are summed across ranks by an explicit all-reduce after every backward (not
``DistributedDataParallel``: the loss divides by *global* step counts, so a sum of the ranks'
gradients is exactly the gradient of the loss on the whole minibatch, and a rank with no
sequence in a minibatch still takes part). Everything else that must agree is all-reduced or
broadcast by the helpers here: observation-normaliser moments, advantage mean and std, the
minibatch split, the update's diagnostics (the KL early-stop test reads the global KL, so every
rank stops at the same step and none waits alone), evaluation results, and the finished
episodes.

``Comm()`` is the single process: every collective is the identity, so the trainer has one
code path. ``Comm.from_environment`` joins the job ``torchrun`` started (it sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); ``launch`` is what
``esper-ref train --nproc N`` runs: torchrun's launcher, started in-process.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

T = TypeVar("T")

#: Rank ``r`` seeds its envs with ``seed + r * RANK_SEED_STRIDE`` (mod 2**63); rank 0 uses
#: ``seed`` itself, so a one-rank run is the single-process run.
RANK_SEED_STRIDE = 10_000_019
#: Seconds a collective waits for the other ranks before failing (``--dist-timeout``).
DEFAULT_TIMEOUT_S = 300.0


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s envs."""
    return (seed + rank * RANK_SEED_STRIDE) % 2**63


def sampling_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s global RNGs (action sampling, minibatch split).

    Never the env's seed: an env generator and torch's global generator seeded alike give the
    same numbers (mt19937 on the CPU, Philox on CUDA), so the Gumbel draws that pick a step's
    actions would be the draws that set the same rank's env noise, and that rank's actions
    would be tied to its env's exogenous noise. The trainer applies it on ranks above 0, and
    on rank 0's CUDA generators: rank 0's CPU stream stays the single process's, which is safe
    as it is, since it starts past the initial weights' draws and runs faster than its env's
    (one uniform per logit, 104 an env a step by default, against the env's 4 a step and 70 an
    episode start), so the env never reaches a number sampling used.
    """
    # A hash, not an offset: no rank's sampling seed is any rank's env seed.
    state = np.random.SeedSequence([seed % 2**63, rank, 0x5A3B]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 ^ int(state[1])) % 2**63


class DistributedSetupError(ValueError):
    """The job cannot run as launched (world size, device, backend)."""


@dataclass
class Comm:
    """This process's place in the job. ``Comm()`` = one process, no ``torch.distributed``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where collective buffers live: the CPU for gloo, this rank's GPU for nccl."""

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run's files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    # -- joining and leaving -------------------------------------------------------------

    @classmethod
    def from_environment(
        cls, device: str, timeout_s: float = DEFAULT_TIMEOUT_S, environ: Any = None
    ) -> Comm:
        """Join the job described by torchrun's variables (a single process when they are
        absent or ``WORLD_SIZE`` is 1): backend ``nccl`` when ``device`` is CUDA, else
        ``gloo``. A CUDA job puts rank ``LOCAL_RANK`` on GPU ``LOCAL_RANK``, so ``device``
        must be plain ``cuda``."""
        env = os.environ if environ is None else environ
        world = int(env.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"]))
        dev = torch.device(device)
        if dev.type == "cuda":
            if dev.index is not None:
                raise DistributedSetupError(
                    f"--device {device}: with {world} ranks every rank takes the GPU of its "
                    "local rank; pass --device cuda (CUDA_VISIBLE_DEVICES chooses the GPUs)"
                )
            if torch.cuda.device_count() <= local:
                raise DistributedSetupError(
                    f"rank {rank}: local rank {local} needs GPU {local}, but this node has "
                    f"{torch.cuda.device_count()}; start at most that many ranks per node"
                )
            torch.cuda.set_device(local)
            backend, comm_device = "nccl", torch.device("cuda", local)
        elif dev.type == "cpu":
            backend, comm_device = "gloo", torch.device("cpu")
        else:
            raise DistributedSetupError(
                f"--device {device}: distributed training runs on cpu (gloo) or cuda (nccl)"
            )
        import torch.distributed as dist

        if not dist.is_available():
            raise DistributedSetupError("this torch build has no torch.distributed")
        dist.init_process_group(
            backend,
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
        return cls(rank=rank, world_size=world, local_rank=local, device=comm_device)

    def close(self, wait: bool = False) -> None:
        """Leave the job. ``wait``: first wait until every rank got here (the normal end), so
        no rank tears its connections down while another still uses them (gloo aborts a
        process whose peer vanished mid-operation)."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                if wait:
                    dist.barrier()
                dist.destroy_process_group()

    # -- collectives (the identity on one process) ---------------------------------------

    def sum(self, t: Tensor) -> Tensor:
        """``t`` summed over the ranks (a new tensor on ``t``'s device)."""
        if not self.distributed:
            return t
        import torch.distributed as dist

        buf = t.detach().to(self.device, copy=True)
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        return buf.to(t.device)

    def broadcast(self, t: Tensor, src: int = 0) -> Tensor:
        """Rank ``src``'s ``t`` on every rank."""
        if not self.distributed:
            return t
        import torch.distributed as dist

        buf = t.detach().to(self.device, copy=True)
        dist.broadcast(buf, src=src)
        return buf.to(t.device)

    def from_main(self, compute: Callable[[], T]) -> T:
        """Rank 0 runs ``compute``; every rank gets its (picklable) result."""
        if not self.distributed:
            return compute()
        import torch.distributed as dist

        box: list[Any] = [compute() if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]  # type: ignore[no-any-return]

    def gather(self, obj: T) -> list[T]:
        """Every rank's (picklable) ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    # -- what ranks agree on -------------------------------------------------------------

    def local_count(self, total: int, what: str = "num_envs") -> int:
        """This rank's share of ``total`` (which must split evenly)."""
        if total % self.world_size:
            raise DistributedSetupError(
                f"{what}={total} does not split over {self.world_size} ranks; it is the global "
                f"count, so use a multiple of {self.world_size}"
            )
        return total // self.world_size

    def moments(self, x: Tensor) -> tuple[Tensor, Tensor, int]:
        """Mean and (biased) variance over the rows of ``x`` on all ranks, and their count,
        in float64. One all-reduce of (count, sum, sum of squares)."""
        return self.moments_async(x)()

    def moments_async(self, x: Tensor) -> Callable[[], tuple[Tensor, Tensor, int]]:
        """``moments`` started: the all-reduce runs in the background and the returned
        function waits for it, so a rank computes while the other ranks' shares travel."""
        x = x.detach().to(torch.float64)
        d = x.shape[1]
        packed = torch.cat([x.new_full((1,), float(x.shape[0])), x.sum(0), (x * x).sum(0)])
        wait: Callable[[], Tensor] = lambda: packed  # noqa: E731
        if self.distributed:
            import torch.distributed as dist

            buf = packed.to(self.device, copy=True)
            work = dist.all_reduce(buf, op=dist.ReduceOp.SUM, async_op=True)

            def wait() -> Tensor:
                work.wait()
                return buf.to(x.device)

        def finish() -> tuple[Tensor, Tensor, int]:
            total = wait()
            n = float(total[0])
            mean = total[1 : 1 + d] / n
            var = (total[1 + d :] / n - mean * mean).clamp(min=0.0)
            return mean, var, int(n)

        return finish

    def mean_std(self, *xs: Tensor) -> list[tuple[Tensor, Tensor, int]]:
        """Mean, unbiased std and count of each 1-D ``x`` over all ranks (two passes, as
        torch's ``std`` does), for all of them in two all-reduces."""
        xs = tuple(x.detach() for x in xs)
        first = self.sum(torch.stack([v for x in xs for v in (x.new_tensor(x.numel()), x.sum())]))
        ns = [int(first[2 * i]) for i in range(len(xs))]
        means = [first[2 * i + 1] / max(n, 1) for i, n in enumerate(ns)]
        ss = self.sum(torch.stack([(x - m).square().sum() for x, m in zip(xs, means, strict=True)]))
        return [
            (m, torch.sqrt(ss[i] / max(n - 1, 1)), n)
            for i, (m, n) in enumerate(zip(means, ns, strict=True))
        ]

    def sum_gradients(self, params: Sequence[Tensor], extra: Tensor | None = None) -> Tensor:
        """Replace each parameter's gradient by its sum over the ranks, and return ``extra``
        (1-D, e.g. the step's diagnostics) summed too: one flat all-reduce for both, so an
        optimiser step synchronises the ranks once. A rank without a gradient for a
        parameter (it held no sequence of the minibatch) adds zeros; a parameter no rank
        has a gradient for keeps none, as in one process (Adam skips it rather than moving
        it by its momentum)."""
        tail = torch.zeros(0) if extra is None else extra.detach()
        if not self.distributed:
            return tail
        dtype = params[0].dtype
        parts = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
        ]
        has = torch.tensor([p.grad is not None for p in params], dtype=dtype)
        device = parts[0].device
        flat = self.sum(torch.cat([*parts, has.to(device), tail.to(device, dtype)]))
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)  # views of one fresh buffer
            offset += n
        flags = flat[offset : offset + len(params)].tolist()
        for p, flag in zip(params, flags, strict=True):
            if flag == 0:
                p.grad = None
        return flat[offset + len(params) :].to(tail.device, tail.dtype)

    def same_parameters(self, params: Sequence[Tensor]) -> None:
        """Copy rank 0's parameters to every rank (they start equal by seed; this makes it
        so whatever the hardware)."""
        if not self.distributed:
            return
        with torch.no_grad():
            for p in params:
                p.copy_(self.broadcast(p))


# -- launching ---------------------------------------------------------------------------


def strip_option(argv: Sequence[str], flag: str) -> list[str]:
    """``argv`` without ``flag VALUE`` / ``flag=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == flag:
            skip = True
            continue
        if arg.startswith(flag + "="):
            continue
        out.append(arg)
    return out


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def launch(nproc: int, worker_argv: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
    """Run ``python -m esper_ref <worker_argv>`` on ``nproc`` ranks of this machine, as
    ``torchrun --standalone --nproc_per_node nproc`` would; returns the exit status to use.
    One rank failing stops the others (no restarts) and is reported in one line."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        rdzv_timeout=int(timeout_s),
        max_restarts=0,
        monitor_interval=0.1,
    )
    try:
        elastic_launch(config, sys.executable)("-m", "esper_ref", *worker_argv)
    except ChildFailedError as exc:
        # Every failed rank, earliest first: the launcher records a rank killed from outside
        # and a peer that then lost contact within one monitoring interval, so "the first"
        # alone can name the peer instead of the cause.
        failed = sorted(exc.failures.items(), key=lambda item: (item[1].timestamp, item[0]))
        ranks = "; ".join(
            f"rank {rank} (pid {failure.pid}): {describe_exit(failure.exitcode)}"
            for rank, failure in failed
        )
        print(
            f"error: distributed training failed: {ranks}; the other ranks were stopped. "
            "Each rank's own error, if it could print one, is above; the last checkpoint "
            f"resumes with --resume RUN_FOLDER --nproc {nproc}",
            file=sys.stderr,
        )
        return 2
    except (SignalException, KeyboardInterrupt) as exc:
        # The launcher stopped the ranks (each saved nothing past its last checkpoint).
        sig = getattr(exc, "sigval", signal.SIGINT)
        print(
            f"interrupted ({signal.Signals(sig).name}); the ranks were stopped; the last "
            f"checkpoint resumes with --resume RUN_FOLDER --nproc {nproc}",
            file=sys.stderr,
        )
        return 128 + int(sig)
    return 0
