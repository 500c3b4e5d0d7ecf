"""Masked categorical math for the 8 factored heads, written once for rollout and update.

All heads are handled together in a padded layout ``[..., num_heads, max_size]``: head ``h``
uses positions ``0..size_h-1`` and the rest are padding that is never allowed. One
log-softmax, one sampling call and one gather serve every head, so the rollout pays a handful
of tensor ops instead of eight distribution objects, and the update computes log-probs with the
very same function as the rollout (the PPO ratio starts at exactly 1).

Nothing here reads a tensor value on the host (no ``.item()``, no ``if tensor``), so the
rollout never waits for a device.

A row whose mask allows nothing (padding steps in a sequence batch) is treated as if only
action 0 were allowed: it samples 0 and gets log-prob 0 and entropy 0, finite and with finite
gradients, instead of the NaN that a categorical over no support produces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn


class MaskedHeads(NamedTuple):
    """Log-probabilities of every head under its mask, in the padded layout."""

    log_probs: Tensor  # float [..., H, M]; masked positions hold a huge negative finite number
    allowed: Tensor  # bool [..., H, M]; the effective mask (dummy action 0 for empty rows)
    has_choice: Tensor  # bool [..., H]; False where the caller's mask allowed nothing


class HeadLayout(nn.Module):
    """Where each head's choices sit in the padded ``[H, M]`` layout, as device buffers.

    A module only so that its constant tensors follow the network across ``.to(device)``; it
    has no parameters and adds nothing to a state dict.
    """

    def __init__(self, sizes: Mapping[str, int]) -> None:
        super().__init__()
        self.names: tuple[str, ...] = tuple(sizes)
        self.sizes: tuple[int, ...] = tuple(sizes[n] for n in self.names)
        self.num_heads = len(self.sizes)
        self.max_size = max(self.sizes)
        total = sum(self.sizes)
        # Index into the concatenation of all masks plus one trailing False column: position
        # (h, j) reads mask h's column j, or the False column where j is padding.
        index: list[int] = []
        offset = 0
        for size in self.sizes:
            index.extend(offset + j if j < size else total for j in range(self.max_size))
            offset += size
        valid = torch.zeros(self.num_heads, self.max_size, dtype=torch.bool)
        for h, size in enumerate(self.sizes):
            valid[h, :size] = True
        first = torch.zeros(self.max_size, dtype=torch.bool)
        first[0] = True
        self.mask_index: Tensor
        self.valid: Tensor
        self.first_column: Tensor
        self.false_column: Tensor
        self.register_buffer("mask_index", torch.tensor(index, dtype=torch.long), False)
        self.register_buffer("valid", valid, False)
        self.register_buffer("first_column", first, False)
        self.register_buffer("false_column", torch.zeros(1, dtype=torch.bool), False)

    def pack_masks(self, masks: Mapping[str, Tensor] | None, lead: Sequence[int]) -> Tensor:
        """Per-head masks (every head, or ``None`` = all allowed) -> bool ``[*lead, H, M]``
        with padding False. A partial mapping is refused: a forgotten head's mask would
        silently allow every action of that head."""
        if masks is None:
            return self.valid.expand(*lead, self.num_heads, self.max_size)
        if masks.keys() != set(self.names):
            missing = [k for k in self.names if k not in masks]
            unknown = [k for k in masks if k not in self.names]
            raise ValueError(
                f"masks: missing head(s) {missing}, unknown head(s) {unknown}; "
                f"heads are {list(self.names)}"
            )
        parts = [masks[name] for name in self.names]
        parts.append(self.false_column.expand(*lead, 1))
        flat = torch.cat(parts, dim=-1).index_select(-1, self.mask_index)
        return flat.view(*lead, self.num_heads, self.max_size)

    def split(self, padded: Tensor) -> dict[str, Tensor]:
        """``[..., H, M]`` -> one ``[..., size_h]`` view per head name."""
        return {
            name: padded[..., h, :size]
            for h, (name, size) in enumerate(zip(self.names, self.sizes, strict=True))
        }

    def stack_actions(self, actions: Mapping[str, Tensor]) -> Tensor:
        """Per-head int64 actions -> ``[..., H]``; every head must be present."""
        missing = [n for n in self.names if n not in actions]
        if missing:
            raise ValueError(f"actions: missing head(s) {missing}; heads are {list(self.names)}")
        return torch.stack([actions[n] for n in self.names], dim=-1)


def masked_log_softmax(logits: Tensor, mask: Tensor, first_column: Tensor) -> MaskedHeads:
    """Log-softmax of ``logits`` restricted to ``mask`` (both ``[..., H, M]``).

    ``first_column`` is a bool ``[M]`` (or ``[H, M]``) tensor that is True at position 0 only.
    """
    has_choice = mask.any(dim=-1)
    # Rows with nothing allowed get action 0 as a dummy so the softmax has support.
    allowed = mask | ((~has_choice).unsqueeze(-1) & first_column)
    neg = torch.finfo(logits.dtype).min
    log_probs = torch.log_softmax(logits.masked_fill(~allowed, neg), dim=-1)
    return MaskedHeads(log_probs, allowed, has_choice)


def sample(heads: MaskedHeads, deterministic: bool) -> Tensor:
    """One action per head, int64 ``[..., H]``; a masked action is never returned.

    Stochastic sampling is the exponential-race form of the Gumbel-max trick: argmax of
    ``p / E`` with ``E ~ Exp(1)`` draws from ``p``. ``E = -log(U)`` from a uniform draw is
    several times cheaper on CPU than ``exponential_``. It runs on the device without a sync.
    """
    if deterministic:
        return heads.log_probs.argmax(dim=-1)
    probs = heads.log_probs.exp()
    race = probs / torch.rand_like(probs).log_().neg_()
    # Masked entries have p = 0, but so can a degenerate race (U = 0 gives E = inf and a score
    # of 0 everywhere); masked entries are pushed below every allowed score explicitly.
    return race.masked_fill(~heads.allowed, -1.0).argmax(dim=-1)


def log_prob(heads: MaskedHeads, actions: Tensor) -> Tensor:
    """Log-probability of ``actions`` (int64 ``[..., H]``) per head; 0 for empty rows."""
    chosen = heads.log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return chosen.masked_fill(~heads.has_choice, 0.0)


def entropy(heads: MaskedHeads) -> Tensor:
    """Entropy per head ``[..., H]`` over the allowed actions; 0 for empty rows."""
    p_log_p = (heads.log_probs.exp() * heads.log_probs).masked_fill(~heads.allowed, 0.0)
    return -p_log_p.sum(dim=-1)
