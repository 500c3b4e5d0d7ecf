"""Derivation: inside a target method, the features parameter's companion is the new parameter."""

from __future__ import annotations

import ast

from esper_migrate.context import Binding, FileContext, Scope
from esper_migrate.derive import Derivation, Failure, Result
from esper_migrate.index import function_info, method_info
from esper_migrate.rule import Example

EXAMPLES = [
    Example(
        before="""\
class FactoredRecurrentActorCritic:
    def get_action(self, state, hidden=None):
        return self.forward(state, hidden)

    def forward(self, state, hidden=None):
        return state
""",
        after="""\
class FactoredRecurrentActorCritic:
    def get_action(self, state, blueprint_indices, hidden=None):
        return self.forward(state, blueprint_indices, hidden)

    def forward(self, state, blueprint_indices, hidden=None):
        return state
""",
    ),
]


def derive(ctx: FileContext, scope: Scope, name: ast.Name, b: Binding, depth: int) -> Result | None:
    fn = scope.function
    if b.kind != "param" or fn is None:
        return None
    new = ctx.spec.parameter.name
    if scope.target is None:
        if b.line != fn.lineno:
            return None  # a parameter of an enclosing function (closure)
        return Failure(
            f"`{name.id}` is a parameter of `{fn.name}`, which is not a target, and no producer "
            "or test shape is in scope",
            f"add `{new}` to `{fn.name}` after `{name.id}` and pass it on",
        )
    storage = ctx.index.storage(scope.cls)
    is_add = storage is not None and fn.name == storage.add_method
    info = method_info(fn) if scope.cls else function_info(fn)  # a function target has no self
    features = ctx.features_param(info, storage_add=is_add, owner=scope.cls or "")
    if name.id != features:
        return None
    return Derivation(
        ctx.spec.parameter.name,
        f"`{name.id}` is the features parameter of the target method `{fn.name}`",
        via_parameter_of=fn,
    )
