"""The Phase 4 vocabulary, defined once: action heads, their sizes, ops, blueprints, shapes.

Every other module (the reference policy, its buffer and trainer, the built-in environment and
people checking their own codebase) takes these names and numbers from here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


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


def obs_dim(num_slots: int = DEFAULT_NUM_SLOTS) -> int:
    """Observation width: 24 global features plus 30 per slot (114 for 3 slots)."""
    return GLOBAL_FEATURES + PER_SLOT_FEATURES * num_slots


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
