"""Dict literals that carry the features under a features key gain the companion right after it
(``{"state": states_batch[i].detach()}`` -> ``{"state": ..., "blueprint_indices":
blueprint_indices_batch[i].detach()}``), so later lookups can hand it on."""

from __future__ import annotations

import ast

from esper_migrate.context import FileContext
from esper_migrate.flow import Derivation, derive
from esper_migrate.records import Code, Edit, EditKind, Tier
from esper_migrate.rules import Example
from esper_migrate.rules.derive_lookup import _quote

EXAMPLES = [
    Example(
        before="""\
def rollout(signals, num_envs):
    states_batch, blueprint_indices_batch = batch_obs_to_features(signals)
    transitions = []
    for i in range(num_envs):
        transitions.append({"state": states_batch[i].detach(), "reward": 0.0})
    return transitions
""",
        after="""\
def rollout(signals, num_envs):
    states_batch, blueprint_indices_batch = batch_obs_to_features(signals)
    transitions = []
    for i in range(num_envs):
        transitions.append({"state": states_batch[i].detach(), "blueprint_indices": blueprint_indices_batch[i].detach(), "reward": 0.0})
    return transitions
""",
    ),
    Example(
        before="""\
def config(obs):
    return {"obs": obs, "name": "x"}
""",
    ),
]


def _key(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def run(ctx: FileContext) -> None:
    new = ctx.spec.parameter.name
    keys = set(ctx.spec.features.keys)
    batched = {s.batched_method for s in ctx.spec.storage if s.batched_method}
    for node, scope in ctx.dicts:
        present = [_key(k) for k in node.keys]
        hits = [(k, v) for k, v in zip(node.keys, node.values, strict=True) if _key(k) in keys]
        if not hits:
            continue
        if new in present:
            ctx.companion_dict_keys.update(str(_key(k)) for k, _ in hits)
            continue
        fn = scope.function
        if fn is not None and fn.name in batched and ctx.index.storage(scope.cls) is not None:
            continue  # the storage rule owns the batched output
        key_node, value = hits[0]
        assert key_node is not None
        result = derive(ctx, scope, value)
        if not isinstance(result, Derivation):
            continue  # a dict that merely has such a key; a later lookup reports if needed
        key = str(_key(key_node))
        ctx.companion_dict_keys.add(key)
        for side in result.edits:
            if ctx.once("side", side.kind, side.anchor, side.text):
                ctx.add_edit(side)
        ctx.add_edit(
            Edit(
                kind=EditKind.DICT_ENTRY,
                path=ctx.path,
                line=node.lineno,
                col=ctx.char_col(node.lineno, node.col_offset),
                code=Code.MISSING_ARGUMENT,
                tier=Tier.RESOLVED,
                reason=f"dict carries the features under `{key}` without `{new}`",
                derivation=result.how,
                anchor=ctx.span(node),
                text=result.text,
                after=ctx.text(key_node),
                extra=_quote(ctx.text(key_node), new),
            )
        )
