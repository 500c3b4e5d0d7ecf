"""EM006 companion-unused: a producer's companion is unpacked and never used.

``states, _bp_indices = batch_obs_to_features(...)`` (or through a local wrapper that returns
the producer's result) followed by no read of ``_bp_indices`` in the same scope, while the
features go on to a target call that lacks the argument (the engine's plan needs the companion:
it renames ``_bp_indices`` or passes the unused name). Features that never reach a target (a
warm-up loop feeding a scripted policy) lose nothing by dropping it and are not flagged.
"""

from __future__ import annotations

import ast
import re

from esper_migrate.index import callee_name
from esper_migrate.records import Code, EditKind, Finding, Tier
from esper_migrate.rules_check import CheckContext, walk_scope

CODE = Code.COMPANION_UNUSED

_NETWORK = """
from esper.features import batch_obs_to_features

class FactoredRecurrentActorCritic:
    def get_action(self, features, blueprint_indices, hidden=None): ...
"""

FLAGGED = [
    _NETWORK
    + """
def rollout(net: FactoredRecurrentActorCritic, batch):
    states, _bp_indices = batch_obs_to_features(batch)  # flagged
    return net.get_action(states)
""",
    _NETWORK
    + """
def _features(env):
    return batch_obs_to_features([env])

def bootstrap(net: FactoredRecurrentActorCritic, env):
    obs, _ = _features(env)  # flagged
    return net.get_action(obs, hidden=None)
""",
    _NETWORK
    + """
def rollout(net: FactoredRecurrentActorCritic, batch):
    states, bp = batch_obs_to_features(batch)  # flagged
    return net.get_action(states[0].detach())
""",
]

NOT_FLAGGED = [
    _NETWORK
    + """
def rollout(net: FactoredRecurrentActorCritic, batch):
    states, bp_indices = batch_obs_to_features(batch)
    return net.get_action(states, bp_indices)
""",
    _NETWORK
    + """
class ScriptedPolicy:
    def get_action(self, obs, epoch=0): ...

def warmup(scripted: ScriptedPolicy, batch, normalizer):
    # The features never reach a target: dropping the companion loses nothing.
    obs, _ = batch_obs_to_features(batch)
    normalizer.update(obs)
    return scripted.get_action(obs[0], 0)
""",
    """
def unrelated(batch):
    return batch, batch

def rollout(batch):
    states, _ignored = unrelated(batch)
    return states
""",
]


def _scopes(tree: ast.Module) -> list[ast.AST]:
    scopes: list[ast.AST] = [tree]
    scopes.extend(
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )
    return scopes


def check(ctx: CheckContext) -> list[Finding]:
    if not ctx.plan.edits or not any(name in ctx.source for name in ctx.index.producers):
        return []  # nothing planned (so no companion is needed), or no producer mentioned
    found: list[Finding] = []
    for scope in _scopes(ctx.tree):
        nodes = list(walk_scope(scope))
        loaded: set[str] | None = None
        for node in nodes:
            if not (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Tuple | ast.List)
                and isinstance(node.value, ast.Call)
            ):
                continue
            name = callee_name(node.value.func)
            producer = ctx.index.producer(name)
            elements = node.targets[0].elts
            if producer is None or producer.companion_index >= len(elements):
                continue
            companion = elements[producer.companion_index]
            if not isinstance(companion, ast.Name):
                continue
            if loaded is None:
                # Reads anywhere in the scope, nested functions included (closures read it too).
                loaded = {
                    n.id
                    for n in ast.walk(scope)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
                }
            if companion.id != "_" and companion.id in loaded:
                continue
            if not _needed(ctx, companion):
                continue  # its features reach no call that lacks the argument
            found.append(_finding(ctx, companion, name or "?", elements, producer.features_index))
    return found


def _needed(ctx: CheckContext, companion: ast.Name) -> bool:
    """Whether the engine's plan uses this companion: it renames it (a discarded ``_name``)
    or passes it to a call, a dict or a store (a plain name that was never read)."""
    word = re.compile(rf"\b{re.escape(companion.id)}\b")
    for edit in ctx.plan.edits:
        if edit.kind is EditKind.RENAME:
            if edit.line == companion.lineno and edit.code is Code.COMPANION_UNUSED:
                return True
        elif companion.id != "_" and word.search(edit.text):
            return True
    return False


def _finding(
    ctx: CheckContext,
    companion: ast.Name,
    producer: str,
    elements: list[ast.expr],
    features_index: int,
) -> Finding:
    param = ctx.spec.parameter.name
    features = elements[features_index] if features_index < len(elements) else None
    features_name = features.id if isinstance(features, ast.Name) else None
    new_name = _kept_name(companion.id, features_name, ctx)
    if new_name is None:
        fix = None
        reason = f"cannot name the companion: the features target is not a plain name ({param})"
    elif new_name != companion.id:
        fix = f"rename `{companion.id}` to `{new_name}` and pass it with `{features_name}`"
        reason = None
    else:
        fix = f"pass `{new_name}` wherever `{features_name}` reaches a target call"
        reason = None
    return Finding(
        path=ctx.path,
        line=companion.lineno,
        col=companion.col_offset + 1,
        code=CODE,
        message=(
            f"companion `{companion.id}` of {producer}(...) is unpacked and never used: "
            f"`{param}` is dropped"
        ),
        tier=Tier.RESOLVED,
        fix=fix,
        unfixable_reason=reason,
    )


def _kept_name(companion: str, features: str | None, ctx: CheckContext) -> str | None:
    """The name apply gives a discarded companion (conventions: drop leading underscores; a
    bare ``_`` becomes the features name with its stem replaced by the parameter name)."""
    if companion != "_":
        stripped = companion.lstrip("_")
        return stripped or None
    if features is None:
        return None
    param = ctx.spec.parameter.name
    for stem in sorted(ctx.spec.features.stems, key=len, reverse=True):
        if stem in features:
            return features.replace(stem, param, 1)
    return None
