"""The masked categorical math shared by rollout and update, checked against references."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical

from contracts.phase4 import HEAD_NAMES, head_sizes
from esper_ref import distributions as dist

SIZES = head_sizes(3)


def layout() -> dist.HeadLayout:
    return dist.HeadLayout(SIZES)


def pack(lay: dist.HeadLayout, masks: list[torch.Tensor], lead: tuple[int, ...]) -> torch.Tensor:
    return lay.pack_masks(dict(zip(SIZES, masks, strict=True)), lead)


def random_masks(batch: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    masks = []
    for size in SIZES.values():
        m = torch.rand(batch, size, generator=g) < 0.5
        m[:, size // 2] = True
        masks.append(m)
    return masks


def test_pack_masks_places_each_head_and_pads_with_false() -> None:
    lay = layout()
    masks = random_masks(4)
    packed = pack(lay, masks, (4,))
    assert packed.shape == (4, len(HEAD_NAMES), max(SIZES.values()))
    for h, (name, size) in enumerate(SIZES.items()):
        assert torch.equal(packed[:, h, :size], masks[h]), name
        assert not packed[:, h, size:].any()
    none = lay.pack_masks(None, (2, 3))
    assert none.shape == (2, 3, len(SIZES), lay.max_size)
    assert torch.equal(none[0, 0], lay.valid)
    with pytest.raises(ValueError, match=r"missing head\(s\) \['slot'"):
        lay.pack_masks({"op": masks[0]}, (4,))
    split = lay.split(packed)
    assert list(split) == list(HEAD_NAMES)
    assert all(split[n].shape == (4, s) for n, s in SIZES.items())


def test_log_prob_and_entropy_match_a_masked_categorical() -> None:
    lay = layout()
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(16, lay.num_heads, lay.max_size, generator=g)
    masks = random_masks(16)
    heads = dist.masked_log_softmax(logits, pack(lay, masks, (16,)), lay.first_column)
    actions = dist.sample(heads, deterministic=False)
    lp = dist.log_prob(heads, actions)
    ent = dist.entropy(heads)
    for h, size in enumerate(SIZES.values()):
        ref = Categorical(logits=logits[:, h, :size].masked_fill(~masks[h], float("-inf")))
        torch.testing.assert_close(lp[:, h], ref.log_prob(actions[:, h]))
        p = ref.probs
        ref_entropy = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)
        torch.testing.assert_close(ent[:, h], ref_entropy)


def test_sampling_frequencies_follow_the_masked_policy() -> None:
    lay = layout()
    torch.manual_seed(2)
    n = 20000
    row = torch.randn(lay.num_heads, lay.max_size)
    logits = row.expand(n, -1, -1)
    masks = [m[:1].expand(n, -1) for m in random_masks(1, seed=3)]
    heads = dist.masked_log_softmax(logits, pack(lay, masks, (n,)), lay.first_column)
    actions = dist.sample(heads, deterministic=False)
    for h, size in enumerate(SIZES.values()):
        freq = torch.bincount(actions[:, h], minlength=lay.max_size).float() / n
        expected = heads.log_probs[0, h].exp()
        assert (freq[size:] == 0).all()
        assert (freq[:size][~masks[h][0]] == 0).all()
        torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)


def test_a_degenerate_race_cannot_select_a_masked_action(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Uniform draws of 0 give Exp = inf and a score of 0 for every entry, masked or not."""
    lay = layout()
    masks = random_masks(3)
    for m in masks:
        m[:, 0] = False  # argmax of an all-zero race would pick index 0
    logits = torch.zeros(3, lay.num_heads, lay.max_size)
    heads = dist.masked_log_softmax(logits, pack(lay, masks, (3,)), lay.first_column)
    monkeypatch.setattr(torch, "rand_like", torch.zeros_like)
    actions = dist.sample(heads, deterministic=False)
    assert heads.allowed.gather(-1, actions.unsqueeze(-1)).all()


def test_all_false_rows_fall_back_to_a_dummy_action_zero() -> None:
    lay = layout()
    masks = [torch.zeros(2, s, dtype=torch.bool) for s in SIZES.values()]
    masks[0][0, 3] = True  # only row 0 of the op head allows something
    logits = torch.randn(2, lay.num_heads, lay.max_size, requires_grad=True)
    heads = dist.masked_log_softmax(logits, pack(lay, masks, (2,)), lay.first_column)
    assert heads.has_choice[0, 0] and not heads.has_choice[1].any()
    for deterministic in (True, False):
        actions = dist.sample(heads, deterministic)
        assert actions[0, 0] == 3
        assert (actions[1] == 0).all() and (actions[0, 1:] == 0).all()
    lp = dist.log_prob(heads, actions)
    ent = dist.entropy(heads)
    assert (lp[~heads.has_choice] == 0).all() and (ent[~heads.has_choice] == 0).all()
    (lp.sum() + ent.sum()).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 6),
    density=st.floats(0.0, 1.0),
    scale=st.floats(0.0, 50.0),
)
def test_any_mask_gives_allowed_actions_and_finite_values(
    seed: int, batch: int, density: float, scale: float
) -> None:
    """Property: whatever the masks (all-False rows included) and logit scale, sampled and
    greedy actions are allowed, log-probs and entropies are finite, and re-scoring the sampled
    actions reproduces their log-probs exactly."""
    lay = layout()
    g = torch.Generator().manual_seed(seed)
    masks = [torch.rand(batch, s, generator=g) < density for s in SIZES.values()]
    logits = scale * torch.randn(batch, lay.num_heads, lay.max_size, generator=g)
    heads = dist.masked_log_softmax(logits, pack(lay, masks, (batch,)), lay.first_column)
    for deterministic in (False, True):
        actions = dist.sample(heads, deterministic)
        for h, mask in enumerate(masks):
            chosen_ok = mask.gather(-1, actions[:, h : h + 1]).squeeze(-1)
            assert (chosen_ok | ~mask.any(-1)).all()
            assert (actions[:, h][~mask.any(-1)] == 0).all()
        lp = dist.log_prob(heads, actions)
        assert torch.isfinite(lp).all() and (lp <= 0).all()
        again = dist.masked_log_softmax(logits, pack(lay, masks, (batch,)), lay.first_column)
        assert torch.equal(dist.log_prob(again, actions), lp)
    ent = dist.entropy(heads)
    assert torch.isfinite(ent).all() and (ent >= -1e-6).all()
