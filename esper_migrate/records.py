"""The records that flow from the engine to ``apply`` and ``check``: one vocabulary for both."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    """Stable finding codes; never renumber."""

    MISSING_ARGUMENT = "EM001"
    MISSING_PARAMETER = "EM002"
    SIGNATURE_DRIFT = "EM003"
    POSITIONAL_SLIDE = "EM004"
    STORAGE_MISSING_COMPANION = "EM005"
    COMPANION_UNUSED = "EM006"


class Tier(StrEnum):
    """How a site was matched to the spec."""

    #: The receiver or class was resolved through the index (types, hierarchy, protocols).
    RESOLVED = "resolved"
    #: Matched by method name and arity only.
    NAME = "name"


@dataclass(frozen=True, slots=True)
class Finding:
    """One site that breaks (or would break) at runtime, and what ``apply`` does about it.

    ``fix`` is the edit ``apply`` would make, as a short human-readable text; when the tool can
    not derive a value, ``fix`` is None and ``unfixable_reason`` says why.
    """

    path: str
    line: int
    col: int
    code: Code
    message: str
    tier: Tier
    fix: str | None = None
    unfixable_reason: str | None = None

    @property
    def fixable(self) -> bool:
        return self.fix is not None
