"""Scripted policies for the slot lifecycle task: an oracle that reads the hidden state, a
"blind" oracle that may not look at the blueprints already in the slots, and a uniformly random
masked policy. They set the scale of the task: ``target_return`` is 80% of the oracle's mean
return, the level a learner has to reach.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import torch
from torch import Tensor

from contracts.phase4 import HEAD_NAMES, AlphaCurve, AlphaSpeed, Op, Tempo
from esper_ref.env.tables import Stage
from esper_ref.env.vec_env import EnvObs, SlotLifecycleVecEnv

#: Fraction of the scripted oracle's mean return that counts as solving the task.
TARGET_FRACTION: Final = 0.8

Policy = Callable[[SlotLifecycleVecEnv, EnvObs], dict[str, Tensor]]

# Oracle thresholds (per-epoch value of a seed, in reward units).
_PRUNE_BELOW: Final = 0.03
_REPLACE_MARGIN: Final = 0.10
_REPLACE_MIN_REMAINING: Final = 14
_GERMINATE_ABOVE: Final = 0.03
_GERMINATE_MIN_REMAINING: Final = 7
_FOSSILIZE_MATURITY: Final = 0.9
_FOSSILIZE_LAST_EPOCHS: Final = 3
#: The blind oracle judges a seed from its reported contribution once alpha*maturity >= this.
_BLIND_KNOWN_EFFECT: Final = 0.3


def oracle_actions(env: SlotLifecycleVecEnv, blind: bool = False) -> dict[str, Tensor]:
    """One greedy, rule-based action per row from the hidden state.

    Priorities: prune a harmful seed (or a weak one while a much better blueprint is offered
    and time remains), germinate the best offered blueprint (in its best style, fast tempo,
    alpha target 1.0) into an empty slot, advance a good seed to blending, raise a good seed
    to alpha 1.0 in its best style, fossilize a good mature seed, else wait.

    ``blind=True`` keeps everything the oracle knows except the identity of seeds it did not
    plant itself: it judges those from the noisy contribution that the features report (after
    blending them in to find out) and cannot restyle them.
    """
    hs = env.hidden_state()
    n, num_slots, dev = env.num_envs, env.num_slots, env.device
    stage, bp, style = hs["stage"], hs["blueprint"], hs["style"]
    alpha, target, maturity = hs["alpha"], hs["target"], hs["maturity"]
    q_ep, avail = hs["q_ep"], hs["avail"]
    remaining = (env.episode_length - hs["t"])[:, None]
    rows = torch.arange(n, device=dev)[:, None]

    best_fit, best_style_of = env.style_fit.max(1)
    bpc = bp.clamp(min=0)
    q_seed = q_ep.gather(1, bpc[:, None, :]).squeeze(1)
    value = q_seed * best_fit[bpc]  # with the best style
    best_style = best_style_of[bpc]
    offered = torch.where(avail[:, :, None], q_ep * best_fit[None, :, None], -1e9)
    best_offer, best_b = offered.max(1)  # [n, S]

    judgeable = (stage == Stage.TRAINING) | (stage == Stage.BLENDING) | (stage == Stage.HOLDING)
    known = torch.ones_like(judgeable)
    if blind:
        own = hs["own"] == 1
        eff = alpha * maturity
        known_effect = eff >= _BLIND_KNOWN_EFFECT
        estimate = hs["contrib_ema"] / eff.clamp(min=1e-3)
        value = torch.where(own, value, estimate)
        known = own | known_effect
        best_style = torch.where(own, best_style, style)
    good = known & (value >= _PRUNE_BELOW)
    harmful = known & (value < _PRUNE_BELOW)
    weak = known & (value < best_offer - _REPLACE_MARGIN) & (remaining >= _REPLACE_MIN_REMAINING)

    prune = judgeable & (harmful | weak)
    germinate = (
        (stage == Stage.EMPTY)
        & (best_offer > _GERMINATE_ABOVE)
        & (remaining >= _GERMINATE_MIN_REMAINING)
    )
    # Unknown seeds (blind only) are blended in, so that their contribution shows.
    advance = (stage == Stage.TRAINING) & (good | ~known)
    settled = (target >= 0.999) & (style == best_style)
    raise_ = (
        ((stage == Stage.BLENDING) | (stage == Stage.HOLDING))
        & (good | ~known)
        & ~settled
        & (remaining >= 3)
    )
    if blind:
        # Without knowing a seed, only its alpha target can be fixed, not its style.
        raise_ = raise_ & (target < 0.999)
    fossilize = (
        (stage == Stage.HOLDING)
        & good
        & ((maturity >= _FOSSILIZE_MATURITY) | (remaining <= _FOSSILIZE_LAST_EPOCHS))
    )

    candidates = [
        (Op.PRUNE, prune),
        (Op.GERMINATE, germinate),
        (Op.ADVANCE, advance),
        (Op.SET_ALPHA_TARGET, raise_),
        (Op.FOSSILIZE, fossilize),
    ]
    flat = torch.stack([c for _, c in candidates], dim=1).reshape(n, -1)
    chosen = flat.long().argmax(1)  # first candidate in priority order
    any_ = flat.any(1)
    k, slot = chosen // num_slots, chosen % num_slots
    op_of = torch.tensor([int(o) for o, _ in candidates], device=dev)
    op = torch.where(any_, op_of[k], int(Op.WAIT))
    obs_masks = env.observation.masks
    slot = torch.where(any_, slot, obs_masks["slot"].long().argmax(1))

    at = rows.squeeze(1), slot
    blueprint = torch.where(op == Op.GERMINATE, best_b[at], obs_masks["blueprint"].long().argmax(1))
    germ_style = best_style_of[best_b[at]]
    style_a = torch.where(op == Op.GERMINATE, germ_style, best_style[at])
    far = (1.0 - alpha[at]).abs() > 0.3
    prune_far = alpha[at] > 0.5
    speed = torch.where(
        op == Op.PRUNE,
        torch.where(prune_far, int(AlphaSpeed.FAST), int(AlphaSpeed.INSTANT)),
        torch.where(far, int(AlphaSpeed.FAST), int(AlphaSpeed.INSTANT)),
    )
    full = torch.full((n,), 2, dtype=torch.int64, device=dev)  # alpha target 1.0
    return {
        "op": op,
        "slot": slot,
        "blueprint": blueprint,
        "style": style_a,
        "tempo": torch.full((n,), int(Tempo.FAST), dtype=torch.int64, device=dev),
        "alpha_target": full,
        "alpha_speed": speed,
        "alpha_curve": torch.full((n,), int(AlphaCurve.LINEAR), dtype=torch.int64, device=dev),
    }


def random_actions(masks: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    """Uniformly random allowed choice per head (heads sampled independently, as a factored
    policy does; a jointly invalid op and slot then falls back to WAIT in the env)."""
    return {
        h: torch.multinomial(masks[h].float(), 1, generator=generator).squeeze(1)
        for h in HEAD_NAMES
    }


def evaluate_policy(
    policy: Policy,
    num_episodes: int = 256,
    seed: int = 0,
    num_slots: int = 3,
    episode_length: int = 25,
    device: str | torch.device = "cpu",
) -> float:
    """Mean return of ``policy`` over the first episode of ``num_episodes`` env rows (one
    episode per row, so short and long episodes are weighted alike)."""
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    env = SlotLifecycleVecEnv(num_episodes, num_slots, episode_length, seed=seed, device=device)
    obs = env.reset()
    returns = torch.zeros(num_episodes, device=env.device)
    finished = torch.zeros(num_episodes, dtype=torch.bool, device=env.device)
    while not bool(finished.all()):
        obs, _, terminated, truncated, info = env.step(policy(env, obs))
        ended = (terminated | truncated) & ~finished
        returns = torch.where(ended, info["episode_return"], returns)
        finished |= ended
    return float(returns.mean())


def scripted_oracle_return(
    num_episodes: int = 512,
    seed: int = 0,
    num_slots: int = 3,
    episode_length: int = 25,
    blind: bool = False,
    device: str | torch.device = "cpu",
) -> float:
    """Mean return of the scripted oracle (``blind=True``: the oracle that ignores the identity
    of seeds it did not plant). ``TARGET_FRACTION`` of the full oracle's return is the task's
    target, see ``target_return``."""
    return evaluate_policy(
        lambda env, _obs: oracle_actions(env, blind=blind),
        num_episodes,
        seed,
        num_slots,
        episode_length,
        device,
    )


def random_return(
    num_episodes: int = 512,
    seed: int = 0,
    num_slots: int = 3,
    episode_length: int = 25,
    device: str | torch.device = "cpu",
) -> float:
    """Mean return of the uniformly random masked policy."""
    gen = torch.Generator(device=torch.device(device)).manual_seed(seed + 1)
    return evaluate_policy(
        lambda _env, obs: random_actions(obs.masks, gen),
        num_episodes,
        seed,
        num_slots,
        episode_length,
        device,
    )


def target_return(
    num_episodes: int = 512,
    seed: int = 0,
    num_slots: int = 3,
    episode_length: int = 25,
) -> float:
    """The return a learner must reach: ``TARGET_FRACTION`` (80%) of the scripted oracle's."""
    return TARGET_FRACTION * scripted_oracle_return(num_episodes, seed, num_slots, episode_length)
