"""Planning rules: one module per finding code that ``apply`` fixes and ``check`` reports.

Each rule turns what the analyses found (``calls`` for calls and dict literals, the index for
definitions and storage classes) into units: one root cause, one finding, the edits that fix it
(all or none). The engine runs them in code order, then folds the pass-on calls of a definition
that gains the parameter into that definition's unit (see :func:`fold_pass_on`).
"""

from __future__ import annotations

from dataclasses import replace

from esper_migrate.context import FileContext


def fold_pass_on(ctx: FileContext) -> None:
    """A definition and the calls inside it that pass its features on land together: their
    edits join the definition's unit, and if one of them cannot be planned, none of it is
    (the definition's unit reports why)."""
    from esper_migrate.plan.calls import CallPlan

    defs: dict[int, int] = ctx.shared.get("def_units", {})  # type: ignore[assignment]
    calls: dict[int, tuple[CallPlan, int]] = ctx.shared.get("call_units", {})  # type: ignore[assignment]
    if not defs or not calls:
        return
    drop: set[int] = set()
    for plan, unit_at in calls.values():
        owner = plan.passes_on
        if owner is None or id(owner) not in defs:
            continue
        at = defs[id(owner)]
        unit, call_unit = ctx.units[at], ctx.units[unit_at]
        drop.add(unit_at)
        if not unit.resolved:
            continue
        if call_unit.resolved:
            ctx.units[at] = replace(unit, edits=unit.edits + call_unit.edits)
        else:
            ctx.units[at] = unit.unresolved(
                f"its pass-on call at line {call_unit.line} cannot be planned: {call_unit.reason}",
                f"{call_unit.suggestion}, then add the parameter",
            )
    ctx.units[:] = [u for i, u in enumerate(ctx.units) if i not in drop]
