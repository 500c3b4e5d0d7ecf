"""The Phase 4 policy network: blueprint embeddings, an LSTM, 8 masked heads and Q(s, op).

Reading order of one step::

    blueprint_indices [*, S] --(+1, embedding of 14 rows)--> [*, S*E]
    concat(features, embeddings) -> Linear -> LayerNorm -> ReLU           (feature layer)
    -> LSTM (an LSTM cell for one step, the fused nn.LSTM for a sequence)
    -> Linear -> ReLU, split into an actor part and a critic part
       actor:  Linear -> logits of all 8 heads in a padded [*, 8, M] layout -> masks
       critic: Linear -> Q(s, op) for every op; the value is Q(s, op) for the op *sampled
               once* with the rest of the action (rollout) or *stored* with it (update).

Sampling and log-probs come from :mod:`esper_ref.distributions`, the same code in rollout and
update, so the PPO ratio is exactly 1 before the first optimiser step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple, TypedDict, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contracts import contract
from contracts import phase4 as P
from contracts.phase4 import (
    BLUEPRINT_EMBED_DIM,
    DEFAULT_NUM_SLOTS,
    FEATURE_DIM,
    HEAD_NAMES,
    LSTM_HIDDEN_DIM,
    NUM_BLUEPRINTS,
    NUM_OPS,
    head_sizes,
)
from esper_ref import distributions as dist

Hidden = tuple[Tensor, Tensor]
#: Position of the op head in the padded layout (HEAD_NAMES order).
_OP = HEAD_NAMES.index("op")

# Contracts from the contracts.phase4 catalogue; sizes come from the instance.
_BIND = {**P.BIND_FROM_SELF, "obs_dim": "self.state_dim", "hidden": "self.lstm_hidden_dim"}
_FIXED = {"layers": 1}
_STATE_SPECS: dict[str, Any] = {
    "state": P.FEATURES,
    "blueprint_indices": P.BLUEPRINT_INDICES,
    "masks": P.MASKS.or_none(),
    "hidden": P.HIDDEN_OR_NONE,
}


def select_q(q: Tensor, op: Tensor) -> Tensor:
    """Q(s, op) for one op per row: ``q`` is ``[*lead, num_ops]``, ``op`` int64 ``[*lead]``."""
    return q.gather(-1, op.unsqueeze(-1)).squeeze(-1)


def expected_q(q: Tensor, op_probs: Tensor) -> Tensor:
    """V(s) = sum over allowed ops of pi(op | s) Q(s, op); disallowed ops have pi = 0."""
    return (op_probs * q).sum(dim=-1)


class ForwardOutput(TypedDict):
    """What :meth:`FactoredRecurrentActorCritic.forward` returns (dict access, as before).

    Logits are masked: a disallowed action holds the most negative finite float.
    """

    op_logits: Tensor
    slot_logits: Tensor
    blueprint_logits: Tensor
    style_logits: Tensor
    tempo_logits: Tensor
    alpha_target_logits: Tensor
    alpha_speed_logits: Tensor
    alpha_curve_logits: Tensor
    value: Tensor  # Q(s, sampled_op), [*lead]
    sampled_op: Tensor  # int64 [*lead]
    hidden: Hidden  # each [1, batch, lstm_hidden_dim]
    q_values: Tensor  # Q(s, op) for every op, [*lead, num_ops]


class ActionResult(NamedTuple):
    """One sampled (or greedy) action for every head, and what PPO stores with it."""

    actions: dict[str, Tensor]  # int64 [*lead] per head
    log_probs: dict[str, Tensor]  # float32 [*lead] per head
    value: Tensor  # Q(s, sampled_op) [*lead]
    sampled_op: Tensor  # int64 [*lead], the same tensor values as actions["op"]
    hidden: Hidden  # each [1, batch, lstm_hidden_dim]
    op_probs: Tensor  # pi(op | s) under the op mask, [*lead, num_ops]
    # sum over allowed ops of pi(op | s) Q(s, op), [*lead]: V(s) for free with the action
    expected_value: Tensor


class EvalResult(NamedTuple):
    """Stored actions re-scored by the current parameters (the PPO update)."""

    log_probs: dict[str, Tensor]  # float [*lead] per head
    entropy: dict[str, Tensor]  # float [*lead] per head
    value: Tensor  # Q(s, stored op) [*lead]
    hidden: Hidden


class FactoredRecurrentActorCritic(nn.Module):
    """Recurrent actor-critic over the factored Phase 4 action space with Q(s, op).

    Leading dimensions are ``[batch]`` for a rollout step or ``[batch, seq]`` for a sequence;
    masks are bool (True = allowed) with the same leading dimensions, ``None`` = all allowed.
    """

    def __init__(
        self,
        state_dim: int,
        num_slots: int = DEFAULT_NUM_SLOTS,
        feature_dim: int = FEATURE_DIM,
        lstm_hidden_dim: int = LSTM_HIDDEN_DIM,
        blueprint_embed_dim: int = BLUEPRINT_EMBED_DIM,
        head_hidden_dim: int = 256,
        value_hidden_dim: int = 256,
        num_blueprints: int = NUM_BLUEPRINTS,
    ) -> None:
        super().__init__()
        for name, size in (
            ("state_dim", state_dim),
            ("num_slots", num_slots),
            ("feature_dim", feature_dim),
            ("lstm_hidden_dim", lstm_hidden_dim),
            ("blueprint_embed_dim", blueprint_embed_dim),
            ("head_hidden_dim", head_hidden_dim),
            ("value_hidden_dim", value_hidden_dim),
            ("num_blueprints", num_blueprints),
        ):
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ValueError(f"{name} must be a positive int, got {size!r}")
        self.state_dim = state_dim
        self.num_slots = num_slots
        self.feature_dim = feature_dim
        self.lstm_hidden_dim = lstm_hidden_dim
        self.blueprint_embed_dim = blueprint_embed_dim
        self.num_ops = NUM_OPS
        self.head_sizes = head_sizes(num_slots)

        # Row 0 is the learned null row for index -1; blueprint b uses row b + 1.
        self.blueprint_embedding = nn.Embedding(num_blueprints + 1, blueprint_embed_dim)
        self.feature = nn.Linear(state_dim + num_slots * blueprint_embed_dim, feature_dim)
        self.feature_norm = nn.LayerNorm(feature_dim)
        self.lstm = nn.LSTM(feature_dim, lstm_hidden_dim, batch_first=True)
        # Actor and critic hidden layers fused into one matmul, split afterwards.
        self.head_hidden = nn.Linear(lstm_hidden_dim, head_hidden_dim + value_hidden_dim)
        self._split = [head_hidden_dim, value_hidden_dim]
        self.layout = dist.HeadLayout(self.head_sizes)
        # All 8 heads in one Linear; columns of padding positions are masked, never used.
        self.policy_out = nn.Linear(head_hidden_dim, self.layout.num_heads * self.layout.max_size)
        self.q_out = nn.Linear(value_hidden_dim, NUM_OPS)
        self._init_weights()

    def _init_weights(self) -> None:
        for layer in (self.feature, self.head_hidden):
            nn.init.orthogonal_(layer.weight, gain=math.sqrt(2.0))
            nn.init.zeros_(layer.bias)
        # Near-uniform initial policy; Q starts near 0.
        nn.init.orthogonal_(self.policy_out.weight, gain=0.01)
        nn.init.zeros_(self.policy_out.bias)
        nn.init.orthogonal_(self.q_out.weight, gain=1.0)
        nn.init.zeros_(self.q_out.bias)
        hdim = self.lstm_hidden_dim
        _, _, b_ih, b_hh = self._cell_weights()
        with torch.no_grad():
            # Forget-gate bias 1 (gate order i, f, g, o): remember by default.
            b_ih[hdim : 2 * hdim].fill_(1.0)
            b_hh[hdim : 2 * hdim].zero_()

    # ----------------------------------------------------------------- the computation

    def encode(self, state: Tensor, blueprint_indices: Tensor) -> Tensor:
        """Feature layer over the observation and the blueprint embeddings, ``[*lead, F]``."""
        emb = self.blueprint_embedding(blueprint_indices + 1).flatten(-2)
        x = self.feature(torch.cat((state, emb), dim=-1))
        return F.relu(self.feature_norm(x))

    def initial_hidden(self, batch: int) -> Hidden:
        """Zero LSTM state ``([1, batch, H], [1, batch, H])`` on the network's device."""
        w = self._cell_weights()[1]
        zeros = torch.zeros(1, batch, self.lstm_hidden_dim, dtype=w.dtype, device=w.device)
        return zeros, zeros.clone()

    def _cell_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # The nn.LSTM's own parameters, so the one-step cell and the sequence call share them.
        lstm = self.lstm
        return cast(
            tuple[Tensor, Tensor, Tensor, Tensor],
            (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0),
        )

    def recur(
        self, x: Tensor, hidden: Hidden | None, episode_starts: Tensor | None = None
    ) -> tuple[Tensor, Hidden]:
        """LSTM over ``x``: ``[B, F]`` is one step, ``[B, T, F]`` a sequence.

        One step runs the LSTM cell on the nn.LSTM's own weights (no sequence machinery).
        With ``episode_starts`` (bool ``[B]`` or ``[B, T]``) the state is zeroed before each step
        that starts an episode, so neither values nor gradients cross an episode boundary.
        """
        w_ih, w_hh, b_ih, b_hh = self._cell_weights()
        if x.dim() == 2:
            if hidden is None:
                h0 = x.new_zeros(x.shape[0], self.lstm_hidden_dim)
                c0 = h0
            else:
                h0, c0 = hidden[0][0], hidden[1][0]
            if episode_starts is not None:
                start = episode_starts.unsqueeze(-1)
                h0, c0 = torch.where(start, 0.0, h0), torch.where(start, 0.0, c0)
            h, c = torch.lstm_cell(x, (h0, c0), w_ih, w_hh, b_ih, b_hh)
            return h, (h.unsqueeze(0), c.unsqueeze(0))
        if episode_starts is None:
            out, (hn, cn) = self.lstm(x, hidden)
            return out, (hn, cn)
        if hidden is None:
            h = x.new_zeros(x.shape[0], self.lstm_hidden_dim)
            c = h
        else:
            h, c = hidden[0][0], hidden[1][0]
        outs = []
        for t in range(x.shape[1]):
            start = episode_starts[:, t].unsqueeze(-1)
            h = torch.where(start, 0.0, h)
            c = torch.where(start, 0.0, c)
            h, c = torch.lstm_cell(x[:, t], (h, c), w_ih, w_hh, b_ih, b_hh)
            outs.append(h)
        return torch.stack(outs, dim=1), (h.unsqueeze(0), c.unsqueeze(0))

    def heads(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Raw logits of all heads ``[*lead, H, M]`` and Q(s, op) ``[*lead, num_ops]``."""
        z = F.relu(self.head_hidden(out))
        actor, critic = torch.split(z, self._split, dim=-1)
        logits = self.policy_out(actor).unflatten(-1, (self.layout.num_heads, -1))
        return logits, self.q_out(critic)

    def _trunk(
        self,
        state: Tensor,
        blueprint_indices: Tensor,
        masks: Mapping[str, Tensor] | None,
        hidden: Hidden | None,
        episode_starts: Tensor | None = None,
    ) -> tuple[dist.MaskedHeads, Tensor, Tensor, Hidden]:
        """The one pass every entry point makes: masked log-probs of all heads, raw logits,
        Q(s, op) for every op and the new LSTM state. ``masks`` maps every head name to its
        bool mask (True = allowed); ``None`` allows everything."""
        out, new_hidden = self.recur(self.encode(state, blueprint_indices), hidden, episode_starts)
        logits, q = self.heads(out)
        packed = self.layout.pack_masks(masks, state.shape[:-1])
        return (
            dist.masked_log_softmax(logits, packed, self.layout.first_column),
            logits,
            q,
            new_hidden,
        )

    def _op_probs(self, heads: dist.MaskedHeads) -> Tensor:
        return heads.log_probs[..., _OP, : self.num_ops].exp()

    # ------------------------------------------------------------------ entry points
    # The bundle calls the unchecked ``_act``/``_evaluate``/``_forward``/``_expected`` after
    # checking its own arguments; the public methods below check theirs (contracts) first.

    def _act(
        self,
        state: Tensor,
        blueprint_indices: Tensor,
        masks: Mapping[str, Tensor] | None,
        hidden: Hidden | None = None,
        deterministic: bool = False,
    ) -> ActionResult:
        heads, _, q, new_hidden = self._trunk(state, blueprint_indices, masks, hidden)
        actions = dist.sample(heads, deterministic)
        log_probs = dist.log_prob(heads, actions)
        op = actions[..., _OP]  # sampled once: the action's op and the value's op
        op_probs = self._op_probs(heads)
        return ActionResult(
            dict(zip(HEAD_NAMES, actions.unbind(-1), strict=True)),
            dict(zip(HEAD_NAMES, log_probs.unbind(-1), strict=True)),
            select_q(q, op),
            op,
            new_hidden,
            op_probs,
            expected_q(q, op_probs),
        )

    def _evaluate(
        self,
        states: Tensor,
        blueprint_indices: Tensor,
        actions: Mapping[str, Tensor],
        masks: Mapping[str, Tensor] | None,
        hidden: Hidden | None = None,
        episode_starts: Tensor | None = None,
    ) -> EvalResult:
        heads, _, q, new_hidden = self._trunk(
            states, blueprint_indices, masks, hidden, episode_starts
        )
        stacked = self.layout.stack_actions(actions)
        log_probs = dist.log_prob(heads, stacked)
        entropy = dist.entropy(heads)
        return EvalResult(
            dict(zip(HEAD_NAMES, log_probs.unbind(-1), strict=True)),
            dict(zip(HEAD_NAMES, entropy.unbind(-1), strict=True)),
            select_q(q, stacked[..., _OP]),
            new_hidden,
        )

    def _forward(
        self,
        state: Tensor,
        blueprint_indices: Tensor,
        masks: Mapping[str, Tensor] | None,
        hidden: Hidden | None = None,
        deterministic: bool = False,
    ) -> ForwardOutput:
        heads, logits, q, new_hidden = self._trunk(state, blueprint_indices, masks, hidden)
        op = dist.sample(heads, deterministic)[..., _OP]
        masked = logits.masked_fill(~heads.allowed, torch.finfo(logits.dtype).min)
        per_head = self.layout.split(masked)
        return ForwardOutput(
            op_logits=per_head["op"],
            slot_logits=per_head["slot"],
            blueprint_logits=per_head["blueprint"],
            style_logits=per_head["style"],
            tempo_logits=per_head["tempo"],
            alpha_target_logits=per_head["alpha_target"],
            alpha_speed_logits=per_head["alpha_speed"],
            alpha_curve_logits=per_head["alpha_curve"],
            value=select_q(q, op),
            sampled_op=op,
            hidden=new_hidden,
            q_values=q,
        )

    def _expected(
        self,
        state: Tensor,
        blueprint_indices: Tensor,
        masks: Mapping[str, Tensor] | None,
        hidden: Hidden | None = None,
    ) -> Tensor:
        heads, _, q, _ = self._trunk(state, blueprint_indices, masks, hidden)
        return expected_q(q, self._op_probs(heads))

    @contract(**_STATE_SPECS, bind=_BIND, fixed=_FIXED)
    def forward(
        self,
        state: Tensor,
        blueprint_indices: Tensor,
        masks: Mapping[str, Tensor] | None = None,
        hidden: Hidden | None = None,
        deterministic: bool = False,
    ) -> ForwardOutput:
        """Masked logits of every head, the op sampled once, and Q(s, that op)."""
        return self._forward(state, blueprint_indices, masks, hidden, deterministic)

    @torch.no_grad()
    @contract(**_STATE_SPECS, bind=_BIND, fixed=_FIXED)
    def get_action(
        self,
        state: Tensor,
        blueprint_indices: Tensor,
        masks: Mapping[str, Tensor] | None = None,
        hidden: Hidden | None = None,
        deterministic: bool = False,
    ) -> ActionResult:
        """Sample (or argmax) every head; the op is drawn once and valued as Q(s, op).

        Runs without autograd: rollout needs no gradients.
        """
        return self._act(state, blueprint_indices, masks, hidden, deterministic)

    @contract(
        states=P.FEATURES,
        blueprint_indices=P.BLUEPRINT_INDICES,
        actions=P.ACTIONS,
        masks=P.MASKS.or_none(),
        hidden=P.HIDDEN_OR_NONE,
        episode_starts="bool[*lead] | None",
        bind=_BIND,
        fixed=_FIXED,
    )
    def evaluate_actions(
        self,
        states: Tensor,
        blueprint_indices: Tensor,
        actions: Mapping[str, Tensor],
        masks: Mapping[str, Tensor] | None = None,
        hidden: Hidden | None = None,
        episode_starts: Tensor | None = None,
    ) -> EvalResult:
        """Log-prob and entropy of each stored head action, and Q(s, stored op)."""
        return self._evaluate(states, blueprint_indices, actions, masks, hidden, episode_starts)

    @contract(**_STATE_SPECS, returns=P.VALUE, bind=_BIND, fixed=_FIXED)
    def expected_value(
        self,
        state: Tensor,
        blueprint_indices: Tensor,
        masks: Mapping[str, Tensor] | None = None,
        hidden: Hidden | None = None,
    ) -> Tensor:
        """V(s) = sum over allowed ops of pi(op | s) Q(s, op), ``[*lead]``."""
        return self._expected(state, blueprint_indices, masks, hidden)

    @contract(
        state=P.FEATURES,
        blueprint_indices=P.BLUEPRINT_INDICES,
        hidden=P.HIDDEN_OR_NONE,
        returns=P.Q_ALL_OPS,
        bind=_BIND,
        fixed=_FIXED,
    )
    def get_value(
        self, state: Tensor, blueprint_indices: Tensor, hidden: Hidden | None = None
    ) -> Tensor:
        """Q(s, op) for every op, ``[*lead, num_ops]``.

        DEBUG ONLY, not for training: PPO's value is Q(s, the op sampled with the action) and
        a bootstrap is Q(s', greedy op) or :meth:`expected_value`, never this whole table.
        """
        out, _ = self.recur(self.encode(state, blueprint_indices), hidden)
        return self.heads(out)[1]
