"""EM006 companion-unused: a producer's companion is unpacked and never used.

``states, _bp_indices = batch_obs_to_features(...)`` (or through a local wrapper that returns
the producer's result) followed by no read of ``_bp_indices`` in the same scope: the network
never sees the value the producer computed for it.
"""

from __future__ import annotations

import ast

from esper_migrate.index import callee_name
from esper_migrate.records import Code, Finding, Tier
from esper_migrate.rules_check import CheckContext, walk_scope

CODE = Code.COMPANION_UNUSED

FLAGGED = [
    """
def batch_obs_to_features(batch):
    return batch, batch

def rollout(policy, batch):
    states, _bp_indices = batch_obs_to_features(batch)  # flagged
    return policy.get_action(states)
""",
    """
from esper.features import batch_obs_to_features

def _features(env):
    return batch_obs_to_features([env])

def bootstrap(policy, env):
    obs, _ = _features(env)  # flagged
    return obs
""",
]

NOT_FLAGGED = [
    """
from esper.features import batch_obs_to_features

def rollout(policy, batch):
    states, bp_indices = batch_obs_to_features(batch)
    return policy.get_action(states, bp_indices)
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
    if not ctx.index.producers:
        return []
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
            found.append(_finding(ctx, companion, name or "?", elements, producer.features_index))
    return found


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
