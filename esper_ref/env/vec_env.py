"""``SlotLifecycleVecEnv``: the slot/seed lifecycle of a growing host network, batched in torch.

Each of ``num_envs`` rows is one training run of a host network with ``num_slots`` slots. Every
step is one epoch: the agent picks one op for one slot (8 factored heads, see
``contracts.phase4``), the seeds blend, mature and contribute, and the reward is the accuracy
the seeds add to the host during that epoch minus small costs.

What a seed is worth depends on its blueprint, its slot (a fixed blueprint x slot compatibility
table in which about a third of the pairs are harmful), its germination style, its alpha, its
maturity and the other blueprints in the host (sparse pairwise synergies). The observation
``features`` never tell blueprints apart: they hold generic slot statistics, and the per-slot
contribution they report is noisy and zero until a seed is blended in. ``blueprint_indices``
does tell them apart. Episodes start with seeds already planted by an earlier phase (random
blueprints, some harmful), while the library offers only two vetted blueprints per episode,
each plantable once: an agent that sees ``blueprint_indices`` can prune the harmful seeds at
once and keep the good ones, while one that does not must either blend them in and wait for a
noisy signal or prune them all and leave a slot empty.

Everything is a batched tensor op on ``device`` with the environment's own generator: no
Python loop over environments, and a seed fixes every trajectory.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from contracts.phase4 import (
    ALPHA_TARGETS,
    HEAD_NAMES,
    NUM_BLUEPRINTS,
    NUM_OPS,
    TEMPO_EPOCHS,
    AlphaCurve,
    Op,
    head_sizes,
    obs_dim,
)
from esper_ref.env import tables as T
from esper_ref.env.tables import NUM_STAGES, Stage

#: The 24 global features, in order.
GLOBAL_FEATURE_NAMES: tuple[str, ...] = (
    "epoch_fraction",
    "epochs_left_fraction",
    "host_accuracy_noisy",
    "host_accuracy_delta_x10",
    "offers_left_fraction",
    "contribution_ema_sum",
    "contribution_ema_max",
    "contribution_ema_min",
    "live_seed_fraction",
    "episode_return_div10",
    "last_request_fell_back",
    "idle_epochs_fraction",
    *(f"stage_fraction_{s.name.lower()}" for s in Stage),
    *(f"op_allowed_{o.name.lower()}" for o in Op),
)
#: The 30 features of each slot, in order (slot after slot follow the global ones).
SLOT_FEATURE_NAMES: tuple[str, ...] = (
    "occupied",
    *(f"stage_{s.name.lower()}" for s in Stage),
    *(f"style_{i}" for i in range(4)),
    *(f"tempo_{i}" for i in range(3)),
    *(f"blend_curve_{c.name.lower()}" for c in AlphaCurve),
    "alpha",
    "alpha_target",
    "blend_left_fraction",
    "blend_left_epochs_div8",
    "age_fraction",
    "maturity",
    "contribution_noisy",
    "contribution_ema",
    "contribution_per_alpha_noisy",
    "epochs_in_stage_fraction",
    "alpha_delta",
)


def feature_names(num_slots: int) -> list[str]:
    """Names of the ``obs_dim(num_slots)`` feature columns."""
    slots = [f"slot{i}.{name}" for i in range(num_slots) for name in SLOT_FEATURE_NAMES]
    return [*GLOBAL_FEATURE_NAMES, *slots]


#: Every feature lies in [-FEATURE_BOUND, FEATURE_BOUND] (only noise could ever reach it).
FEATURE_BOUND = 10.0


class EnvObs(NamedTuple):
    """One observation of every environment row."""

    #: float32 ``[num_envs, obs_dim]``; never reveals which blueprint is in a slot.
    features: Tensor
    #: int64 ``[num_envs, num_slots]``: 0..12 for the blueprint in the slot, -1 when empty.
    blueprint_indices: Tensor
    #: head name -> bool ``[num_envs, head_size]``, True = allowed; >= 1 allowed per row.
    masks: dict[str, Tensor]


def _allowed_stage_table() -> Tensor:
    """``[NUM_STAGES, NUM_OPS]``: whether an op may act on a slot in a given stage."""
    table = torch.zeros(NUM_STAGES, NUM_OPS, dtype=torch.bool)
    table[:, Op.WAIT] = True
    table[Stage.EMPTY, Op.GERMINATE] = True
    for st in (Stage.BLENDING, Stage.HOLDING):
        table[st, Op.SET_ALPHA_TARGET] = True
    for st in (Stage.TRAINING, Stage.BLENDING, Stage.HOLDING):
        table[st, Op.PRUNE] = True
    table[Stage.HOLDING, Op.FOSSILIZE] = True
    table[Stage.TRAINING, Op.ADVANCE] = True
    return table


def _category_table() -> Tensor:
    """``[NUM_STAGES * 4 * 3 * num_curves, 19]``: the categorical features of a slot for each
    (stage, style, tempo, curve): occupied, stage one-hot, then style and tempo one-hots (zero
    for an empty slot) and the curve one-hot (zero unless alpha is moving)."""
    rows = []
    for stage in range(NUM_STAGES):
        occupied = float(stage != Stage.EMPTY)
        moving = float(stage in (Stage.BLENDING, Stage.PRUNING))
        for style in range(4):
            for tempo in range(3):
                for curve in range(len(AlphaCurve)):
                    row = [occupied] + [float(stage == i) for i in range(NUM_STAGES)]
                    row += [occupied * (style == i) for i in range(4)]
                    row += [occupied * (tempo == i) for i in range(3)]
                    row += [moving * (curve == i) for i in range(len(AlphaCurve))]
                    rows.append(row)
    return torch.tensor(rows, dtype=torch.float32)


# Stage a slot enters when the op acts on it (WAIT never changes a slot; its entry is unused).
_STAGE_AFTER_OP = (
    Stage.EMPTY,
    Stage.TRAINING,
    Stage.BLENDING,
    Stage.PRUNING,
    Stage.FOSSILIZED,
    Stage.BLENDING,
)

# Slot state tensors ([num_envs, num_slots]) with the value an empty slot holds.
_SLOT_FIELDS: dict[str, tuple[torch.dtype, float]] = {
    "stage": (torch.int64, Stage.EMPTY),
    "blueprint": (torch.int64, -1),
    "style": (torch.int64, 0),
    "tempo": (torch.int64, 0),
    "target": (torch.float32, 0.0),
    "alpha": (torch.float32, 0.0),
    "dalpha": (torch.float32, 0.0),
    "blend_from": (torch.float32, 0.0),
    "blend_to": (torch.float32, 0.0),
    "blend_total": (torch.int64, 0),
    "blend_step": (torch.int64, 0),
    "blend_curve": (torch.int64, 0),
    "age": (torch.float32, 0.0),
    "maturity": (torch.float32, 0.0),
    "since": (torch.float32, 0.0),
    "contrib_obs": (torch.float32, 0.0),
    "contrib_ema": (torch.float32, 0.0),
    # Hidden, for oracles only: 1 where the agent planted the seed in this episode.
    "own": (torch.int64, 0),
}
# Per-row state tensors ([num_envs]).
_ROW_FIELDS: dict[str, torch.dtype] = {
    "t": torch.int64,
    "acc0": torch.float32,
    "acc_obs": torch.float32,
    "acc_prev": torch.float32,
    "ep_return": torch.float32,
    "ep_len": torch.int64,
    "fallback": torch.float32,
    "idle": torch.float32,
}


class SlotLifecycleVecEnv:
    """Batched slot/seed lifecycle environment with auto-reset (see the module docstring).

    ``step`` takes int64 ``[num_envs]`` actions per head (names in ``HEAD_NAMES``) and returns
    ``(next_obs, reward, terminated, truncated, info)``. Rows that ended are reset inside
    ``next_obs``; ``info["final_obs"]`` holds the post-step state of every row (the true final
    state of the rows that ended), ``info["executed_op"]`` the op that actually ran (a
    combination the state does not allow falls back to WAIT), and ``info["episode_return"]``
    and ``info["episode_length"]`` are valid where the row ended.

    An episode is truncated at ``episode_length`` epochs; it terminates early when the host
    collapses (total seed contribution below ``COLLAPSE_THRESHOLD``, with a penalty) or when
    every slot is fossilized (nothing is left to decide). Fossilizing a seed pays its current
    per-epoch gain for every remaining epoch at once; it is frozen and pays nothing later.
    """

    def __init__(
        self,
        num_envs: int = 16,
        num_slots: int = 3,
        episode_length: int = 25,
        seed: int = 0,
        device: str | torch.device = "cpu",
        preplant_prob: float = T.PREPLANT_PROB,
        available_blueprints: int = T.AVAILABLE_BLUEPRINTS,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if num_slots < 1:
            raise ValueError(f"num_slots must be >= 1, got {num_slots}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        if not 0.0 <= preplant_prob <= 1.0:
            raise ValueError(f"preplant_prob must be in [0, 1], got {preplant_prob}")
        if not 1 <= available_blueprints <= NUM_BLUEPRINTS:
            raise ValueError(
                f"available_blueprints must be in [1, {NUM_BLUEPRINTS}], got {available_blueprints}"
            )
        self.num_envs = num_envs
        self.num_slots = num_slots
        self.episode_length = episode_length
        self.obs_dim = obs_dim(num_slots)
        self.device = torch.device(device)
        self.head_sizes = head_sizes(num_slots)
        self.preplant_prob = preplant_prob
        self.available_blueprints = available_blueprints
        self.seed = seed

        dev = self.device
        self.quality = T.quality_table(num_slots).to(dev)
        self.style_fit = T.style_fit_table().to(dev)
        self._pool = T.offer_pool(self.quality, available_blueprints).to(dev)
        self._preplant_targets = torch.tensor(T.PREPLANT_TARGETS, device=dev)
        self.synergy = T.synergy_table().to(dev)
        self._curve_flat = T.curve_table().reshape(-1).to(dev)
        self._allowed = _allowed_stage_table().to(dev)
        self._category_table = _category_table().to(dev)
        self._stage_after_op = torch.tensor([int(s) for s in _STAGE_AFTER_OP], device=dev)
        self._alpha_targets = torch.tensor(ALPHA_TARGETS, device=dev)
        self._tempo_epochs = torch.tensor(TEMPO_EPOCHS, device=dev)
        self._speed_epochs = torch.tensor(T.SPEED_EPOCHS, device=dev)
        self._head_size_t = torch.tensor([self.head_sizes[h] for h in HEAD_NAMES], device=dev)
        self._slot_range = torch.arange(num_slots, device=dev)
        self._rows = torch.arange(num_envs, device=dev)

        self._gen = torch.Generator(device=dev)
        self._gen.manual_seed(seed)
        n, s = num_envs, num_slots
        self._slot: dict[str, Tensor] = {
            k: torch.full((n, s), fill, dtype=dt, device=dev)
            for k, (dt, fill) in _SLOT_FIELDS.items()
        }
        self._row: dict[str, Tensor] = {
            k: torch.zeros(n, dtype=dt, device=dev) for k, dt in _ROW_FIELDS.items()
        }
        #: Hidden per-episode compatibility: the fixed table plus a small perturbation.
        self._q_ep = torch.zeros(n, NUM_BLUEPRINTS, s, device=dev)
        self._avail = torch.zeros(n, NUM_BLUEPRINTS, dtype=torch.bool, device=dev)
        self._obs: EnvObs | None = None

    # ------------------------------------------------------------------ reset

    def reset(self, seed: int | None = None) -> EnvObs:
        """Start a fresh episode in every row; ``seed`` reseeds the environment's generator."""
        if seed is not None:
            self.seed = seed
            self._gen.manual_seed(seed)
        self._reset_rows(self._rows)
        self._obs = self._observe()
        return self._obs

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self._gen, device=self.device)

    def _reset_rows(self, idx: Tensor) -> None:
        """Fresh episodes for rows ``idx``: random pre-planted seeds and blueprint offer."""
        k, s, dev = idx.shape[0], self.num_slots, self.device
        u = self._rand(8, k, s)  # one draw for every per-slot choice

        def pick(row: int, n: int) -> Tensor:
            return (u[row] * n).long().clamp(max=n - 1)

        occupied = u[0] < self.preplant_prob
        stage = torch.where(occupied, 1 + pick(1, 3), Stage.EMPTY)  # TRAINING..HOLDING
        blueprint = torch.where(occupied, pick(2, NUM_BLUEPRINTS), -1)
        style = pick(3, 4) * occupied
        tempo = pick(4, 3) * occupied
        target = self._alpha_targets[self._preplant_targets[pick(5, len(T.PREPLANT_TARGETS))]]
        target = target * occupied
        blend_total = self._tempo_epochs[tempo]
        blend_step = 1 + (u[6] * (blend_total - 1)).long()
        blending = stage == Stage.BLENDING
        holding = stage == Stage.HOLDING
        frac = self._curve_frac(torch.full_like(stage, AlphaCurve.LINEAR), blend_total, blend_step)
        alpha = torch.where(blending, target * frac, torch.where(holding, target, 0.0))
        age = ((1 + pick(7, T.PREPLANT_MAX_AGE)) * occupied).float()
        new = {
            "stage": stage,
            "blueprint": blueprint,
            "style": style,
            "tempo": tempo,
            "target": target,
            "alpha": alpha,
            "blend_to": torch.where(blending, target, 0.0),
            "blend_total": torch.where(blending, blend_total, 0),
            "blend_step": torch.where(blending, blend_step, 0),
            "age": age,
            "maturity": 1.0 - torch.exp(-age / T.MATURITY_EPOCHS),
        }
        for key, (_, fill) in _SLOT_FIELDS.items():
            self._slot[key][idx] = new.get(key, fill)
        row_u = self._rand(k)
        for key in _ROW_FIELDS:
            self._row[key][idx] = 0
        acc0 = 0.45 + 0.1 * row_u
        for key in ("acc0", "acc_obs", "acc_prev"):
            self._row[key][idx] = acc0
        noise = torch.randn((k, NUM_BLUEPRINTS, s), generator=self._gen, device=dev)
        self._q_ep[idx] = self.quality + T.EPISODE_QUALITY_NOISE * noise
        chosen = self._rand(k, self._pool.shape[0]).topk(self.available_blueprints, dim=1).indices
        offered = self._pool[chosen]
        avail = torch.zeros(k, NUM_BLUEPRINTS, dtype=torch.bool, device=dev)
        self._avail[idx] = avail.scatter_(1, offered, True)

    # ------------------------------------------------------------------ step

    def _curve_frac(self, curve: Tensor, total: Tensor, step: Tensor) -> Tensor:
        n = T.MAX_BLEND_EPOCHS + 1
        flat = (curve * n + total.clamp(max=n - 1)) * n + step.clamp(max=n - 1)
        return self._curve_flat[flat]

    def _check_actions(self, actions: dict[str, Tensor]) -> Tensor:
        missing = [h for h in HEAD_NAMES if h not in actions]
        if missing:
            raise KeyError(f"step: actions lack heads {missing}; expected all of {HEAD_NAMES}")
        bad = [h for h in HEAD_NAMES if tuple(actions[h].shape) != (self.num_envs,)]
        if bad:
            raise ValueError(f"step: actions {bad} must have shape [num_envs={self.num_envs}]")
        stacked = torch.stack([actions[h].to(self.device) for h in HEAD_NAMES])
        if stacked.is_floating_point() or stacked.dtype == torch.bool:
            raise TypeError(f"step: actions must be integer tensors, got {stacked.dtype}")
        stacked = stacked.long()
        out_of_range = (stacked < 0) | (stacked >= self._head_size_t[:, None])
        if bool(out_of_range.any()):
            heads = [HEAD_NAMES[i] for i in out_of_range.any(1).nonzero().flatten().tolist()]
            raise ValueError(f"step: actions out of range for heads {heads}: {self.head_sizes}")
        return stacked

    def step(
        self, actions: dict[str, Tensor]
    ) -> tuple[EnvObs, Tensor, Tensor, Tensor, dict[str, Any]]:
        """Apply one op per row, advance every host one epoch, auto-reset rows that ended."""
        if self._obs is None:
            raise RuntimeError("step: call reset() before step()")
        with torch.no_grad():
            return self._step(self._check_actions(actions))

    def _step(self, a: Tensor) -> tuple[EnvObs, Tensor, Tensor, Tensor, dict[str, Any]]:
        op, slot, bp_a, style_a, tempo_a, target_a, speed_a, curve_a = a.unbind(0)
        S, R = self._slot, self._row
        rows = self._rows

        # Which requested (op, slot, blueprint) combinations the state allows; others -> WAIT.
        stage_sel = S["stage"][rows, slot]
        ok = self._allowed[stage_sel, op] & ((op != Op.GERMINATE) | self._avail[rows, bp_a])
        executed = torch.where(ok, op, Op.WAIT)

        # Each offered blueprint can be planted once per episode.
        planted = torch.zeros_like(self._avail).scatter_(
            1, bp_a[:, None], (executed == Op.GERMINATE)[:, None]
        )
        self._avail = self._avail & ~planted

        sel = self._slot_range[None, :] == slot[:, None]
        acts = sel & (executed != Op.WAIT)[:, None]
        germ = sel & (executed == Op.GERMINATE)[:, None]
        set_a = sel & (executed == Op.SET_ALPHA_TARGET)[:, None]
        blend_start = (
            sel
            & (
                (executed == Op.SET_ALPHA_TARGET)
                | (executed == Op.PRUNE)
                | (executed == Op.ADVANCE)
            )[:, None]
        )
        new_target = self._alpha_targets[target_a]
        target_sel = S["target"][rows, slot]
        tempo_sel = S["tempo"][rows, slot]
        is_adv = executed == Op.ADVANCE
        blend_to = torch.where(
            executed == Op.PRUNE,
            0.0,
            torch.where(executed == Op.SET_ALPHA_TARGET, new_target, target_sel),
        )
        blend_total = torch.where(
            is_adv, self._tempo_epochs[tempo_sel], self._speed_epochs[speed_a]
        )
        blend_curve = torch.where(is_adv, int(AlphaCurve.LINEAR), curve_a)

        stage_old = S["stage"]
        stage = torch.where(acts, self._stage_after_op[executed][:, None], stage_old)
        S["blueprint"] = torch.where(germ, bp_a[:, None], S["blueprint"])
        S["style"] = torch.where(germ | set_a, style_a[:, None], S["style"])
        S["tempo"] = torch.where(germ, tempo_a[:, None], S["tempo"])
        S["own"] = torch.where(germ, 1, S["own"])
        S["target"] = torch.where(germ | set_a, new_target[:, None], S["target"])
        alpha_old = torch.where(germ, 0.0, S["alpha"])
        S["age"] = torch.where(germ, 0.0, S["age"])
        S["contrib_ema"] = torch.where(germ, 0.0, S["contrib_ema"])
        S["blend_from"] = torch.where(blend_start, alpha_old, S["blend_from"])
        S["blend_to"] = torch.where(blend_start, blend_to[:, None], S["blend_to"])
        S["blend_total"] = torch.where(blend_start, blend_total[:, None], S["blend_total"])
        S["blend_curve"] = torch.where(blend_start, blend_curve[:, None], S["blend_curve"])
        step_ = torch.where(blend_start, 0, S["blend_step"])

        # One epoch passes: blends move along their curve, finished blends change stage.
        moving = (stage == Stage.BLENDING) | (stage == Stage.PRUNING)
        step_ = step_ + moving.long()
        frac = self._curve_frac(S["blend_curve"], S["blend_total"], step_)
        alpha = torch.where(
            moving, S["blend_from"] + (S["blend_to"] - S["blend_from"]) * frac, alpha_old
        )
        finished = moving & (step_ >= S["blend_total"])
        stage = torch.where(finished & (stage == Stage.BLENDING), int(Stage.HOLDING), stage)
        emptied = finished & (stage == Stage.PRUNING)
        stage = torch.where(emptied, int(Stage.EMPTY), stage)
        dalpha = alpha - alpha_old
        S["blend_step"] = torch.where(finished, 0, step_)
        S["since"] = torch.where(stage != stage_old, 0.0, S["since"] + 1.0)

        live = (stage >= Stage.TRAINING) & (stage != Stage.FOSSILIZED)
        age = S["age"] + live.float()
        maturity = torch.where(
            live, 1.0 - torch.exp(-age / T.MATURITY_EPOCHS), torch.where(germ, 0.0, S["maturity"])
        )
        if bool(emptied.any()):
            for key, (_, fill) in _SLOT_FIELDS.items():
                if key not in ("stage", "since"):
                    S[key] = S[key].masked_fill(emptied, fill)
            alpha = alpha.masked_fill(emptied, 0.0)
            age = age.masked_fill(emptied, 0.0)
            maturity = maturity.masked_fill(emptied, 0.0)
        S["stage"], S["alpha"], S["dalpha"], S["age"], S["maturity"] = (
            stage,
            alpha,
            dalpha,
            age,
            maturity,
        )

        # Contribution of each seed to the host this epoch, and the reward.
        # A fossilized seed is frozen: its gain for every remaining epoch is paid at once when
        # it is fossilized (a dense signal for the decision), and never again afterwards.
        contrib, occupied = self._contributions()
        total = contrib.sum(1)
        t = R["t"] + 1
        R["t"] = t
        remaining = (self.episode_length - t).clamp(min=0)
        fossil = stage == Stage.FOSSILIZED
        newly = fossil & sel & (executed == Op.FOSSILIZE)[:, None]
        weight = torch.where(newly, 1.0 + remaining[:, None].float(), (~fossil).float())
        rent = T.RENT * live.sum(1)
        shock = T.SHOCK * dalpha.square().sum(1)
        reward = (contrib * weight).sum(1) - rent - shock
        reward = reward - T.GERMINATE_COST * (executed == Op.GERMINATE)
        collapsed = total < T.COLLAPSE_THRESHOLD
        reward = reward - T.COLLAPSE_PENALTY * collapsed
        terminated = collapsed | fossil.all(1)
        truncated = (t >= self.episode_length) & ~terminated

        # What the features report: noisy contributions and a noisy host accuracy.
        noise = torch.randn(
            (self.num_envs, self.num_slots + 1), generator=self._gen, device=self.device
        )
        obs_c = torch.where(occupied, contrib + T.CONTRIBUTION_NOISE * noise[:, :-1], 0.0)
        S["contrib_obs"] = obs_c
        S["contrib_ema"] = torch.where(
            occupied, S["contrib_ema"] + T.CONTRIBUTION_EMA * (obs_c - S["contrib_ema"]), 0.0
        )
        R["acc_prev"] = R["acc_obs"]
        host = R["acc0"] + 0.25 * (1.0 - torch.exp(-t / 8.0)) + 0.1 * total
        R["acc_obs"] = host + T.ACCURACY_NOISE * noise[:, -1]
        R["fallback"] = (executed != op).float()
        R["idle"] = torch.where(executed == Op.WAIT, R["idle"] + 1.0, 0.0)
        R["ep_return"] = R["ep_return"] + reward
        R["ep_len"] = R["ep_len"] + 1

        final_obs = self._observe()
        done = terminated | truncated
        info: dict[str, Any] = {
            "final_obs": final_obs,
            "executed_op": executed,
            "episode_return": R["ep_return"].clone(),
            "episode_length": R["ep_len"].clone(),
            "collapsed": collapsed,
            "fell_back": executed != op,
        }
        if bool(done.any()):
            self._reset_rows(done.nonzero().flatten())
            next_obs = self._observe()
        else:
            next_obs = final_obs
        self._obs = next_obs
        return next_obs, reward, terminated, truncated, info

    def _contributions(self) -> tuple[Tensor, Tensor]:
        """Per-slot contribution ``[n, S]`` of the current seeds (pairwise synergy split evenly
        between the two seeds of a pair), and the occupancy mask."""
        S = self._slot
        bp = S["blueprint"]
        occupied = bp >= 0
        bpc = bp.clamp(min=0)
        q = self._q_ep.gather(1, bpc[:, None, :]).squeeze(1)
        fit = self.style_fit.reshape(-1)[bpc * 4 + S["style"]]
        eff = S["alpha"] * S["maturity"] * occupied
        pair = self.synergy[bpc[:, :, None], bpc[:, None, :]] * eff[:, :, None] * eff[:, None, :]
        return eff * q * fit + 0.5 * pair.sum(2), occupied

    # ------------------------------------------------------------------ observation

    def _masks(self) -> dict[str, Tensor]:
        n = self.num_envs
        offers_left = self._avail.any(1)
        op_slot = self._allowed[self._slot["stage"]]  # [n, S, ops]
        op_slot[..., Op.GERMINATE] &= offers_left[:, None]
        op_mask = op_slot.any(1)
        # A head whose choice cannot matter in this state allows everything (>= 1 allowed).
        slot_mask = op_slot[:, :, 1:].any(2)
        slot_mask = slot_mask | ~slot_mask.any(1, keepdim=True)
        blueprint_mask = self._avail | ~offers_left[:, None]
        masks = {"op": op_mask, "slot": slot_mask, "blueprint": blueprint_mask}
        for h in HEAD_NAMES[3:]:
            masks[h] = torch.ones(n, self.head_sizes[h], dtype=torch.bool, device=self.device)
        return masks

    def _observe(self) -> EnvObs:
        S, R, L = self._slot, self._row, float(self.episode_length)
        stage = S["stage"]
        # One lookup gives every categorical slot feature (see _category_table).
        code = ((stage * 4 + S["style"]) * 3 + S["tempo"]) * len(AlphaCurve) + S["blend_curve"]
        categorical = self._category_table[code]  # [n, S, 19]
        moving = (stage == Stage.BLENDING) | (stage == Stage.PRUNING)
        steps_left = (S["blend_total"] - S["blend_step"]) * moving
        eff = S["alpha"] * S["maturity"]
        scalars = torch.stack(
            [
                S["alpha"],
                S["target"],
                steps_left / S["blend_total"].clamp(min=1),
                steps_left / T.MAX_BLEND_EPOCHS,
                S["age"] / L,
                S["maturity"],
                S["contrib_obs"],
                S["contrib_ema"],
                torch.where(eff > 0.05, S["contrib_obs"] / eff.clamp(min=0.05), 0.0),
                S["since"] / L,
                S["dalpha"],
            ],
            dim=-1,
        )
        masks = self._masks()
        occupied = stage != Stage.EMPTY
        ema = S["contrib_ema"]
        has_any = occupied.any(1)
        t = R["t"].float()
        live = (stage >= Stage.TRAINING) & (stage != Stage.FOSSILIZED)
        global_scalars = torch.stack(
            [
                t / L,
                (L - t) / L,
                R["acc_obs"],
                10.0 * (R["acc_obs"] - R["acc_prev"]),
                self._avail.sum(1) / NUM_BLUEPRINTS,
                ema.sum(1),
                torch.where(has_any, ema.masked_fill(~occupied, -1e9).amax(1), 0.0),
                torch.where(has_any, ema.masked_fill(~occupied, 1e9).amin(1), 0.0),
                live.float().mean(1),
                R["ep_return"] / 10.0,
                R["fallback"],
                R["idle"] / L,
            ],
            dim=1,
        )
        features = torch.cat(
            [
                global_scalars,
                categorical[..., 1 : 1 + NUM_STAGES].mean(1),
                masks["op"].float(),
                torch.cat([categorical, scalars], dim=-1).reshape(self.num_envs, -1),
            ],
            dim=1,
        ).clamp(-FEATURE_BOUND, FEATURE_BOUND)
        return EnvObs(features, S["blueprint"].clone(), masks)

    # ------------------------------------------------------------------ helpers

    @property
    def observation(self) -> EnvObs:
        """The latest observation (what ``reset``/``step`` last returned)."""
        if self._obs is None:
            raise RuntimeError("observation: call reset() first")
        return self._obs

    def hidden_state(self) -> dict[str, Tensor]:
        """Read-only view of the hidden state that oracles use (not part of the observation)."""
        return {
            **self._slot,
            **self._row,
            "q_ep": self._q_ep,
            "avail": self._avail,
        }

    def state_dict(self) -> dict[str, Any]:
        """Full state, RNG included: ``load_state_dict`` resumes bit for bit."""
        return {
            "config": {
                "num_envs": self.num_envs,
                "num_slots": self.num_slots,
                "episode_length": self.episode_length,
                "preplant_prob": self.preplant_prob,
                "available_blueprints": self.available_blueprints,
            },
            "seed": self.seed,
            "slot": {k: v.clone() for k, v in self._slot.items()},
            "row": {k: v.clone() for k, v in self._row.items()},
            "q_ep": self._q_ep.clone(),
            "avail": self._avail.clone(),
            "rng": self._gen.get_state(),
            "started": self._obs is not None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved; the configuration must match this env's."""
        expected = self.state_dict()["config"]
        if state.get("config") != expected:
            raise ValueError(
                f"load_state_dict: saved config {state.get('config')} does not match {expected}"
            )
        dev = self.device
        self._slot = {k: state["slot"][k].to(dev).clone() for k in _SLOT_FIELDS}
        self._row = {k: state["row"][k].to(dev).clone() for k in _ROW_FIELDS}
        self._q_ep = state["q_ep"].to(dev).clone()
        self._avail = state["avail"].to(dev).clone()
        self._gen.set_state(state["rng"])
        self.seed = state["seed"]
        self._obs = self._observe() if state["started"] else None
