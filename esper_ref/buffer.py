"""Rollout storage and GAE for the recurrent, op-conditioned policy.

Storage is pre-allocated ``[num_envs, max_steps, ...]``; each env fills its own row, so the
episodes of one env stay contiguous and GAE runs along that row only. The update reads the
rollout back as recurrent sequences that never cross an episode boundary.

Value bookkeeping (see ``ppo.py``): ``values`` is Q(s_t, op_t) for the op that was sampled
(what the critic regresses); ``state_values`` is the baseline V(s_t) that GAE uses. A truncated
step carries ``bootstrap_values``, the value of its post-step state (the trainer computes it in
the configured bootstrap mode); a terminated step bootstraps from nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from contracts.phase4 import HEAD_NAMES, NULL_BLUEPRINT, RolloutBatch, head_sizes


@dataclass(frozen=True)
class SequenceBatch:
    """The rollout as ``num_seqs`` padded sequences; ``valid`` marks the real steps.

    Tensors are ``[num_seqs, seq_len, ...]`` except ``hidden`` (``(h, c)``, each
    ``[1, num_seqs, hidden_dim]``: the LSTM state before each sequence's first step) and
    ``env_index`` and ``start`` (``[num_seqs]``: the env and step each sequence starts at; the
    update minibatches by env).
    Padding steps have blueprint index -1, action 0, all-True masks and ``valid`` False.
    """

    features: Tensor
    blueprint_indices: Tensor
    actions: dict[str, Tensor]
    masks: dict[str, Tensor]
    log_probs: dict[str, Tensor]
    values: Tensor
    advantages: Tensor
    returns: Tensor
    executed_op: Tensor
    valid: Tensor
    hidden: tuple[Tensor, Tensor]
    env_index: Tensor
    start: Tensor
    sub_advantages: Tensor | None = None
    """Advantages of the heads other than ``op`` when they use their own baseline (set by
    the update, see ``ppo.PPO.update``); ``None`` = every head uses ``advantages``."""

    @property
    def num_seqs(self) -> int:
        return int(self.features.shape[0])

    def select(self, rows: Tensor) -> SequenceBatch:
        """The sequences at ``rows`` (an index tensor), as a new batch."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                out[f.name] = None
            elif isinstance(value, dict):
                out[f.name] = {k: v[rows] for k, v in value.items()}
            elif f.name == "hidden":
                out[f.name] = (value[0][:, rows], value[1][:, rows])
            else:
                out[f.name] = value[rows]
        return SequenceBatch(**out)  # type: ignore[arg-type]


class TamiyoRolloutBuffer:
    """Pre-allocated per-env rollout storage with per-env GAE."""

    def __init__(
        self,
        num_envs: int,
        max_steps: int,
        obs_dim: int,
        num_slots: int,
        hidden_dim: int,
        device: str | torch.device = "cpu",
    ) -> None:
        if min(num_envs, max_steps, obs_dim, num_slots, hidden_dim) < 1:
            raise ValueError(
                "TamiyoRolloutBuffer: num_envs, max_steps, obs_dim, num_slots and hidden_dim "
                f"must be >= 1, got {num_envs}, {max_steps}, {obs_dim}, {num_slots}, {hidden_dim}"
            )
        self.num_envs = num_envs
        self.max_steps = max_steps
        self.obs_dim = obs_dim
        self.num_slots = num_slots
        self.hidden_dim = hidden_dim
        self.device = torch.device(device)
        self.head_sizes = head_sizes(num_slots)
        e, t, dev = num_envs, max_steps, self.device

        def f32(*shape: int) -> Tensor:
            return torch.zeros(*shape, dtype=torch.float32, device=dev)

        self.features = f32(e, t, obs_dim)
        self.blueprint_indices = torch.full(
            (e, t, num_slots), NULL_BLUEPRINT, dtype=torch.int64, device=dev
        )
        self.actions = {h: torch.zeros(e, t, dtype=torch.int64, device=dev) for h in HEAD_NAMES}
        self.log_probs = {h: f32(e, t) for h in HEAD_NAMES}
        self.masks = {
            h: torch.ones(e, t, n, dtype=torch.bool, device=dev) for h, n in self.head_sizes.items()
        }
        self.values = f32(e, t)
        self.state_values = f32(e, t)
        self.rewards = f32(e, t)
        self.terminated = torch.zeros(e, t, dtype=torch.bool, device=dev)
        self.truncated = torch.zeros(e, t, dtype=torch.bool, device=dev)
        self.bootstrap_values = f32(e, t)
        self.executed_op = torch.zeros(e, t, dtype=torch.int64, device=dev)
        self.hidden_h = f32(e, t, hidden_dim)
        self.hidden_c = f32(e, t, hidden_dim)
        self.advantages = f32(e, t)
        self.returns = f32(e, t)
        self.pos = torch.zeros(e, dtype=torch.int64, device=dev)
        self._gae_done = False

    # -- filling -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the stored steps (storage is reused, padding restored)."""
        self.pos.zero_()
        self.blueprint_indices.fill_(NULL_BLUEPRINT)
        for m in self.masks.values():
            m.fill_(True)
        for a in self.actions.values():
            a.zero_()
        self.terminated.zero_()
        self.truncated.zero_()
        self._gae_done = False

    def add(
        self,
        features: Tensor,
        blueprint_indices: Tensor,
        actions: dict[str, Tensor],
        log_probs: dict[str, Tensor],
        values: Tensor,
        masks: dict[str, Tensor],
        rewards: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        executed_op: Tensor,
        hidden: tuple[Tensor, Tensor],
        state_values: Tensor | None = None,
        bootstrap_values: Tensor | None = None,
        env_ids: Tensor | None = None,
    ) -> None:
        """Store one step for each env in ``env_ids`` (all envs by default).

        ``hidden`` is the LSTM state *before* this step (``(h, c)``, each ``[1, n, H]``).
        ``state_values`` defaults to ``values``; ``bootstrap_values`` is read on truncated rows.
        """
        if env_ids is None:
            env_ids = torch.arange(self.num_envs, device=self.device)
        env_ids = env_ids.to(self.device)
        n = int(env_ids.shape[0])
        self._check("features", features, (n, self.obs_dim))
        self._check("blueprint_indices", blueprint_indices, (n, self.num_slots))
        if blueprint_indices.dtype != torch.int64:
            raise TypeError(
                f"add: blueprint_indices.dtype={blueprint_indices.dtype}, expected torch.int64"
            )
        for h in HEAD_NAMES:
            if h not in actions or h not in log_probs or h not in masks:
                raise KeyError(f"add: head {h!r} missing from actions, log_probs or masks")
            self._check(f"actions[{h!r}]", actions[h], (n,))
            self._check(f"masks[{h!r}]", masks[h], (n, self.head_sizes[h]))
        for name, v in (("values", values), ("rewards", rewards), ("executed_op", executed_op)):
            self._check(name, v, (n,))
        if bootstrap_values is None and bool(truncated.any()):
            # A time-limit cut is not a terminal state: dropping its value would teach the
            # critic that the episode's end is worth nothing.
            raise ValueError("add: truncated rows need bootstrap_values")
        pos = self.pos[env_ids]
        if bool((pos >= self.max_steps).any()):
            raise RuntimeError(f"add: buffer full (max_steps={self.max_steps}) for some env")
        idx = (env_ids, pos)
        self.features[idx] = features.to(self.device, torch.float32)
        self.blueprint_indices[idx] = blueprint_indices.to(self.device)
        for h in HEAD_NAMES:
            self.actions[h][idx] = actions[h].to(self.device, torch.int64)
            self.log_probs[h][idx] = log_probs[h].detach().to(self.device, torch.float32)
            self.masks[h][idx] = masks[h].to(self.device, torch.bool)
        self.values[idx] = values.detach().to(self.device, torch.float32)
        sv = values if state_values is None else state_values
        self.state_values[idx] = sv.detach().to(self.device, torch.float32)
        self.rewards[idx] = rewards.to(self.device, torch.float32)
        self.terminated[idx] = terminated.to(self.device, torch.bool)
        self.truncated[idx] = truncated.to(self.device, torch.bool)
        if bootstrap_values is not None:
            self.bootstrap_values[idx] = bootstrap_values.detach().to(self.device, torch.float32)
        self.executed_op[idx] = executed_op.to(self.device, torch.int64)
        h0, c0 = hidden
        self.hidden_h[idx] = h0.detach().reshape(n, self.hidden_dim).to(self.device)
        self.hidden_c[idx] = c0.detach().reshape(n, self.hidden_dim).to(self.device)
        self.pos[env_ids] += 1
        self._gae_done = False

    def _check(self, name: str, t: Tensor, shape: tuple[int, ...]) -> None:
        if tuple(t.shape) != shape:
            raise ValueError(f"add: {name}.shape={tuple(t.shape)}, expected {shape}")

    # -- GAE -----------------------------------------------------------------------------

    def compute_returns_and_advantages(
        self, last_values: Tensor, gamma: float, gae_lambda: float
    ) -> None:
        """GAE(gamma, lambda) along each env's row.

        ``last_values[e]`` is V of the state after env ``e``'s last stored step (used when
        that step did not end the episode). Terminated steps bootstrap from 0, truncated steps
        from their ``bootstrap_values``; the advantage never flows across an episode end.
        ``returns = advantages + state_values`` is the lambda-return, the critic's target.
        """
        self._check("last_values", last_values, (self.num_envs,))
        last_values = last_values.detach().to(self.device, torch.float32)
        lastgae = torch.zeros(self.num_envs, device=self.device)
        self.advantages.zero_()
        for t in reversed(range(self.max_steps)):
            in_range = self.pos.gt(t)
            is_last = self.pos.eq(t + 1)
            if t + 1 < self.max_steps:
                next_v = torch.where(is_last, last_values, self.state_values[:, t + 1])
            else:
                next_v = last_values
            term, trunc = self.terminated[:, t], self.truncated[:, t]
            next_v = torch.where(trunc, self.bootstrap_values[:, t], next_v)
            next_v = torch.where(term, torch.zeros_like(next_v), next_v)
            delta = self.rewards[:, t] + gamma * next_v - self.state_values[:, t]
            carry = torch.where(term | trunc | is_last, torch.zeros_like(lastgae), lastgae)
            lastgae = delta + gamma * gae_lambda * carry
            lastgae = torch.where(in_range, lastgae, torch.zeros_like(lastgae))
            self.advantages[:, t] = lastgae
        steps = torch.arange(self.max_steps, device=self.device)
        real = steps[None, :] < self.pos[:, None]
        self.returns = torch.where(real, self.advantages + self.state_values, 0.0)
        self._gae_done = True

    # -- reading -------------------------------------------------------------------------

    def segments(self, seq_len: int | None = None) -> list[tuple[int, int, int]]:
        """``(env, start, length)`` of each sequence: split at episode ends and every
        ``seq_len`` steps, so no sequence spans two episodes."""
        ended = (self.terminated | self.truncated).cpu()
        pos = self.pos.cpu().tolist()
        out: list[tuple[int, int, int]] = []
        for e in range(self.num_envs):
            start = 0
            for t in range(pos[e]):
                length = t + 1 - start
                full = seq_len is not None and length >= seq_len
                if bool(ended[e, t]) or t == pos[e] - 1 or full:
                    out.append((e, start, length))
                    start = t + 1
        return out

    def get_batched_sequences(self, seq_len: int | None = None) -> SequenceBatch:
        """The stored steps as padded per-episode sequences with their initial LSTM state."""
        if not self._gae_done:
            raise RuntimeError(
                "get_batched_sequences: call compute_returns_and_advantages() after the last add"
            )
        return self._sequences(seq_len)

    def _sequences(self, seq_len: int | None) -> SequenceBatch:
        segs = self.segments(seq_len)
        if not segs:
            raise RuntimeError("get_batched_sequences: the buffer is empty")
        dev = self.device
        env = torch.tensor([s[0] for s in segs], dtype=torch.int64, device=dev)
        start = torch.tensor([s[1] for s in segs], dtype=torch.int64, device=dev)
        length = torch.tensor([s[2] for s in segs], dtype=torch.int64, device=dev)
        longest = int(length.max())
        offs = torch.arange(longest, device=dev)
        valid = offs[None, :] < length[:, None]
        t_idx = torch.where(valid, start[:, None] + offs[None, :], start[:, None])
        e_idx = env[:, None].expand_as(t_idx)

        def take(x: Tensor, pad: float | int | bool) -> Tensor:
            g = x[e_idx, t_idx]
            v = valid.reshape(valid.shape + (1,) * (g.dim() - 2))
            return torch.where(v, g, torch.as_tensor(pad, dtype=g.dtype, device=dev))

        batch = SequenceBatch(
            features=take(self.features, 0.0),
            blueprint_indices=take(self.blueprint_indices, NULL_BLUEPRINT),
            actions={h: take(a, 0) for h, a in self.actions.items()},
            masks={h: take(m, True) for h, m in self.masks.items()},
            log_probs={h: take(lp, 0.0) for h, lp in self.log_probs.items()},
            values=take(self.values, 0.0),
            advantages=take(self.advantages, 0.0),
            returns=take(self.returns, 0.0),
            executed_op=take(self.executed_op, 0),
            valid=valid,
            hidden=(
                self.hidden_h[env, start].unsqueeze(0).contiguous(),
                self.hidden_c[env, start].unsqueeze(0).contiguous(),
            ),
            env_index=env,
            start=start,
        )
        # The contracts model checks every field's dtype, shape and range together (cheap:
        # once per update, nothing copied); a violation raises pydantic.ValidationError.
        RolloutBatch(
            features=batch.features,
            blueprint_indices=batch.blueprint_indices,
            actions=batch.actions,
            masks=batch.masks,
            log_probs=batch.log_probs,
            values=batch.values,
            executed_op=batch.executed_op,
            advantages=batch.advantages,
            returns=batch.returns,
            valid=batch.valid,
            hidden=batch.hidden,
        )
        return batch
