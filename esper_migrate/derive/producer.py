"""Derivation: ``X, Y = producer(...)`` (or a local wrapper of it) makes Y the companion of X.

A discarded companion is brought back: ``_bp_indices`` is renamed ``bp_indices`` with every use,
a bare ``_`` becomes the features name with its stem replaced.
"""

from __future__ import annotations

import ast

from esper_migrate.context import Binding, FileContext, Scope, own_nodes
from esper_migrate.derive import Derivation, Failure, Result, companion_name
from esper_migrate.index import callee_name
from esper_migrate.records import Code, EditKind
from esper_migrate.rule import get_action_example

EXAMPLES = [
    get_action_example(
        """\
def rollout(net, signals):
    obs, _bp_indices = batch_obs_to_features(signals)
    print(_bp_indices)
    return FactoredRecurrentActorCritic().get_action(obs, hidden=None)
""",
        ("obs, _bp_indices =", "obs, bp_indices ="),
        ("print(_bp_indices)", "print(bp_indices)"),
        ("(obs, hidden=None)", "(obs, blueprint_indices=bp_indices, hidden=None)"),
    ),
    get_action_example(
        """\
def _extract(signals):
    return batch_obs_to_features(signals)


def bootstrap(net: FactoredRecurrentActorCritic, signals):
    states_batch, _ = _extract(signals)
    return net.get_action(states_batch)
""",
        ("states_batch, _ =", "states_batch, blueprint_indices_batch ="),
        (
            "get_action(states_batch)",
            "get_action(states_batch, blueprint_indices=blueprint_indices_batch)",
        ),
    ),
    get_action_example(
        """\
def step(net: FactoredRecurrentActorCritic, signals):
    obs = batch_obs_to_features(signals)[0]
    return net.get_action(obs)
""",
        unresolved="not unpacked",
    ),
]


def _producer_call(ctx: FileContext, value: ast.expr | None) -> str | None:
    if isinstance(value, ast.Call):
        name = callee_name(value.func)
        if ctx.index.producer(name) is not None:
            return name
    return None


def derive(ctx: FileContext, scope: Scope, name: ast.Name, b: Binding, depth: int) -> Result | None:
    if b.kind == "assign" and isinstance(b.value, ast.Subscript):
        inner = _producer_call(ctx, b.value.value)
        if inner is not None:
            return Failure(
                f"`{name.id}` takes one element of `{inner}(...)`: the result is not unpacked"
            )
    if b.kind != "unpack":
        return None
    producer_name = _producer_call(ctx, b.value)
    if producer_name is None:
        return None
    producer = ctx.index.producer(producer_name)
    assert producer is not None and b.tuple_node is not None
    if b.position != producer.features_index:
        return Failure(f"`{name.id}` is not the features element of `{producer_name}(...)`")
    elts = b.tuple_node.elts
    if producer.companion_index >= len(elts) or any(isinstance(e, ast.Starred) for e in elts):
        return Failure(f"`{producer_name}(...)` is unpacked without its companion")
    companion = elts[producer.companion_index]
    how = f"companion of `{name.id}` from `{producer_name}(...)` (line {b.line})"
    if not isinstance(companion, ast.Name):
        return Derivation(ctx.text(companion), how)
    if not companion.id.startswith("_"):
        return Derivation(companion.id, how)
    if companion.id == "_":
        new = companion_name(ctx, name.id)
        spans = [companion]
    else:
        new = companion.id.lstrip("_")
        spans = [
            n for n in own_nodes(scope.node) if isinstance(n, ast.Name) and n.id == companion.id
        ]
    if not new or (new in scope.bindings and new != companion.id):
        return Failure(f"cannot rename the discarded companion `{companion.id}`: `{new}` is taken")
    spans.sort(key=lambda n: (n.lineno, n.col_offset))
    edits = [
        ctx.edit(
            EditKind.RENAME,
            n,
            new,
            f"discarded companion `{companion.id}` is used now",
            how,
            code=Code.COMPANION_UNUSED,
            after=companion.id,
        )
        for n in spans
    ]
    return Derivation(new, how + f", renamed from `{companion.id}`", edits)
