"""EM004 positional-slide: a positional call fits the old signature, so an argument slides.

``policy.evaluate_actions(states, actions, masks, hidden)`` against a definition that already
takes ``(states, blueprint_indices, actions, masks, hidden)`` raises nothing: ``actions`` lands
in ``blueprint_indices`` and every later argument shifts by one. Flagged on calls the engine
already reports as missing the argument (EM001: resolved to a target, exemptions applied)
that pass something positionally after the features while the definition they resolve to
already has the new parameter in that slot (the engine's resolved calls, ``FilePlan.calls``).
"""

from __future__ import annotations

from esper_migrate.records import Code, Finding
from esper_migrate.rules_check import CheckContext

CODE = Code.POSITIONAL_SLIDE

FLAGGED = [
    """
class FactoredRecurrentActorCritic:
    def evaluate_actions(self, states, blueprint_indices, actions, masks, hidden=None): ...

class PPOAgent:
    def __init__(self, network: FactoredRecurrentActorCritic) -> None:
        self.network = network

    def update(self, states, actions, masks, hidden):
        return self.network.evaluate_actions(states, actions, masks, hidden)  # flagged
""",
]

NOT_FLAGGED = [
    """
class FactoredRecurrentActorCritic:
    def evaluate_actions(self, states, blueprint_indices, actions, masks, hidden=None): ...

class PPOAgent:
    def __init__(self, network: FactoredRecurrentActorCritic) -> None:
        self.network = network

    def update(self, states, actions, masks, hidden):
        return self.network.evaluate_actions(states, actions=actions, masks=masks)
""",
    """
class FactoredRecurrentActorCritic:
    def evaluate_actions(self, states, actions, masks, hidden=None): ...

class PPOAgent:
    def __init__(self, network: FactoredRecurrentActorCritic) -> None:
        self.network = network

    def update(self, states, actions, masks, hidden):
        # Not migrated yet: a TypeError-free call today, EM001 only (nothing slides).
        return self.network.evaluate_actions(states, actions, masks, hidden)
""",
]


def check(ctx: CheckContext) -> list[Finding]:
    param = ctx.spec.parameter.name
    slot = ctx.spec.parameter.after_position + 1
    em001: dict[int, list[Finding]] = {}
    for f in ctx.engine_findings:
        if f.code is Code.MISSING_ARGUMENT:
            em001.setdefault(f.line, []).append(f)
    found: list[Finding] = []
    for call in ctx.plan.calls:
        if call.has_argument or call.n_positional <= slot:
            continue  # passes it already, or nothing positional reaches the new slot
        if param not in call.params or call.params.index(param) != slot:
            continue  # the definition is not migrated yet: the call fails loudly, no slide
        same_line = em001.get(call.line, [])
        missing = min(same_line, key=lambda f: abs(f.col - call.col), default=None)
        callee = f"{call.cls}.{call.method}" if call.cls else call.method
        found.append(
            Finding(
                path=ctx.path,
                line=call.line,
                col=call.col,
                code=CODE,
                message=(
                    f"positional call to {callee}() fits the old signature: its argument "
                    f"#{slot + 1} slides into `{param}` and every later one shifts by one"
                ),
                tier=call.tier,
                fix=missing.fix if missing is not None else None,
                unfixable_reason=_reason(missing, param),
            )
        )
    return found


def _reason(missing: Finding | None, param: str) -> str | None:
    """Why apply leaves the call: the engine's reason, with a positional suggestion (a
    keyword cannot go between positional arguments)."""
    if missing is not None and missing.fix is not None:
        return None
    why = f"apply plans no value for `{param}` at this call"
    if missing is not None and missing.unfixable_reason:
        why = missing.unfixable_reason.split("; suggested edit:")[0]
    return f"{why}; suggested edit: insert the companion positionally right after the features"
