"""The Phase 4 vocabulary, defined once: action heads, their sizes, ops, blueprints, shapes.

Every other module (the reference policy, its buffer and trainer, the built-in environment and
people checking their own codebase) takes these names and numbers from here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Final

from torch import Tensor

from contracts.dims import parse_expr


class Op(IntEnum):
    """Lifecycle operations, the values of the ``op`` head."""

    WAIT = 0
    GERMINATE = 1
    SET_ALPHA_TARGET = 2
    PRUNE = 3
    FOSSILIZE = 4
    ADVANCE = 5


class Style(IntEnum):
    LINEAR_ADD = 0
    LINEAR_MULTIPLY = 1
    SIGMOID_ADD = 2
    GATED_GATE = 3


class Tempo(IntEnum):
    FAST = 0
    STANDARD = 1
    SLOW = 2


TEMPO_EPOCHS: Final[tuple[int, ...]] = (3, 5, 8)
ALPHA_TARGETS: Final[tuple[float, ...]] = (0.5, 0.7, 1.0)


class AlphaSpeed(IntEnum):
    INSTANT = 0
    FAST = 1
    MEDIUM = 2
    SLOW = 3


class AlphaCurve(IntEnum):
    LINEAR = 0
    COSINE = 1
    SIGMOID_GENTLE = 2
    SIGMOID = 3
    SIGMOID_SHARP = 4


NUM_OPS: Final = len(Op)
NUM_BLUEPRINTS: Final = 13
#: ``blueprint_indices`` value of an empty or inactive slot.
NULL_BLUEPRINT: Final = -1
#: Embedding rows: one per blueprint plus the learned null row that ``-1`` maps to.
NUM_BLUEPRINT_EMBEDDINGS: Final = NUM_BLUEPRINTS + 1
BLUEPRINT_EMBED_DIM: Final = 4

DEFAULT_NUM_SLOTS: Final = 3
GLOBAL_FEATURES: Final = 24
PER_SLOT_FEATURES: Final = 30
FEATURE_DIM: Final = 512
LSTM_HIDDEN_DIM: Final = 512


#: The observation width as a dimension expression: ``24 + 30*num_slots``.
OBS_DIM_EXPR: Final = f"{GLOBAL_FEATURES} + {PER_SLOT_FEATURES}*num_slots"
#: ``derived=`` (or ``TensorBatch.contract_derived``) tying ``obs_dim`` to ``num_slots``, for
#: code whose features are exactly the Phase 4 observation (the built-in environment's). A
#: width that does not match fails with the relation: ``features.shape[1]=110 but obs_dim =
#: 24 + 30*num_slots = 114 (num_slots=3, bound by blueprint_indices.shape[1])``.
DERIVED: Final[dict[str, str]] = {"obs_dim": OBS_DIM_EXPR}
_OBS_DIM: Final = parse_expr(OBS_DIM_EXPR)


def obs_dim(num_slots: int = DEFAULT_NUM_SLOTS) -> int:
    """Observation width: 24 global features plus 30 per slot (114 for 3 slots)."""
    return _OBS_DIM.evaluate({"num_slots": num_slots})


#: Head names in their canonical order.
HEAD_NAMES: Final[tuple[str, ...]] = (
    "op",
    "slot",
    "blueprint",
    "style",
    "tempo",
    "alpha_target",
    "alpha_speed",
    "alpha_curve",
)


def head_sizes(num_slots: int = DEFAULT_NUM_SLOTS) -> dict[str, int]:
    """Number of choices of each head; only ``slot`` depends on the number of slots."""
    return {
        "op": NUM_OPS,
        "slot": num_slots,
        "blueprint": NUM_BLUEPRINTS,
        "style": len(Style),
        "tempo": len(Tempo),
        "alpha_target": len(ALPHA_TARGETS),
        "alpha_speed": len(AlphaSpeed),
        "alpha_curve": len(AlphaCurve),
    }


#: Causal relevance: the ops for which each head's choice has any effect. A head that did not
#: matter for the executed op must get no policy-gradient signal for that step.
HEAD_RELEVANT_OPS: Final[dict[str, frozenset[Op]]] = {
    "op": frozenset(Op),
    "slot": frozenset(Op) - {Op.WAIT},
    "blueprint": frozenset({Op.GERMINATE}),
    "tempo": frozenset({Op.GERMINATE}),
    "style": frozenset({Op.GERMINATE, Op.SET_ALPHA_TARGET}),
    "alpha_target": frozenset({Op.GERMINATE, Op.SET_ALPHA_TARGET}),
    "alpha_speed": frozenset({Op.SET_ALPHA_TARGET, Op.PRUNE}),
    "alpha_curve": frozenset({Op.SET_ALPHA_TARGET, Op.PRUNE}),
}


def relevance_table() -> list[list[bool]]:
    """``table[h][op]``: whether head ``HEAD_NAMES[h]`` matters when ``op`` is executed.

    Returned as plain lists so that callers build it into a tensor on their own device once.
    """
    return [[Op(o) in HEAD_RELEVANT_OPS[h] for o in range(NUM_OPS)] for h in HEAD_NAMES]


# ------------------------------------------------------------------------------------------
# The spec catalogue: Phase 4 tensors as contracts, sizes taken from the vocabulary above.
#
# Symbols used throughout (bind them once per call, e.g. from the policy instance):
#   batch      rows of a rollout step, or sequences in an update minibatch
#   seq        time steps of a sequence (update only)
#   *lead      ``[batch]`` at rollout or ``[batch, seq]`` in the update: the generic specs
#              take either, and every argument of one call must agree on it
#   obs_dim    observation width, obs_dim(num_slots) (114 for 3 slots)
#   num_slots  slots, also the size of the ``slot`` head
#   layers, hidden   LSTM layers and hidden width (the batch of (h, c) is ``batch``)
#   env, step  the rollout buffer's rows and time steps
#
# Decorate a policy method like this (``num_slots`` from the instance, so one contract fits
# every number of slots):
#
#     from contracts import contract
#     from contracts import phase4 as P
#
#     class Policy(nn.Module):
#         @contract(
#             features=P.FEATURES_ROLLOUT,
#             blueprint_indices=P.BLUEPRINT_INDICES_ROLLOUT,
#             masks=P.MASKS_ROLLOUT,
#             hidden=P.HIDDEN_OR_NONE,
#             bind=P.BIND_FROM_SELF,
#         )
#         def get_action(self, features, blueprint_indices, masks, hidden=None): ...
#
# The ``_ROLLOUT`` specs (``[batch, ...]``) and ``_SEQUENCE`` specs (``[batch, seq, ...]``) tie
# ``batch`` to the hidden state's batch; the generic ones (``[*lead, ...]``) accept both forms
# but cannot tie ``*lead`` to the hidden state. For a free function use
# ``fixed=P.fixed_dims(num_slots)`` instead of ``bind``. Where the features are exactly the
# Phase 4 observation, add ``derived=P.DERIVED`` (``obs_dim = 24 + 30*num_slots``) so that the
# width is checked against the number of slots rather than bound freely.
# ------------------------------------------------------------------------------------------

from contracts.batch import TensorBatch, TensorField  # noqa: E402
from contracts.spec import DictSpec, TensorSpec, TupleSpec, spec  # noqa: E402

#: Inclusive range of ``blueprint_indices``: NULL_BLUEPRINT (-1) up to the last blueprint (12).
BLUEPRINT_INDEX_RANGE: Final[tuple[int, int]] = (NULL_BLUEPRINT, NUM_BLUEPRINTS - 1)
_BP_RANGE = f"in [{BLUEPRINT_INDEX_RANGE[0]}, {BLUEPRINT_INDEX_RANGE[1]}]"
_OP_RANGE = f"in [0, {NUM_OPS - 1}]"

#: ``bind=`` for methods of objects with a ``num_slots`` attribute (the policy, the buffer).
#: Add ``"obs_dim": "self.state_dim"`` (network, bundle) or ``"self.obs_dim"`` (buffer) to pin
#: the observation width too; otherwise the first features argument binds it.
BIND_FROM_SELF: Final[dict[str, str]] = {"num_slots": "self.num_slots"}


def fixed_dims(num_slots: int = DEFAULT_NUM_SLOTS) -> dict[str, int]:
    """``fixed=`` symbols for code without an instance: ``num_slots`` and ``obs_dim``."""
    return {"num_slots": num_slots, "obs_dim": obs_dim(num_slots)}


def _head_dim(head: str) -> str:
    # The slot head's size is the number of slots: a symbol, so one spec fits any num_slots.
    return "num_slots" if head == "slot" else str(head_sizes()[head])


def _dict(value: dict[str, str]) -> DictSpec:
    out = spec(value)
    assert isinstance(out, DictSpec)
    return out


def _heads(lead: str, template: str) -> DictSpec:
    """Per-head dict spec; ``template`` gets ``{lead}`` and ``{size}`` filled in per head."""
    return _dict({h: template.format(lead=lead, size=_head_dim(h)) for h in HEAD_NAMES})


def _action_spec(lead: str) -> DictSpec:
    out: dict[str, str] = {}
    for h in HEAD_NAMES:
        size = head_sizes()[h]
        rng = "" if h == "slot" else f" in [0, {size - 1}]"
        out[h] = f"int64[{lead}]{rng}"
    return _dict(out)


# -- features ``[*lead, obs_dim]`` ------------------------------------------------------------
#: Observation features at rollout: ``float32[batch, obs_dim]``.
FEATURES_ROLLOUT: Final = TensorSpec.parse("float32[batch, obs_dim]")
#: Observation features in the update: ``float32[batch, seq, obs_dim]``.
FEATURES_SEQUENCE: Final = TensorSpec.parse("float32[batch, seq, obs_dim]")
#: Either of the two: ``float32[*lead, obs_dim]``.
FEATURES: Final = TensorSpec.parse("float32[*lead, obs_dim]")

# -- blueprint_indices, int64 in [-1, 12] (range checked in full mode) ------------------------
BLUEPRINT_INDICES_ROLLOUT: Final = TensorSpec.parse(f"int64[batch, num_slots] {_BP_RANGE}")
BLUEPRINT_INDICES_SEQUENCE: Final = TensorSpec.parse(f"int64[batch, seq, num_slots] {_BP_RANGE}")
#: ``int64[*lead, num_slots] in [-1, 12]``: shares ``*lead`` with :data:`FEATURES`.
BLUEPRINT_INDICES: Final = TensorSpec.parse(f"int64[*lead, num_slots] {_BP_RANGE}")

# -- masks: dict keyed by HEAD_NAMES, bool, True = allowed -----------------------------------
MASKS_ROLLOUT: Final = _heads("batch", "bool[{lead}, {size}]")
MASKS_SEQUENCE: Final = _heads("batch, seq", "bool[{lead}, {size}]")
MASKS: Final = _heads("*lead", "bool[{lead}, {size}]")

# -- actions: dict keyed by HEAD_NAMES, int64 in [0, size - 1] (slot: no fixed bound) ---------
ACTIONS_ROLLOUT: Final = _action_spec("batch")
ACTIONS_SEQUENCE: Final = _action_spec("batch, seq")
ACTIONS: Final = _action_spec("*lead")

# -- per-head log-probabilities, dict keyed by HEAD_NAMES -----------------------------------
LOG_PROBS_ROLLOUT: Final = _heads("batch", "float32[{lead}]")
LOG_PROBS_SEQUENCE: Final = _heads("batch, seq", "float32[{lead}]")
LOG_PROBS: Final = _heads("*lead", "float32[{lead}]")

# -- op, values ------------------------------------------------------------------------------
#: The sampled or executed op: ``int64[*lead] in [0, 5]``.
OP: Final = TensorSpec.parse(f"int64[*lead] {_OP_RANGE}")
VALUE_ROLLOUT: Final = TensorSpec.parse("float32[batch]")
VALUE_SEQUENCE: Final = TensorSpec.parse("float32[batch, seq]")
#: Q(s, op) or V(s): ``float32[*lead]``.
VALUE: Final = TensorSpec.parse("float32[*lead]")
#: Q(s, op) for every op: ``float32[*lead, 6]``.
Q_ALL_OPS: Final = TensorSpec.parse(f"float32[*lead, {NUM_OPS}]")

# -- LSTM hidden state (h, c), each [layers, batch, hidden] --------------------------------
HIDDEN: Final = TupleSpec(
    items=(
        TensorSpec.parse("float32[layers, batch, hidden]"),
        TensorSpec.parse("float32[layers, batch, hidden]"),
    )
)
#: :data:`HIDDEN` or ``None`` (start from zeros).
HIDDEN_OR_NONE: Final = HIDDEN.or_none()


class RolloutBatch(TensorBatch):
    """Rollout storage or a batch of sequences: rows ``env`` by time ``step``.

    For the buffer, ``env`` is the env and ``step`` the time step; for sequences read back for
    the update, ``env`` is the sequence and ``step`` its time step. ``hidden`` is the LSTM
    state before each row's first step. Every field must agree on ``[env, step]`` and on
    ``num_slots``; nothing is copied (``batch.features is features``).

        batch = RolloutBatch(features=..., blueprint_indices=..., actions=..., masks=...,
                             log_probs=..., values=..., rewards=...)
    """

    features: Annotated[Tensor, TensorField("float32[env, step, obs_dim]")]
    blueprint_indices: Annotated[Tensor, TensorField(f"int64[env, step, num_slots] {_BP_RANGE}")]
    actions: Annotated[dict[str, Tensor], TensorField(_action_spec("env, step"))]
    masks: Annotated[dict[str, Tensor], TensorField(_heads("env, step", "bool[{lead}, {size}]"))]
    log_probs: Annotated[dict[str, Tensor], TensorField(_heads("env, step", "float32[{lead}]"))]
    values: Annotated[Tensor, TensorField("float32[env, step]")]
    rewards: Annotated[Tensor | None, TensorField("float32[env, step] | None")] = None
    terminated: Annotated[Tensor | None, TensorField("bool[env, step] | None")] = None
    truncated: Annotated[Tensor | None, TensorField("bool[env, step] | None")] = None
    executed_op: Annotated[Tensor | None, TensorField(f"int64[env, step] {_OP_RANGE} | None")] = (
        None
    )
    advantages: Annotated[Tensor | None, TensorField("float32[env, step] | None")] = None
    returns: Annotated[Tensor | None, TensorField("float32[env, step] | None")] = None
    valid: Annotated[Tensor | None, TensorField("bool[env, step] | None")] = None
    hidden: Annotated[
        tuple[Tensor, Tensor] | None,
        TensorField("tuple[float32[layers, env, hidden], float32[layers, env, hidden]] | None"),
    ] = None
