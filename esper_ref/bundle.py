"""``LSTMPolicyBundle``: the audit's four-method policy API over the Phase 4 network.

Rollout (2-D, one step per call)::

    bundle = LSTMPolicyBundle(state_dim=114, num_slots=3)
    hidden = bundle.initial_hidden(num_envs)
    result = bundle.get_action(features, blueprint_indices, masks, hidden)
    # result.actions[h], result.log_probs[h], result.value = Q(s, result.sampled_op)
    hidden = result.hidden

Update (3-D sequences ``[batch, seq, ...]`` from the buffer)::

    ev = bundle.evaluate_actions(states, blueprint_indices, actions, masks, initial_hidden)
    # ev.log_probs[h], ev.entropy[h], ev.value = Q(s, stored op)

Bootstrap from the post-step state: either the audit's ``get_action(..., deterministic=True)
.value`` (Q(s', greedy op)) or :meth:`LSTMPolicyBundle.expected_value` (sum over allowed ops of
pi(op | s') Q(s', op), an estimate of V(s')). ``get_action`` also returns that expectation for
the current state as ``result.expected_value``, at no extra cost. ``get_value`` is for
debugging only.

``masks`` is a dict with one bool tensor per head of ``contracts.phase4.HEAD_NAMES``, True =
allowed (every head is required). ``blueprint_indices`` is int64 with -1 for an empty slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor

from contracts import ContractError, contract, spec
from contracts import phase4 as P
from contracts.phase4 import (
    BLUEPRINT_EMBED_DIM,
    DEFAULT_NUM_SLOTS,
    FEATURE_DIM,
    LSTM_HIDDEN_DIM,
)
from esper_ref.network import (
    ActionResult,
    EvalResult,
    FactoredRecurrentActorCritic,
    ForwardOutput,
    Hidden,
)

__all__ = ["ActionResult", "EvalResult", "ForwardOutput", "Hidden", "LSTMPolicyBundle"]


# Contracts from the contracts.phase4 catalogue. Sizes come from the instance, so one contract
# fits every num_slots, observation width and LSTM width; ``*lead`` is ``[batch]`` for a
# rollout step and ``[batch, seq]`` for sequences, and every argument must agree on it.
_BIND = {**P.BIND_FROM_SELF, "obs_dim": "self.state_dim", "hidden": "self.lstm_hidden_dim"}
_FIXED = {"layers": 1}
# The result NamedTuples are checked on evaluate_actions only: the checker's fast path takes
# exact tuples, so a NamedTuple result costs tens of microseconds, too much per rollout step.
_EVAL_RESULT = spec((P.LOG_PROBS, P.LOG_PROBS, P.VALUE, P.HIDDEN))

# The four methods' arguments, each typed once with its contract (contracts reads the spec
# from the annotation; type checkers see the plain type).
Features = Annotated[Tensor, P.FEATURES]
BlueprintIndices = Annotated[Tensor, P.BLUEPRINT_INDICES]
Masks = Annotated[Mapping[str, Tensor], P.MASKS]
Actions = Annotated[Mapping[str, Tensor], P.ACTIONS]
HiddenOrNone = Annotated[Hidden | None, P.HIDDEN_OR_NONE]
EpisodeStarts = Annotated[Tensor | None, "bool[*lead] | None"]


def _check_hidden_batch(where: str, features: Tensor, hidden: Hidden | None) -> None:
    # ``*lead`` in the catalogue cannot name the batch that (h, c) share with the features, so
    # that one dimension is compared here (metadata only, no device sync).
    if hidden is None or not isinstance(features, Tensor) or not isinstance(hidden, tuple):
        return
    batch = features.shape[0]
    bad = [
        f"hidden[{i}].shape[1]={h.shape[1]} but batch={batch} (bound by features.shape[0])"
        for i, h in enumerate(hidden)
        if isinstance(h, Tensor) and h.dim() == 3 and h.shape[1] != batch
    ]
    if bad:
        raise ContractError.of(where, bad)


class LSTMPolicyBundle:
    """The policy as the trainer sees it: sample, re-score, value, hidden state."""

    def __init__(
        self,
        state_dim: int,
        num_slots: int = DEFAULT_NUM_SLOTS,
        feature_dim: int = FEATURE_DIM,
        lstm_hidden_dim: int = LSTM_HIDDEN_DIM,
        blueprint_embed_dim: int = BLUEPRINT_EMBED_DIM,
        head_hidden_dim: int = 256,
        value_hidden_dim: int = 256,
        device: torch.device | str = "cpu",
    ) -> None:
        network = FactoredRecurrentActorCritic(
            state_dim,
            num_slots,
            feature_dim=feature_dim,
            lstm_hidden_dim=lstm_hidden_dim,
            blueprint_embed_dim=blueprint_embed_dim,
            head_hidden_dim=head_hidden_dim,
            value_hidden_dim=value_hidden_dim,
        )
        self.network = network.to(device)

    @classmethod
    def from_network(cls, network: FactoredRecurrentActorCritic) -> LSTMPolicyBundle:
        """Wrap an existing network (shares its parameters)."""
        bundle = cls.__new__(cls)
        bundle.network = network
        return bundle

    # ------------------------------------------------------------------ properties

    @property
    def state_dim(self) -> int:
        return self.network.state_dim

    @property
    def num_slots(self) -> int:
        return self.network.num_slots

    @property
    def lstm_hidden_dim(self) -> int:
        return self.network.lstm_hidden_dim

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    # ------------------------------------------------------------------ the four methods

    @contract(bind=_BIND, fixed=_FIXED)
    def get_action(
        self,
        features: Features,
        blueprint_indices: BlueprintIndices,
        masks: Masks,
        hidden: HiddenOrNone = None,
        deterministic: bool = False,
    ) -> ActionResult:
        """Sample every head (argmax if ``deterministic``); value = Q(s, the sampled op).

        No autograd is recorded and nothing syncs with the device.
        """
        # no_grad rather than inference_mode: the returned hidden state is stored and later fed
        # to evaluate_actions under autograd, which inference tensors would refuse.
        _check_hidden_batch("get_action", features, hidden)
        with torch.no_grad():
            return self.network._act(features, blueprint_indices, masks, hidden, deterministic)

    @contract(bind=_BIND, fixed=_FIXED)
    def forward(
        self,
        features: Features,
        blueprint_indices: BlueprintIndices,
        masks: Masks,
        hidden: HiddenOrNone = None,
    ) -> ForwardOutput:
        """Masked logits of every head, the sampled op, Q(s, that op) and the new hidden."""
        _check_hidden_batch("forward", features, hidden)
        return self.network._forward(features, blueprint_indices, masks, hidden)

    __call__ = forward

    @contract(returns=_EVAL_RESULT, bind=_BIND, fixed=_FIXED)
    def evaluate_actions(
        self,
        features: Features,
        blueprint_indices: BlueprintIndices,
        actions: Actions,
        masks: Masks,
        hidden: HiddenOrNone = None,
        episode_starts: EpisodeStarts = None,
    ) -> EvalResult:
        """Per-head log-probs and entropies of stored actions, and Q(s, stored op).

        ``episode_starts`` (bool ``[batch, seq]``, optional) zeroes the LSTM state before the
        marked steps, so a sequence that spans an episode boundary carries nothing across it.
        """
        _check_hidden_batch("evaluate_actions", features, hidden)
        return self.network._evaluate(
            features, blueprint_indices, actions, masks, hidden, episode_starts
        )

    @contract(returns=P.Q_ALL_OPS, bind=_BIND, fixed=_FIXED)
    def get_value(
        self, features: Features, blueprint_indices: BlueprintIndices, hidden: HiddenOrNone = None
    ) -> Tensor:
        """Q(s, op) for every op, ``[..., num_ops]``. DEBUG ONLY: never use it for training."""
        _check_hidden_batch("get_value", features, hidden)
        return self.network.get_value(features, blueprint_indices, hidden)

    @contract(returns=P.VALUE, bind=_BIND, fixed=_FIXED)
    def expected_value(
        self,
        features: Features,
        blueprint_indices: BlueprintIndices,
        masks: Masks,
        hidden: HiddenOrNone = None,
    ) -> Tensor:
        """sum over allowed ops of pi(op | s) Q(s, op): the "expected" bootstrap, ``[...]``."""
        _check_hidden_batch("expected_value", features, hidden)
        return self.network._expected(features, blueprint_indices, masks, hidden)

    # ------------------------------------------------------------------ hidden state

    @contract(returns=P.HIDDEN, bind={"hidden": "self.lstm_hidden_dim"}, fixed=_FIXED)
    def initial_hidden(self, batch: int) -> Hidden:
        """Zero LSTM state, each ``[1, batch, lstm_hidden_dim]``."""
        return self.network.initial_hidden(batch)

    @staticmethod
    @contract(hidden=P.HIDDEN, done="bool[batch]", returns=P.HIDDEN)
    def reset_hidden(hidden: Hidden, done: Tensor) -> Hidden:
        """Zero the rows of ``hidden`` where ``done`` (bool ``[batch]``) is True, on device."""
        keep = ~done.view(1, -1, 1)
        return torch.where(keep, hidden[0], 0.0), torch.where(keep, hidden[1], 0.0)

    # ------------------------------------------------------------------ nn.Module plumbing

    def parameters(self, recurse: bool = True) -> Any:
        return self.network.parameters(recurse)

    def named_parameters(self, *args: Any, **kwargs: Any) -> Any:
        return self.network.named_parameters(*args, **kwargs)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.network.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        return self.network.load_state_dict(state_dict, strict=strict)

    def to(self, device: torch.device | str) -> LSTMPolicyBundle:
        self.network.to(device)
        return self

    def train(self, mode: bool = True) -> LSTMPolicyBundle:
        self.network.train(mode)
        return self

    def eval(self) -> LSTMPolicyBundle:
        self.network.eval()
        return self
