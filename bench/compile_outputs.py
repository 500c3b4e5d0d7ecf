"""The audit's open question: do the network's outputs as a TypedDict, a NamedTuple or a
dataclass change the speed of a PPO update step under ``torch.compile``?

One PPO update step on the reference network (the trainer's default sizes, 16 envs x 50 steps
of recurrent sequences): the forward pass over the stored sequences, the clipped per-head
surrogate, entropy and value loss, backward and an Adam step. The forward pass and the loss are
compiled (``torch.compile``, default inductor backend); the only thing that differs between
the three variants is the type the network's outputs are packed in before the loss reads them:

* ``typeddict``: ``ForwardOutput``-style dict access (what ``forward`` returns today),
* ``namedtuple``: attribute access on a NamedTuple (what ``evaluate_actions`` returns today),
* ``dataclass``: attribute access on a frozen dataclass.

Steps are timed in alternating blocks (a shared machine's load hits all alike) after a warm-up
that includes compilation. The audit's rule: adopt the faster only if it is more than 5%
faster.

    python bench/compile_outputs.py [--reps N] [--eager]

Last line: ``namedtuple_vs_typeddict: X dataclass_vs_typeddict: Y`` (time ratios; below 1 =
faster than the TypedDict).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

import torch
from torch import Tensor

from contracts.phase4 import HEAD_NAMES, NUM_BLUEPRINTS, head_sizes, obs_dim
from esper_ref import distributions as dist
from esper_ref.network import FactoredRecurrentActorCritic, select_q

NUM_SLOTS = 3
ENVS, STEPS = 16, 50
_OP = HEAD_NAMES.index("op")


class OutDict(TypedDict):
    log_probs: Tensor
    entropy: Tensor
    value: Tensor


class OutTuple(NamedTuple):
    log_probs: Tensor
    entropy: Tensor
    value: Tensor


@dataclass(frozen=True)
class OutData:
    log_probs: Tensor
    entropy: Tensor
    value: Tensor


def make_forward(net: FactoredRecurrentActorCritic, kind: str) -> Callable[..., Any]:
    def forward(states: Tensor, bp: Tensor, actions: Tensor, masks: dict[str, Tensor]) -> Any:
        heads, _, q, _ = net._trunk(states, bp, masks, None)
        lp = dist.log_prob(heads, actions)
        ent = dist.entropy(heads)
        value = select_q(q, actions[..., _OP])
        if kind == "typeddict":
            return OutDict(log_probs=lp, entropy=ent, value=value)
        if kind == "namedtuple":
            return OutTuple(lp, ent, value)
        return OutData(lp, ent, value)

    return forward


def make_loss(kind: str) -> Callable[..., Tensor]:
    forward_kind = kind

    def loss(out: Any, old_lp: Tensor, adv: Tensor, returns: Tensor) -> Tensor:
        if forward_kind == "typeddict":
            lp, ent, value = out["log_probs"], out["entropy"], out["value"]
        else:
            lp, ent, value = out.log_probs, out.entropy, out.value
        ratio = (lp - old_lp).exp()
        a = adv.unsqueeze(-1)
        surr = torch.maximum(-a * ratio, -a * ratio.clamp(0.8, 1.2)).mean()
        return surr - 0.003 * ent.mean() + 0.5 * (value - returns).pow(2).mean()

    return loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=60)
    p.add_argument("--block", type=int, default=5)
    p.add_argument("--eager", action="store_true", help="no torch.compile (a control run)")
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    sizes = head_sizes(NUM_SLOTS)
    states = torch.randn(ENVS, STEPS, obs_dim(NUM_SLOTS), generator=g)
    bp = torch.randint(-1, NUM_BLUEPRINTS, (ENVS, STEPS, NUM_SLOTS), generator=g)
    masks = {h: torch.ones(ENVS, STEPS, n, dtype=torch.bool) for h, n in sizes.items()}
    actions = torch.zeros(ENVS, STEPS, len(HEAD_NAMES), dtype=torch.long)
    old_lp = torch.randn(ENVS, STEPS, len(HEAD_NAMES), generator=g).clamp(max=0) - 1.0
    adv = torch.randn(ENVS, STEPS, generator=g)
    returns = torch.randn(ENVS, STEPS, generator=g)

    kinds = ("typeddict", "namedtuple", "dataclass")
    steps: dict[str, Callable[[], None]] = {}
    for kind in kinds:
        torch.manual_seed(0)
        net = FactoredRecurrentActorCritic(
            obs_dim(NUM_SLOTS), NUM_SLOTS, 128, 128, head_hidden_dim=128, value_hidden_dim=128
        )
        opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-5)
        fwd, loss_fn = make_forward(net, kind), make_loss(kind)

        def fused(fwd: Any = fwd, loss_fn: Any = loss_fn) -> Tensor:
            return loss_fn(fwd(states, bp, actions, masks), old_lp, adv, returns)

        compiled = fused if args.eager else torch.compile(fused)

        def step(compiled: Any = compiled, opt: Any = opt, net: Any = net) -> None:
            opt.zero_grad(set_to_none=True)
            compiled().backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
            opt.step()

        t0 = time.perf_counter()
        for _ in range(3):
            step()
        print(f"{kind}: warm-up (compile) {time.perf_counter() - t0:.1f} s", flush=True)
        steps[kind] = step

    times: dict[str, list[float]] = {k: [] for k in kinds}
    while len(times[kinds[0]]) < args.reps:
        for kind in kinds:
            steps[kind]()  # re-warm after the others ran
            for _ in range(args.block):
                t0 = time.perf_counter()
                steps[kind]()
                times[kind].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    mode = "eager" if args.eager else "torch.compile"
    for kind in kinds:
        print(f"{kind:>10} ({mode}): {med[kind]:.2f} ms per update step (median of {args.reps})")
    nt = med["namedtuple"] / med["typeddict"]
    dc = med["dataclass"] / med["typeddict"]
    best = min(med, key=lambda k: med[k])
    verdict = (
        f"adopt {best}: {1 - med[best] / med['typeddict']:.1%} faster than the TypedDict"
        if med[best] < 0.95 * med["typeddict"]
        else "no variant is more than 5% faster than another: keep the types as they are"
    )
    print(verdict)
    print(f"namedtuple_vs_typeddict: {nt:.3f} dataclass_vs_typeddict: {dc:.3f}")


if __name__ == "__main__":
    main()
