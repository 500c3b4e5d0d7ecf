"""Policy latency at the original sizes (obs 114, feature 512, LSTM 512), one CPU thread or a GPU.

Times ``LSTMPolicyBundle.get_action`` (no grad) at batch 1, 32 and 128, and
``evaluate_actions`` + backward over 32 envs x 25 steps. Side by side, in the same run, it
times a rebuild of the original design (one nn.LSTM call per step with seq length 1, eight
separate head MLPs, a ``torch.distributions.Categorical`` per head) in alternating warm blocks
and prints the ratios.

    python bench/policy_latency.py [--reps N] [--device cuda]

``--device cuda`` times the same calls on a GPU (each timed call ends with
``torch.cuda.synchronize()``, so the time includes the kernels, not only their launch).

The last line reads ``get_action_ms: b1=X b32=Y b128=Z evaluate_backward_ms: W``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from contracts.phase4 import HEAD_NAMES, NUM_BLUEPRINTS, NUM_OPS, head_sizes, obs_dim
from esper_ref.bundle import LSTMPolicyBundle
from esper_ref.devices import check_device

NUM_SLOTS = 3
OBS = obs_dim(NUM_SLOTS)
SIZES = head_sizes(NUM_SLOTS)


def median_ms(fn: Callable[[], object], reps: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def paired_median_ms(
    ours: Callable[[], object], theirs: Callable[[], object], reps: int, block: int = 25
) -> tuple[float, float]:
    """Medians of both, timed in alternating blocks so that load on a shared machine hits both
    alike, while each block still runs warm (a call right after the other policy would time
    reloading weights into the cache, not the policy)."""
    a: list[float] = []
    b: list[float] = []
    while len(a) < reps:
        for fn, out in ((ours, a), (theirs, b)):
            fn()  # re-warm after the other policy ran
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
    return statistics.median(a) * 1e3, statistics.median(b) * 1e3


def random_masks(lead: tuple[int, ...], gen: torch.Generator) -> dict[str, Tensor]:
    masks = {}
    for name, size in SIZES.items():
        m = torch.rand(*lead, size, generator=gen) < 0.7
        m[..., 0] = True
        masks[name] = m
    return masks


class OriginalStylePolicy(nn.Module):
    """The original's shape of computation, for comparison only: same sizes, naive code."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(NUM_BLUEPRINTS + 1, 4)
        self.feature = nn.Sequential(nn.Linear(OBS + 12, 512), nn.LayerNorm(512), nn.ReLU())
        self.lstm = nn.LSTM(512, 512, batch_first=True)
        self.heads = nn.ModuleDict(
            {
                n: nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, s))
                for n, s in SIZES.items()
            }
        )
        self.value = nn.Sequential(nn.Linear(512 + NUM_OPS, 256), nn.ReLU(), nn.Linear(256, 1))

    @torch.no_grad()
    def get_action(
        self, x: Tensor, idx: Tensor, masks: dict[str, Tensor], hidden: tuple[Tensor, Tensor]
    ) -> tuple[dict[str, Tensor], Tensor]:
        emb = self.embedding(idx + 1).flatten(-2)
        f = self.feature(torch.cat((x, emb), -1)).unsqueeze(1)
        out, _ = self.lstm(f, hidden)
        out = out.squeeze(1)
        actions, log_probs = {}, {}
        for name in HEAD_NAMES:
            logits = self.heads[name](out).masked_fill(~masks[name], -1e9)
            d = Categorical(logits=logits)
            a = d.sample()
            actions[name], log_probs[name] = a, d.log_prob(a)
        op = nn.functional.one_hot(actions["op"], NUM_OPS).float()
        value = self.value(torch.cat((out, op), -1)).squeeze(-1)
        return actions, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    args = parser.parse_args()
    try:
        dev = check_device(args.device)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    def synced(fn: Callable[[], object]) -> Callable[[], object]:
        if dev.type != "cuda":
            return fn

        def call() -> object:
            out = fn()
            torch.cuda.synchronize(dev)
            return out

        return call

    bundle = LSTMPolicyBundle(state_dim=OBS, num_slots=NUM_SLOTS, device=dev)
    original = OriginalStylePolicy().to(dev)
    ours: dict[int, float] = {}
    theirs: dict[int, float] = {}
    for batch in (1, 32, 128):
        x = torch.randn(batch, OBS, generator=gen).to(dev)
        idx = torch.randint(-1, NUM_BLUEPRINTS, (batch, NUM_SLOTS), generator=gen).to(dev)
        masks = {k: m.to(dev) for k, m in random_masks((batch,), gen).items()}
        hidden = bundle.initial_hidden(batch)
        reps = args.reps if batch < 128 else max(args.reps // 4, 20)

        def run_ours(x=x, idx=idx, masks=masks, hidden=hidden) -> object:
            return bundle.get_action(x, idx, masks, hidden)

        def run_theirs(x=x, idx=idx, masks=masks, hidden=hidden) -> object:
            return original.get_action(x, idx, masks, hidden)

        ours[batch], theirs[batch] = paired_median_ms(synced(run_ours), synced(run_theirs), reps)
        print(
            f"get_action b{batch}: esper_ref {ours[batch]:.3f} ms, original-style "
            f"{theirs[batch]:.3f} ms, speedup {theirs[batch] / ours[batch]:.1f}x"
        )

    envs, steps = 32, 25
    states = torch.randn(envs, steps, OBS, generator=gen).to(dev)
    idx = torch.randint(-1, NUM_BLUEPRINTS, (envs, steps, NUM_SLOTS), generator=gen).to(dev)
    masks = {k: m.to(dev) for k, m in random_masks((envs, steps), gen).items()}
    actions = {
        name: torch.zeros(envs, steps, dtype=torch.long, device=dev) for name in HEAD_NAMES
    }  # action 0 is always allowed by random_masks
    hidden = bundle.initial_hidden(envs)

    def update() -> None:
        ev = bundle.evaluate_actions(states, idx, actions, masks, hidden)
        loss = sum(lp.mean() for lp in ev.log_probs.values()) + ev.value.pow(2).mean()
        loss = loss + sum(e.mean() for e in ev.entropy.values())
        bundle.network.zero_grad(set_to_none=True)
        loss.backward()

    evaluate_ms = median_ms(synced(update), max(args.reps // 10, 10), warmup=3)
    print(f"evaluate_actions+backward {envs}x{steps}: {evaluate_ms:.2f} ms")
    print(
        f"get_action_ms: b1={ours[1]:.3f} b32={ours[32]:.3f} b128={ours[128]:.3f} "
        f"evaluate_backward_ms: {evaluate_ms:.2f}"
    )


if __name__ == "__main__":
    main()
