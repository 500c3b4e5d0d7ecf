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
    real = adv[valid]
    if comm is not None and comm.distributed:
        mean, std, n = comm.mean_std(real)
        if n == 0:
            return torch.zeros_like(adv)
        if n == 1:
            std = torch.ones((), device=adv.device)
        return torch.where(valid, (adv - mean) / (std + 1e-8), torch.zeros_like(adv))
    if real.numel() == 0:
        return torch.zeros_like(adv)
    mean = real.mean()
    std = real.std() if real.numel() > 1 else torch.ones((), device=adv.device)
    return torch.where(valid, (adv - mean) / (std + 1e-8), torch.zeros_like(adv))


def loss_counts(mb: SequenceBatch, relevance: Tensor) -> Tensor:
    """``[real steps, steps where head h mattered for each h]``: what ``ppo_loss`` divides
    its sums by (summed over ranks, they make each rank's loss a share of the global one)."""
    rel = relevance[:, mb.executed_op] & mb.valid
    return torch.cat([mb.valid.sum().reshape(1), rel.flatten(1).sum(1)]).to(torch.float32)


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
        _, std_y, n = comm.mean_std(y)
        _, std_r, _ = comm.mean_std(y - p)
        if n < 2 or float(std_y) == 0.0:
            return float("nan")
        return float(1.0 - std_r.square() / std_y.square())
    if y.numel() < 2:
        return float("nan")
    var_y = y.var()
    return float("nan") if float(var_y) == 0.0 else float(1.0 - (y - p).var() / var_y)


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

    def minibatch_rows(self, batch: SequenceBatch) -> list[Tensor]:
        """Rows of ``batch`` grouped by env: each env's sequences land in one minibatch.

        With several ranks the envs are the global ones (rank ``r`` holds envs
        ``r * n .. (r + 1) * n - 1``), shuffled by rank 0 and broadcast, so the minibatches
        are those one process with all the envs would form; a rank may hold no row of one."""
        comm = self.comm
        env_index = batch.env_index
        if comm.distributed:
            local = comm.local_count(self.config.num_envs)
            env_index = env_index + comm.rank * local
            envs = comm.broadcast(torch.randperm(self.config.num_envs, device=env_index.device))
        else:
            envs = torch.unique(env_index)
            envs = envs[torch.randperm(envs.numel(), device=envs.device)]
        groups = envs.chunk(min(self.config.num_minibatches, envs.numel()))
        return [torch.isin(env_index, g).nonzero().squeeze(1) for g in groups]

    def _minibatch_loss(self, mb: SequenceBatch) -> tuple[Tensor | None, dict[str, Any]]:
        """``ppo_loss`` on this rank's share of a minibatch, divided by the global counts;
        its diagnostics summed over ranks (so every rank sees the same KL). ``None`` for the
        loss when this rank holds no sequence of the minibatch, or when any rank's loss is
        not finite (marked ``info["nonfinite"]``)."""
        comm = self.comm
        info: dict[str, Any]
        if not comm.distributed:
            loss, info = ppo_loss(self.bundle, mb, self.config, self.relevance)
            info["nonfinite"] = not bool(torch.isfinite(loss))
            return loss, info
        counts = comm.sum(loss_counts(mb, self.relevance))
        local: Tensor | None = None
        info = {k: 0.0 for k in _SUMMED}
        info["entropy"] = dict.fromkeys(HEAD_NAMES, 0.0)
        if mb.num_seqs:
            local, info = ppo_loss(self.bundle, mb, self.config, self.relevance, counts)
        bad = local is not None and not bool(torch.isfinite(local))
        shares = [*(info[k] for k in _SUMMED), *(info["entropy"][h] for h in HEAD_NAMES)]
        packed = comm.sum(torch.tensor([*shares, float(bad)], dtype=torch.float64)).tolist()
        summed: dict[str, Any] = dict(zip(_SUMMED, packed, strict=False))
        summed["entropy"] = dict(zip(HEAD_NAMES, packed[len(_SUMMED) :], strict=False))
        summed["nonfinite"] = packed[-1] > 0
        return local, summed

    def _step(self, loss: Tensor | None) -> float | None:
        """Backward, gradients summed over ranks, clip and step; the gradient norm, or
        ``None`` when it is not finite (no step taken)."""
        self.optimizer.zero_grad(set_to_none=True)
        if loss is not None:
            loss.backward()  # type: ignore[no-untyped-call]
        self.comm.sum_gradients(self.params)
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
            adv = normalize_advantages(adv, batch.valid, self.comm)
            sub = None if sub is None else normalize_advantages(sub, batch.valid, self.comm)
        batch = dataclasses.replace(batch, advantages=adv, sub_advantages=sub)
        stats = UpdateStats()
        sums: dict[str, float] = {"policy_loss": 0.0, "value_loss": 0.0, "clipfrac": 0.0}
        ent_sums = dict.fromkeys(HEAD_NAMES, 0.0)
        measured = 0
        for _epoch in range(cfg.update_epochs):
            for rows in self.minibatch_rows(batch):
                mb = batch.select(rows)
                loss, info = self._minibatch_loss(mb)
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
                grad_norm = self._step(loss)
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
