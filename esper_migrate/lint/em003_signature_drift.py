"""EM003 signature-drift: an implementer disagrees with its protocol or its siblings.

For every protocol of the spec and each of its target members, the group is the protocol's
definition plus the definition in every implementer: classes that inherit from the protocol
(tier ``resolved``) and classes that define every target member of it (a structural
implementer such as a second bundle nobody registered: tier ``resolved`` where the index matched
the member's signature, else ``name``). When the group does not agree on the new parameter
(present or not, and at which position), each definition that deviates from the migrated
signature (the parameter right after the features) is flagged: code typed against the protocol
calls them all the same way, and one of them breaks.

Only the new parameter is compared: implementers that add their own optional parameters are
not drift for this migration. A definition that lacks the parameter is EM002's (apply adds it):
this rule reports what apply cannot express, a parameter present in the wrong place.
"""

from __future__ import annotations

import ast

from esper_migrate.index import ClassInfo, FunctionInfo, Index
from esper_migrate.lint import CheckContext, classes_in, per_index
from esper_migrate.records import Code, Finding, Tier
from esper_migrate.rule import Example, Expected, LintRule, edited

_CLASS = """\
class PolicyBundle(Protocol):
    def get_action(self, features, blueprint_indices, hidden=None): ...
    def forward(self, features, blueprint_indices, hidden=None): ...
    def evaluate_actions(self, features, blueprint_indices, actions, hidden=None): ...
    def get_value(self, features, blueprint_indices, hidden=None): ...

"""
_PROTOCOL = "\nfrom typing import Protocol\n\n" + _CLASS
_FLAGGED = (
    _PROTOCOL
    + edited(
        _CLASS,
        ("class PolicyBundle(Protocol):", "class LSTMPolicyBundle(PolicyBundle):"),
    )
    + edited(
        _CLASS,
        ("class PolicyBundle(Protocol):", "class HeuristicPolicyBundle:"),
        ("features, blueprint_indices, actions,", "features, actions, blueprint_indices,"),
    )
)
_NOT_FLAGGED = (
    _PROTOCOL
    + """\
class HeuristicPolicyBundle:
    def get_action(self, obs, blueprint_indices, hidden=None, temperature=1.0): ...
    def forward(self, obs, blueprint_indices, hidden=None): ...
    def evaluate_actions(self, obs, blueprint_indices, actions, hidden=None): ...
    def get_value(self, obs, blueprint_indices, hidden=None): ...

class ScriptedPolicy:  # a look-alike: same names, not an implementer
    def get_action(self, obs, epoch=0): ...
    def evaluate_actions(self, actions): ...
"""
)


def _position(fn: FunctionInfo, name: str) -> int | None:
    """Position of the new parameter among the positional parameters (None: absent)."""
    positional = [p["name"] for p in fn["params"] if p["kind"] in ("pos", "posonly")]
    if name in positional:
        return positional.index(name)
    if any(p["name"] == name for p in fn["params"]):
        return -1  # keyword-only: present, but not where positional callers put it
    return None


def _expected(index: Index, proto_fn: FunctionInfo, param: str, fallback: int) -> int:
    """Where the spec's placement puts the parameter in the protocol's member: its position
    among the positional parameters (after, before, first or last the named neighbour, else
    after the index fallback), or -1 for a keyword-only one."""
    placement = index.placement_for(proto_fn)
    if placement.keyword_only:
        return -1
    positional = [
        p["name"]
        for p in proto_fn["params"]
        if p["kind"] in ("pos", "posonly") and p["name"] != param
    ]
    at = placement.position_in(positional)
    return at if at is not None else fallback


def _implements(index: Index, info: ClassInfo, protocol: str, members: list[str]) -> Tier | None:
    if info["name"] == protocol:
        return None
    if protocol in index.ancestors(info["name"])[1:]:
        return Tier.RESOLVED
    if not info["protocol"] and all(m in info["methods"] for m in members):
        return Tier.NAME
    return None


def _member_tier(index: Index, info: ClassInfo, member: str, tier: Tier) -> Tier:
    if tier is Tier.NAME and index.is_target(info["name"], member) is not None:
        return Tier.RESOLVED
    return tier


#: (class, method) -> (its tier, the group it belongs to, the protocol's name).
_Drift = dict[tuple[str, str], tuple[Tier, list[tuple[ClassInfo, FunctionInfo, Tier]], str, int]]


