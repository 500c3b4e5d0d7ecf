"""Where the new parameter goes in one signature, and the signature it makes.

The spec's :class:`~esper_migrate.spec.Placement` says it in words (after, before, first, last,
keyword-only, an index fallback); an :class:`Insertion` is that placement resolved against one
definition's parameters. Definitions, calls (bound to the old and the migrated signature),
protocol drift and structural matching all read it from here, so they agree on one position.
"""

from __future__ import annotations

from dataclasses import dataclass

from esper_migrate.index import ParamInfo
from esper_migrate.spec import Placement

_POSITIONAL = ("pos", "posonly")


@dataclass(frozen=True)
class Insertion:
    """The new parameter's place in one signature (``self``/``cls`` and the new one aside)."""

    keyword_only: bool
    #: Its index once inserted: among the positional parameters, or among the keyword-only ones.
    index: int
    #: The parameter of its group it goes right after (None: first of its group).
    after: str | None
    #: The parameter it goes right before in its group (None: last of its group).
    before: str | None
    #: The parameter whose argument the companion derives from and whose docstring entry it
    #: joins: the positional neighbour it follows, else the one it precedes; for a keyword-only
    #: one, the parameter the placement names (any kind), else the index fallback's.
    neighbour: str | None

    def migrated(self, params: list[ParamInfo], new: ParamInfo) -> list[ParamInfo]:
        """``params`` with ``new`` inserted here (of kind ``kwonly`` when keyword-only)."""
        if self.keyword_only:
            added = ParamInfo(
                name=new["name"],
                annotation=new["annotation"],
                has_default=new["has_default"],
                kind="kwonly",
            )
            kw = [i for i, p in enumerate(params) if p["kind"] == "kwonly"]
            if self.index < len(kw):
                at = kw[self.index]
            elif kw:
                at = kw[-1] + 1
            else:
                star = [i for i, p in enumerate(params) if p["kind"] == "vararg"]
                tail = [i for i, p in enumerate(params) if p["kind"] == "kwarg"]
                at = star[0] + 1 if star else tail[0] if tail else len(params)
            return [*params[:at], added, *params[at:]]
        positional = [i for i, p in enumerate(params) if p["kind"] in _POSITIONAL]
        at = positional[self.index - 1] + 1 if self.index > 0 else 0
        return [*params[:at], new, *params[at:]]


def insertion(placement: Placement, params: list[ParamInfo], new: str) -> Insertion | None:
    """Where ``placement`` puts ``new`` among ``params``; None when it names no place (an
    index fallback beyond the positional parameters)."""
    every = [p["name"] for p in params if p["name"] != new]
    positional = [p["name"] for p in params if p["kind"] in _POSITIONAL and p["name"] != new]
    if placement.keyword_only:
        kw = [p["name"] for p in params if p["kind"] == "kwonly" and p["name"] != new]
        k = placement.keyword_position_in(kw)
        named = next((n for n in (placement.after, placement.before) if n in every), None)
        fallback = positional[placement.index] if len(positional) > placement.index else None
        return Insertion(
            keyword_only=True,
            index=k,
            after=kw[k - 1] if k > 0 else None,
            before=kw[k] if k < len(kw) else None,
            neighbour=named or fallback,
        )
    at = placement.position_in(positional)
    if at is None:
        return None
    k = at
    after = positional[k - 1] if k > 0 else None
    before = positional[k] if k < len(positional) else None
    return Insertion(False, k, after, before, after or before)
