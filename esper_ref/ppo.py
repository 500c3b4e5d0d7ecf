"""The PPO update for the factored, op-conditioned recurrent policy.

Per head h and step t (only where head h mattered for the *executed* op, see
``contracts.phase4.relevance_table``):

    ratio_h = exp(log pi_h(a_h|s) - log pi_h_old(a_h|s))
    L_clip_h = -min(ratio_h * A, clip(ratio_h, 1 - eps, 1 + eps) * A)

    loss = sum_h mean_t L_clip_h  -  ent_coef * sum_h c_h * mean_t H_h  +  vf_coef * L_V

where L_V regresses Q(s, stored op) on the lambda-returns that GAE produced from the same raw
rewards, optionally clipped around the rollout's Q. Minibatches are whole envs; each sequence
starts from its stored LSTM state and never spans an episode end. The approximate KL is checked
on each minibatch *before* its optimiser step. (docs/guarded-bugs.md names the bugs each of
these choices guards against: "critic on other rewards", "state across episodes", "KL check
after the step".)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from contracts.phase4 import HEAD_NAMES, relevance_table
from esper_ref.buffer import SequenceBatch
from esper_ref.config import TrainConfig
from esper_ref.distributed import Comm


@dataclass
class UpdateStats:
    policy_loss: float = 0.0
    value_loss: float = 0.0
    entropy: dict[str, float] = field(default_factory=dict)
    approx_kl: float = 0.0
    clipfrac: float = 0.0
    explained_variance: float = 0.0
    grad_norm: float = 0.0
    opt_steps: int = 0
    minibatches_seen: int = 0
    early_stopped: bool = False
    nonfinite_skips: int = 0

    def as_row(self) -> dict[str, float]:
        row = {
            "policy_loss": self.policy_loss,
            "value_loss": self.value_loss,
            "entropy": sum(self.entropy.values()),
            "approx_kl": self.approx_kl,
            "clipfrac": self.clipfrac,
            "explained_variance": self.explained_variance,
            "grad_norm": self.grad_norm,
            "opt_steps": float(self.opt_steps),
            "early_stopped": float(self.early_stopped),
            "nonfinite_skips": float(self.nonfinite_skips),
        }
        return row


def normalize_advantages(adv: Tensor, valid: Tensor, comm: Comm | None = None) -> Tensor:
    """Zero-mean, unit-std over the real steps only (of every rank's rollout); padding
    stays 0."""
    return normalize_many([adv], valid, comm)[0]


def normalize_many(advs: list[Tensor], valid: Tensor, comm: Comm | None = None) -> list[Tensor]:
    """``normalize_advantages`` of each of ``advs`` (same ``valid``); with several ranks in
    two all-reduces for all of them."""
    zeros = torch.zeros_like(advs[0])
    if comm is not None and comm.distributed:
        moments = comm.mean_std(*(a[valid] for a in advs))
    else:
        moments = []
        for r in (a[valid] for a in advs):
            # One real step: its own mean, std 1 (below); none: the result is all zeros.
            many = r.numel() > 1
            moments.append((r.mean() if many else r.sum(), r.std() if many else r, r.numel()))
    out = []
    for adv, (mean, std, n) in zip(advs, moments, strict=True):
        if n == 0:
            out.append(torch.zeros_like(adv))
            continue
        if n == 1:
            std = torch.ones((), device=adv.device)
        out.append(torch.where(valid, (adv - mean) / (std + 1e-8), zeros))
    return out


def loss_counts(mb: SequenceBatch, relevance: Tensor) -> Tensor:
    """``[real steps, steps where head h mattered for each h]``: what ``ppo_loss`` divides
    its sums by (summed over ranks, they make each rank's loss a share of the global one)."""
    return loss_counts_per_row(mb, relevance).sum(0)


def loss_counts_per_row(batch: SequenceBatch, relevance: Tensor) -> Tensor:
    """``loss_counts`` of each row (sequence) of ``batch`` alone, ``[num_seqs, 1 + heads]``:
    a minibatch's counts are the sum of its rows'."""
    rel = relevance[:, batch.executed_op] & batch.valid  # [heads, N, L]
    return torch.cat([batch.valid.sum(1, keepdim=True), rel.sum(2).T], dim=1).to(torch.float32)


def ppo_loss(
    bundle: Any,
    mb: SequenceBatch,
    cfg: TrainConfig,
    relevance: Tensor,
    counts: Tensor | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """The loss on one minibatch and its diagnostics (approx KL, clip fraction, ...).

    ``relevance`` is ``[num_heads, num_ops]`` bool; ``mb.advantages`` are already normalised.
    ``counts`` (``loss_counts`` of the whole minibatch, over all ranks) divides the sums;
    default: this minibatch's own.
    """
    out = bundle.evaluate_actions(
        mb.features, mb.blueprint_indices, mb.actions, mb.masks, hidden=mb.hidden
    )
    if counts is None:
        counts = loss_counts(mb, relevance)
    counts = counts.clamp(min=1)
    valid = mb.valid
    n_valid = counts[0]
    # Causal masks from the op that actually ran ("requested-op causal masks",
    # docs/guarded-bugs.md), never from the requested one.
    rel = relevance[:, mb.executed_op] & valid  # [heads, N, L]
    op_adv = mb.advantages
    sub_adv = op_adv if mb.sub_advantages is None else mb.sub_advantages
    zero = torch.zeros_like(op_adv)
    pg_loss = op_adv.new_zeros(())
    ent_bonus = op_adv.new_zeros(())
    joint_logratio = zero
    clipped = zero
    entropies: dict[str, float] = {}
    head_kl: dict[str, float] = {}
    for i, head in enumerate(HEAD_NAMES):
        r = rel[i]
        adv = op_adv if head == "op" else sub_adv
        n_rel = counts[1 + i]
        logratio = torch.where(r, out.log_probs[head] - mb.log_probs[head], zero)
        ratio = logratio.exp()
        surr = torch.maximum(
            -adv * ratio, -adv * ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef)
        )
        pg_loss = pg_loss + torch.where(r, surr, zero).sum() / n_rel
        ent = torch.where(r, out.entropy[head], zero).sum() / n_rel
        ent_bonus = ent_bonus + cfg.head_ent_coefs.get(head, 1.0) * ent
        entropies[head] = float(ent.detach())
        joint_logratio = joint_logratio + logratio
        with torch.no_grad():
            lr_ = logratio.detach()
            head_kl[head] = float(torch.where(r, lr_.exp() - 1.0 - lr_, zero).sum() / n_rel)
        clipped = torch.where(r & ((ratio - 1.0).abs() > cfg.clip_coef), 1.0, clipped)

    q = out.value  # Q(s, stored op)
    v_unclipped = (q - mb.returns) ** 2
    if cfg.clip_vloss:
        q_clipped = mb.values + (q - mb.values).clamp(-cfg.vf_clip_coef, cfg.vf_clip_coef)
        v_term = torch.maximum(v_unclipped, (q_clipped - mb.returns) ** 2)
    else:
        v_term = v_unclipped
    v_loss = 0.5 * torch.where(valid, v_term, zero).sum() / n_valid

    loss = pg_loss - cfg.ent_coef * ent_bonus + cfg.vf_coef * v_loss
    with torch.no_grad():
        jr = joint_logratio.detach()
        approx_kl = (torch.where(valid, (jr.exp() - 1.0) - jr, zero).sum() / n_valid).item()
        clipfrac = (clipped.sum() / n_valid).item()
    info = {
        "policy_loss": float(pg_loss.detach()),
        "value_loss": float(v_loss.detach()),
        "entropy": entropies,
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
        "head_kl": head_kl,
    }
    return loss, info


def explained_variance(
    pred: Tensor, target: Tensor, valid: Tensor, comm: Comm | None = None
) -> float:
    y, p = target[valid], pred[valid]
    if comm is not None and comm.distributed:
        (_, std_y, n), (_, std_r, _) = comm.mean_std(y, y - p)
        if n < 2 or float(std_y) == 0.0:
            return float("nan")
        return float(1.0 - std_r.square() / std_y.square())
    if y.numel() < 2:
        return float("nan")
    var_y = y.var()
    return float("nan") if float(var_y) == 0.0 else float(1.0 - (y - p).var() / var_y)


def minibatch_groups(num_envs: int, groups: int) -> Tensor:
    """A random split of envs ``0 .. num_envs - 1`` into ``groups`` minibatches: the
    minibatch of each env, ``[num_envs]``.

    Stratified: each run of ``groups`` consecutive envs sends one env to every minibatch, in
    a random order (a short last run, to a random subset). Every env is equally likely in
    every minibatch, the sizes differ by at most one, and any block of consecutive envs whose
    size is a multiple of ``groups`` (a rank's envs) has the same number in each minibatch:
    no rank waits at a step's all-reduce for another with more of the minibatch."""
    runs = -(-num_envs // groups)
    return torch.rand(runs, groups).argsort(dim=1).reshape(-1)[:num_envs]


#: Diagnostics of ``ppo_loss`` that are shares of the global value (summed over ranks).
_SUMMED = ("approx_kl", "policy_loss", "value_loss", "clipfrac")


class PPO:
    """Owns the optimiser; ``update`` runs the epochs over one rollout."""

    def __init__(self, bundle: Any, config: TrainConfig, comm: Comm | None = None) -> None:
        self.bundle = bundle
        self.config = config
        self.comm = comm if comm is not None else Comm()
        self.params = [p for p in bundle.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=config.learning_rate, eps=1e-5)
        device = next(iter(self.params)).device
        self.relevance = torch.tensor(relevance_table(), dtype=torch.bool, device=device)
        self.total_nonfinite_skips = 0

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def minibatch_plan(self, batch: SequenceBatch, epochs: int) -> list[list[Tensor]]:
        """For each of ``epochs`` epochs, the rows of ``batch`` of each minibatch; see
        ``minibatch_groups``. With several ranks the envs are the global ones (rank ``r``
        holds envs ``r * n .. (r + 1) * n - 1``) and rank 0 draws every epoch's split and
        broadcasts it (one broadcast per update), so the minibatches are those one process
        with all the envs forms."""
        comm = self.comm
        if comm.distributed:
            num_envs = self.config.num_envs
            env_index = batch.env_index + comm.rank * comm.local_count(num_envs)
        else:  # the envs the batch holds, numbered 0 .. n - 1
            envs, env_index = torch.unique(batch.env_index, return_inverse=True)
            num_envs = envs.numel()
        groups = min(self.config.num_minibatches, num_envs)
        split = torch.stack([minibatch_groups(num_envs, groups) for _ in range(epochs)])
        split = comm.broadcast(split).to(env_index.device)
        plan = []
        for assign in split:
            of_row = assign[env_index]
            plan.append([(of_row == g).nonzero().squeeze(1) for g in range(groups)])
        return plan

    def minibatch_rows(self, batch: SequenceBatch) -> list[Tensor]:
        """One epoch's minibatches (rows of ``batch``), as ``minibatch_plan`` draws them."""
        return self.minibatch_plan(batch, 1)[0]

    def _loss_counts(self, batch: SequenceBatch, plan: list[list[Tensor]]) -> Tensor:
        """``loss_counts`` of every minibatch of ``plan`` over all ranks,
        ``[epochs, minibatches, 1 + heads]``, in one all-reduce."""
        per_row = loss_counts_per_row(batch, self.relevance)
        counts = torch.stack(
            [torch.stack([per_row[rows].sum(0) for rows in epoch]) for epoch in plan]
        )
        return self.comm.sum(counts)

    def _forward_backward(self, mb: SequenceBatch, counts: Tensor) -> dict[str, Any]:
        """The loss on this rank's share of a minibatch (divided by the global ``counts``)
        and its gradients, summed over the ranks with the diagnostics in one all-reduce, so
        every rank sees the same KL and the same gradient. One process skips the backward
        when the KL test or a non-finite loss will stop the step; several ranks learn the
        global KL only with the gradients, so they may compute one backward for nothing."""
        cfg = self.config
        comm = self.comm
        self.optimizer.zero_grad(set_to_none=True)
        info: dict[str, Any]
        if not comm.distributed:
            loss, info = ppo_loss(self.bundle, mb, cfg, self.relevance, counts)
            info["nonfinite"] = not bool(torch.isfinite(loss))
            stop = cfg.target_kl is not None and info["approx_kl"] > cfg.target_kl
            if not (stop or info["nonfinite"]):
                loss.backward()  # type: ignore[no-untyped-call]
            return info
        info = {k: 0.0 for k in _SUMMED}
        info["entropy"] = dict.fromkeys(HEAD_NAMES, 0.0)
        bad = False
        if mb.num_seqs:
            loss, info = ppo_loss(self.bundle, mb, cfg, self.relevance, counts)
            bad = not bool(torch.isfinite(loss))
            if not bad:
                loss.backward()  # type: ignore[no-untyped-call]
        shares = [*(info[k] for k in _SUMMED), *(info["entropy"][h] for h in HEAD_NAMES)]
        extra = torch.tensor([*shares, float(bad)], dtype=torch.float64)
        packed = comm.sum_gradients(self.params, extra).tolist()
        summed: dict[str, Any] = dict(zip(_SUMMED, packed, strict=False))
        summed["entropy"] = dict(zip(HEAD_NAMES, packed[len(_SUMMED) :], strict=False))
        summed["nonfinite"] = packed[-1] > 0
        return summed

    def _step(self) -> float | None:
        """Clip the (summed) gradients and step; the gradient norm, or ``None`` when it is
        not finite (no step taken)."""
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        if not torch.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        return float(grad_norm)

    def update(self, batch: SequenceBatch) -> UpdateStats:
        cfg = self.config
        adv = batch.advantages
        # Heads other than op were sampled independently of nothing but s, so Q(s, executed
        # op) is a valid baseline for them, and a tighter one than V(s): the op explains much
        # of the return. lambda-return - Q(s, op) = A + V(s) - Q(s, op).
        sub = batch.returns - batch.values if cfg.q_baseline_for_heads else None
        if cfg.norm_adv:
            if sub is None:
                (adv,) = normalize_many([adv], batch.valid, self.comm)
            else:
                adv, sub = normalize_many([adv, sub], batch.valid, self.comm)
        batch = dataclasses.replace(batch, advantages=adv, sub_advantages=sub)
        stats = UpdateStats()
        sums: dict[str, float] = {"policy_loss": 0.0, "value_loss": 0.0, "clipfrac": 0.0}
        ent_sums = dict.fromkeys(HEAD_NAMES, 0.0)
        measured = 0
        plan = self.minibatch_plan(batch, cfg.update_epochs)
        counts = self._loss_counts(batch, plan)
        for epoch, groups in enumerate(plan):
            for g, rows in enumerate(groups):
                mb = batch.select(rows)
                info = self._forward_backward(mb, counts[epoch, g])
                stats.minibatches_seen += 1
                stats.approx_kl = info["approx_kl"]
                # The KL test comes before the step, so it can fire within a single epoch.
                # With several ranks it reads the global KL: all stop at the same step.
                if cfg.target_kl is not None and info["approx_kl"] > cfg.target_kl:
                    stats.early_stopped = True
                    break
                if info["nonfinite"]:
                    stats.nonfinite_skips += 1
                    continue
                grad_norm = self._step()
                if grad_norm is None:
                    stats.nonfinite_skips += 1
                    continue
                stats.opt_steps += 1
                stats.grad_norm = grad_norm
                measured += 1
                for k in sums:
                    sums[k] += info[k]
                for h in HEAD_NAMES:
                    ent_sums[h] += info["entropy"][h]
            if stats.early_stopped:
                break
        if measured:
            stats.policy_loss = sums["policy_loss"] / measured
            stats.value_loss = sums["value_loss"] / measured
            stats.clipfrac = sums["clipfrac"] / measured
            stats.entropy = {h: v / measured for h, v in ent_sums.items()}
        else:
            stats.policy_loss = stats.value_loss = math.nan
        stats.explained_variance = explained_variance(
            batch.values, batch.returns, batch.valid, self.comm
        )
        self.total_nonfinite_skips += stats.nonfinite_skips
        return stats