def _drift_table(index: Index, param: str, expected: int) -> _Drift:
    """Every deviating definition in the repository, computed once per index."""
    table: _Drift = {}
    for target in index.spec.targets:
        if target.kind != "protocol":
            continue
        proto_info = index.class_info(target.name)
        if proto_info is None:
            continue
        members = [m for m in target.methods if m in proto_info["methods"]]
        implementers = [
            (info, tier)
            for infos in index.classes.values()
            for info in infos
            if (tier := _implements(index, info, target.name, members)) is not None
        ]
        if not implementers:
            continue
        for member in members:
            group: list[tuple[ClassInfo, FunctionInfo, Tier]] = [
                (proto_info, proto_info["methods"][member], Tier.RESOLVED)
            ]
            group.extend(
                # A structural implementer whose member the index already resolved as a target
                # (same signature up to the new parameter) is as certain as a subclass.
                (info, info["methods"][member], _member_tier(index, info, member, tier))
                for info, tier in implementers
                if member in info["methods"]
            )
            if len({_position(fn, param) for _, fn, _ in group}) < 2:
                continue
            where = _expected(index, proto_info["methods"][member], param, expected)
            for info, fn, tier in group:
                if _position(fn, param) != where:
                    table[(info["name"], member)] = (tier, group, target.name, where)
    return table


class SignatureDrift(LintRule):
    CODE = Code.SIGNATURE_DRIFT
    NAME = "signature-drift"
    SUMMARY = "An implementer takes the new parameter somewhere its protocol does not."
    DOC = """
## What it does
For every target protocol and member, compares the protocol's definition with every
implementer's (subclasses, and classes that define every member): a definition that takes the
new parameter at another position, or keyword-only, is flagged.

## Why is this bad?
Code typed against the protocol calls every implementer the same way; the one whose
parameters are in another order silently receives the arguments in the wrong slots.

## Example
```python
class PolicyBundle(Protocol):
    def evaluate_actions(self, features, blueprint_indices, actions, hidden=None): ...

class HeuristicPolicyBundle:
    def evaluate_actions(self, features, actions, blueprint_indices, hidden=None): ...
```

Use instead:
```python
class HeuristicPolicyBundle:
    def evaluate_actions(self, features, blueprint_indices, actions, hidden=None): ...
```

## Fix
None: moving a parameter changes every positional caller, which only a person can review.
A definition that lacks the parameter is EM002, which apply fixes.

## Fix safety
Not applicable (no automatic fix).
"""
    EXAMPLES = (
        Example(before=_FLAGGED, findings=(Expected(19, "EM003", reason="moving it"),)),
        Example(before=_NOT_FLAGGED, findings=()),
    )

    def lint(self, ctx: CheckContext) -> list[Finding]:
        if not any(t.kind == "protocol" for t in ctx.spec.targets):
            return []
        param = ctx.spec.parameter.name
        expected = ctx.spec.parameter.after_position + 1
        table = per_index(
            ctx.index, "signature_drift", lambda: _drift_table(ctx.index, param, expected)
        )
        found: list[Finding] = []
        for info in classes_in(ctx.index, ctx.path):
            for method, fn in info["methods"].items():
                hit = table.get((info["name"], method))
                position = _position(fn, param)
                if hit is None or position is None:
                    continue  # in line with the group, or lacking it (EM002: apply adds it)
                tier, group, protocol, where = hit
                found.append(_finding(ctx, info, fn, tier, group, position, where, protocol))
        return found


def _describe(position: int | None, expected: int) -> str:
    if position is None:
        return "lacks"
    if position == -1:
        return "takes as keyword-only"
    return f"takes at position {position} (expected {expected})"


def _move(param: str, expected: int) -> str:
    if expected == -1:
        return f"make `{param}` keyword-only, as the spec places it"
    if expected == 0:
        return f"move `{param}` first, as the spec places it"
    return f"move `{param}` to position {expected}, as the spec places it"


def _finding(
    ctx: CheckContext,
    info: ClassInfo,
    fn: FunctionInfo,
    tier: Tier,
    group: list[tuple[ClassInfo, FunctionInfo, Tier]],
    position: int | None,
    expected: int,
    protocol: str,
) -> Finding:
    param = ctx.spec.parameter.name
    others = [
        f"{other['name']}.{other_fn['name']}"
        for other, other_fn, _ in group
        if other is not info and _position(other_fn, param) != position
    ]
    role = "protocol member" if info["name"] == protocol else f"implementer of {protocol}"
    message = (
        f"{info['name']}.{fn['name']} ({role}) {_describe(position, expected)} `{param}`, "
        f"unlike {', '.join(others)}"
    )
    reason = f"`{param}` is in the wrong place; moving it changes every positional caller"
    node = _def_node(ctx, info["name"], fn["name"])
    return Finding(
        path=ctx.path,
        line=node.lineno if node is not None else fn["line"],
        col=(node.col_offset + 1) if node is not None else 1,
        code=Code.SIGNATURE_DRIFT,
        message=message,
        tier=tier,
        fix=None,
        unfixable_reason=f"{reason}; suggested edit: {_move(param, expected)}",
    )


def _def_node(
    ctx: CheckContext, cls: str, method: str
) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for stmt in node.body:
                if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == method:
                    return stmt
    return None
