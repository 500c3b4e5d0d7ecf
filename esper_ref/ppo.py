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


def normalize_advantages(adv: Tensor, valid: Tensor) -> Tensor:
    """Zero-mean, unit-std over the real steps only; padding stays 0."""
    real = adv[valid]
    if real.numel() == 0:
        return torch.zeros_like(adv)
    mean = real.mean()
    std = real.std() if real.numel() > 1 else torch.ones((), device=adv.device)
    return torch.where(valid, (adv - mean) / (std + 1e-8), torch.zeros_like(adv))


def ppo_loss(
    bundle: Any, mb: SequenceBatch, cfg: TrainConfig, relevance: Tensor
) -> tuple[Tensor, dict[str, Any]]:
    """The loss on one minibatch and its diagnostics (approx KL, clip fraction, ...).

    ``relevance`` is ``[num_heads, num_ops]`` bool; ``mb.advantages`` are already normalised.
    """
    out = bundle.evaluate_actions(
        mb.features, mb.blueprint_indices, mb.actions, mb.masks, hidden=mb.hidden
    )
    valid = mb.valid
    n_valid = valid.sum().clamp(min=1)
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
        n_rel = r.sum().clamp(min=1)
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


def explained_variance(pred: Tensor, target: Tensor, valid: Tensor) -> float:
    y, p = target[valid], pred[valid]
    if y.numel() < 2:
        return float("nan")
    var_y = y.var()
    return float("nan") if float(var_y) == 0.0 else float(1.0 - (y - p).var() / var_y)


class PPO:
    """Owns the optimiser; ``update`` runs the epochs over one rollout."""

    def __init__(self, bundle: Any, config: TrainConfig) -> None:
        self.bundle = bundle
        self.config = config
        self.params = [p for p in bundle.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=config.learning_rate, eps=1e-5)
        device = next(iter(self.params)).device
        self.relevance = torch.tensor(relevance_table(), dtype=torch.bool, device=device)
        self.total_nonfinite_skips = 0

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def minibatch_rows(self, batch: SequenceBatch) -> list[Tensor]:
        """Rows of ``batch`` grouped by env: each env's sequences land in one minibatch."""
        envs = torch.unique(batch.env_index)
        envs = envs[torch.randperm(envs.numel(), device=envs.device)]
        groups = envs.chunk(min(self.config.num_minibatches, envs.numel()))
        return [torch.isin(batch.env_index, g).nonzero().squeeze(1) for g in groups]

    def update(self, batch: SequenceBatch) -> UpdateStats:
        cfg = self.config
        adv = batch.advantages
        # Heads other than op were sampled independently of nothing but s, so Q(s, executed
        # op) is a valid baseline for them, and a tighter one than V(s): the op explains much
        # of the return. lambda-return - Q(s, op) = A + V(s) - Q(s, op).
        sub = batch.returns - batch.values if cfg.q_baseline_for_heads else None
        if cfg.norm_adv:
            adv = normalize_advantages(adv, batch.valid)
            sub = None if sub is None else normalize_advantages(sub, batch.valid)
        batch = dataclasses.replace(batch, advantages=adv, sub_advantages=sub)
        stats = UpdateStats()
        sums: dict[str, float] = {"policy_loss": 0.0, "value_loss": 0.0, "clipfrac": 0.0}
        ent_sums = dict.fromkeys(HEAD_NAMES, 0.0)
        measured = 0
        for _epoch in range(cfg.update_epochs):
            for rows in self.minibatch_rows(batch):
                mb = batch.select(rows)
                loss, info = ppo_loss(self.bundle, mb, cfg, self.relevance)
                stats.minibatches_seen += 1
                stats.approx_kl = info["approx_kl"]
                # The KL test comes before the step, so it can fire within a single epoch.
                if cfg.target_kl is not None and info["approx_kl"] > cfg.target_kl:
                    stats.early_stopped = True
                    break
                if not torch.isfinite(loss):
                    stats.nonfinite_skips += 1
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    self.optimizer.zero_grad(set_to_none=True)
                    stats.nonfinite_skips += 1
                    continue
                self.optimizer.step()
                stats.opt_steps += 1
                stats.grad_norm = float(grad_norm)
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
        stats.explained_variance = explained_variance(batch.values, batch.returns, batch.valid)
        self.total_nonfinite_skips += stats.nonfinite_skips
        return stats
