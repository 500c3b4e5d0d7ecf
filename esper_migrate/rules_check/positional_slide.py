"""EM004 positional-slide: a positional call fits the old signature, so an argument slides.

``policy.evaluate_actions(states, actions, masks, hidden)`` against a definition that already
takes ``(states, blueprint_indices, actions, masks, hidden)`` raises nothing: ``actions`` lands
in ``blueprint_indices`` and every later argument shifts by one. Flagged on calls the engine
already reports as missing the argument (EM001: resolved to a target, exemptions applied)
that pass something positionally after the features while some definition of the callee
already has the new parameter in that slot.
"""

from __future__ import annotations

import ast

from esper_migrate.index import FunctionInfo
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


def _calls_on_line(tree: ast.Module, line: int) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == line]


def check(ctx: CheckContext) -> list[Finding]:
    missing = [f for f in ctx.engine_findings if f.code is Code.MISSING_ARGUMENT]
    if not missing:
        return []
    param = ctx.spec.parameter.name
    slot = ctx.spec.parameter.after_position + 1
    targets = ctx.spec.target_methods
    found: list[Finding] = []
    for em001 in missing:
        call = _the_call(_calls_on_line(ctx.tree, em001.line), em001.col, targets)
        if call is None:
            continue
        method = call.func.attr if isinstance(call.func, ast.Attribute) else "forward"
        if method not in targets:
            method = "forward"  # `net(x)`: nn.Module.__call__ runs forward
        if any(isinstance(a, ast.Starred) for a in call.args) or any(
            k.arg == param or k.arg is None for k in call.keywords
        ):
            continue
        if len(call.args) <= slot:
            continue  # nothing positional lands in the new slot
        migrated = [
            fn for fn in ctx.index.target_definitions(method) if _slot_of(fn, param) == slot
        ]
        if not migrated:
            continue
        slid = ast.unparse(call.args[slot])
        callee = migrated[0]["name"]
        found.append(
            Finding(
                path=ctx.path,
                line=em001.line,
                col=em001.col,
                code=CODE,
                message=(
                    f"positional call to {method}() fits the old signature: `{slid}` slides "
                    f"into `{param}` of {callee}() and every later argument shifts by one"
                ),
                tier=em001.tier,
                fix=em001.fix,
                unfixable_reason=em001.unfixable_reason,
            )
        )
    return found


def _slot_of(fn: FunctionInfo, param: str) -> int | None:
    positional = [p["name"] for p in fn["params"] if p["kind"] in ("pos", "posonly")]
    return positional.index(param) if param in positional else None


def _the_call(calls: list[ast.Call], col: int, targets: frozenset[str]) -> ast.Call | None:
    """The call the EM001 finding points at: by column, else the first target-looking one."""
    for call in calls:
        if col in (call.col_offset + 1, call.col_offset):
            return call
        func = call.func
        if isinstance(func, ast.Attribute) and col in (
            func.end_col_offset - len(func.attr) + 1 if func.end_col_offset is not None else -1,
        ):
            return call
    for call in calls:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in targets:
            return call
    return calls[0] if calls else None
