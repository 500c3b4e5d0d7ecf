"""Fixed tables of the simulated host: blueprint x slot compatibility, style fit, synergies,
blend curves, and the constants that scale rewards.

Every table is drawn once from a fixed seed (independent of the environment's seed) so that a
blueprint's identity carries the same meaning in every episode and every run: that is what
lets an agent which sees ``blueprint_indices`` learn which seeds to keep.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Final

import torch

from contracts.phase4 import NUM_BLUEPRINTS, AlphaCurve, AlphaSpeed


class Stage(IntEnum):
    """Lifecycle stage of a slot."""

    EMPTY = 0
    TRAINING = 1  # planted, trains in isolation with alpha 0
    BLENDING = 2  # alpha moves towards its target
    HOLDING = 3  # alpha at its target: can be fossilized
    FOSSILIZED = 4  # permanent: frozen, no rent, cannot be pruned
    PRUNING = 5  # alpha decays to 0, then the slot is empty again


NUM_STAGES: Final = len(Stage)

#: Epochs a SET_ALPHA_TARGET or PRUNE blend takes for each alpha_speed (INSTANT: this epoch).
SPEED_EPOCHS: Final[tuple[int, ...]] = (0, 2, 4, 8)
MAX_BLEND_EPOCHS: Final = 8

# Reward model, in "accuracy points per epoch" scaled so that episode returns are O(1..10).
#: Largest |quality| of a blueprint in a slot, per epoch, fully blended and mature.
QUALITY_SCALE: Final = 0.25
#: Negative qualities are scaled by this.
HARM_FACTOR: Final = 2.5
#: Maturity m = 1 - exp(-age / MATURITY_EPOCHS): young seeds contribute (and harm) less.
MATURITY_EPOCHS: Final = 3.0
#: Per-epoch cost of a live, not yet fossilized seed (it trains beside the host).
RENT: Final = 0.01
#: One-off cost of planting a seed.
GERMINATE_COST: Final = 0.02
#: Blend shock: moving alpha by d in one epoch costs SHOCK * d**2 (instant moves are costly).
SHOCK: Final = 0.3
#: Host collapse: total seed contribution below this ends the episode (terminated).
COLLAPSE_THRESHOLD: Final = -0.5
COLLAPSE_PENALTY: Final = 1.0
#: Std of the per-episode perturbation of the compatibility table (hidden).
EPISODE_QUALITY_NOISE: Final = 0.03
#: Std of the noise on the per-slot contribution that the features report.
CONTRIBUTION_NOISE: Final = 0.3
#: Weight of the newest noisy contribution in the reported moving average.
CONTRIBUTION_EMA: Final = 0.35
#: Std of the noise on the reported host accuracy.
ACCURACY_NOISE: Final = 0.03

# Episode start: slots may already hold seeds planted by an earlier phase (the agent must judge
# them), and only a few blueprints are offered for germination in each episode.
PREPLANT_PROB: Final = 0.9
#: Alpha targets (indices into ALPHA_TARGETS) a pre-planted seed may hold.
PREPLANT_TARGETS: Final[tuple[int, ...]] = (1, 2)
PREPLANT_MAX_AGE: Final = 6
AVAILABLE_BLUEPRINTS: Final = 2

_TABLE_SEED: Final = 20_250_404


def _generator(offset: int) -> torch.Generator:
    return torch.Generator().manual_seed(_TABLE_SEED + offset)


def quality_table(num_slots: int) -> torch.Tensor:
    """``[NUM_BLUEPRINTS, num_slots]`` per-epoch contribution of a mature, fully blended seed in
    its preferred style. About a third of the entries are negative (harmful in that slot).

    A blueprint has a general quality plus a slot-specific interaction; column ``s`` depends
    only on ``s``, so a slot keeps its meaning when the number of slots changes.
    """
    general = torch.randn(NUM_BLUEPRINTS, generator=_generator(0)) * 0.6 + 0.15
    cols = [
        torch.randn(NUM_BLUEPRINTS, generator=_generator(1 + s)) * 0.5 for s in range(num_slots)
    ]
    interaction = torch.stack(cols, dim=1)
    q = QUALITY_SCALE * torch.tanh(general[:, None] + interaction)
    # Harm is steeper than help: blending a bad seed in "to see" is expensive.
    return torch.where(q < 0, HARM_FACTOR * q, q)


def offer_pool(quality: torch.Tensor, min_size: int) -> torch.Tensor:
    """Blueprints the library offers for germination: those that help in every slot (the
    library is vetted; harmful seeds only come from the earlier phase), at least ``min_size``
    of them, the least harmful first when too few help everywhere."""
    worst = quality.min(1).values
    order = worst.argsort(descending=True)
    size = max(int((worst > 0).sum()), min_size)
    return order[:size].sort().values


def style_fit_table() -> torch.Tensor:
    """``[NUM_BLUEPRINTS, 4]`` multiplier of a blueprint's contribution per germination style:
    1.0 for its preferred style, 0.8..0.95 for the others.

    Mild on purpose: a factored policy samples style and blueprint independently, so it cannot
    match the two exactly at germination; a large style effect would mostly measure that."""
    g = _generator(100)
    fit = 0.8 + 0.15 * torch.rand(NUM_BLUEPRINTS, 4, generator=g)
    preferred = torch.randint(0, 4, (NUM_BLUEPRINTS,), generator=g)
    fit[torch.arange(NUM_BLUEPRINTS), preferred] = 1.0
    return fit


def synergy_table() -> torch.Tensor:
    """``[NUM_BLUEPRINTS, NUM_BLUEPRINTS]`` symmetric pairwise bonus (or clash) of two blended
    seeds living in the same host, per epoch, scaled by both seeds' alpha and maturity."""
    g = _generator(200)
    raw = torch.randn(NUM_BLUEPRINTS, NUM_BLUEPRINTS, generator=g)
    sym = (raw + raw.T) / math.sqrt(2.0)
    # Sparse: only strong pairs matter, so a few combinations are worth seeking or avoiding.
    sym = torch.where(sym.abs() > 1.5, sym, torch.zeros_like(sym))
    sym.fill_diagonal_(0.0)
    return 0.04 * sym


def curve_table() -> torch.Tensor:
    """``[num_curves, MAX_BLEND_EPOCHS + 1, MAX_BLEND_EPOCHS + 1]``: fraction of a blend done
    after ``step`` of ``total`` epochs for each alpha curve (``total`` 0 means instant)."""
    n = MAX_BLEND_EPOCHS + 1
    total = torch.arange(n, dtype=torch.float64)[:, None]
    step = torch.arange(n, dtype=torch.float64)[None, :]
    x = torch.where(total > 0, (step / total.clamp(min=1)).clamp(max=1.0), torch.ones(n, n))

    def sigmoid(k: float) -> torch.Tensor:
        lo, hi = 1 / (1 + math.exp(k / 2)), 1 / (1 + math.exp(-k / 2))
        return (torch.sigmoid(k * (x - 0.5)) - lo) / (hi - lo)

    curves = {
        AlphaCurve.LINEAR: x,
        AlphaCurve.COSINE: (1 - torch.cos(math.pi * x)) / 2,
        AlphaCurve.SIGMOID_GENTLE: sigmoid(4.0),
        AlphaCurve.SIGMOID: sigmoid(8.0),
        AlphaCurve.SIGMOID_SHARP: sigmoid(16.0),
    }
    return torch.stack([curves[c] for c in AlphaCurve]).to(torch.float32)


assert len(SPEED_EPOCHS) == len(AlphaSpeed)
