"""Derivation: a shape-normalising reassignment of the features is mirrored on the companion.

``features = features.unsqueeze(1)`` (or ``view``/``reshape``/``flatten``/``expand`` or a
``[:, None]`` subscript) changes the leading dimensions; the companion must follow, under the
same guard, or the two disagree in rank. The mirror is a statement inserted right after the
reassignment (so inside the same ``if``): ``blueprint_indices = blueprint_indices.unsqueeze(1)``.
An operation that fixes the last dimension (``view(B, T, obs_dim)``) cannot be mirrored: the
companion's last dimension is the number of slots. It is reported, never guessed.
"""

from __future__ import annotations

import ast

from esper_migrate.context import Binding, FileContext, Scope
from esper_migrate.derive import Derivation, Failure, Result, companion_statement
from esper_migrate.derive import derive as derive_expr
from esper_migrate.rule import Example

#: Tensor methods that reshape the leading dimensions and keep the values.
SHAPE_METHODS = frozenset({"unsqueeze", "view", "reshape", "flatten", "expand"})

_NET = """\
class FactoredRecurrentActorCritic:
    def forward(self, features, {new}hidden=None):
        return features

    def get_action(self, features, {new}hidden=None):
        if features.dim() == 2:
            features = features.unsqueeze(1)
{mirror}        return self.forward(features, {arg}hidden)
"""

EXAMPLES = [
    Example(
        before=_NET.format(new="", mirror="", arg=""),
        after=_NET.format(
            new="blueprint_indices, ",
            mirror="            blueprint_indices = blueprint_indices.unsqueeze(1)\n",
            arg="blueprint_indices, ",
        ),
    ),
    Example(
        before="""\
class FactoredRecurrentActorCritic:
    def forward(self, features, hidden=None):
        return features

    def get_action(self, features, hidden=None):
        features = features.view(-1, 1, 114)
        return self.forward(features, hidden)
""",
        after="""\
class FactoredRecurrentActorCritic:
    def forward(self, features, blueprint_indices, hidden=None):
        return features

    def get_action(self, features, hidden=None):
        features = features.view(-1, 1, 114)
        return self.forward(features, hidden)
""",
        unresolved="fixes the last dimension",
    ),
]


def _last_is_free(args: list[ast.expr]) -> bool:
    """Whether a view/reshape/expand shape leaves the last dimension to the tensor (-1)."""
    if len(args) == 1 and isinstance(args[0], ast.Tuple | ast.List):
        args = list(args[0].elts)
    if not args:
        return False
    last = args[-1]
    return (
        isinstance(last, ast.UnaryOp)
        and isinstance(last.op, ast.USub)
        and isinstance(last.operand, ast.Constant)
        and last.operand.value == 1
    )


def _leading_only(call: ast.Call) -> bool:
    """``flatten(a, b)`` with an explicit end before the last dimension."""
    args = [*call.args, *(k.value for k in call.keywords if k.arg in ("start_dim", "end_dim"))]
    if len(args) < 2:
        return False
    end = args[1]
    return isinstance(end, ast.Constant) and isinstance(end.value, int) and end.value >= 0


def mirrorable(value: ast.expr) -> tuple[ast.expr, str | None] | None:
    """(the reshaped tensor, why it cannot be mirrored or None), or None if not a reshape."""
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
        method = value.func.attr
        if method not in SHAPE_METHODS:
            return None
        receiver = value.func.value
        if method in ("view", "reshape", "expand") and not _last_is_free(value.args):
            return receiver, f"`{method}` fixes the last dimension of the features"
        if method == "flatten" and not _leading_only(value):
            return receiver, "`flatten` reaches the last dimension of the features"
        return receiver, None
    if isinstance(value, ast.Subscript):
        parts = value.slice.elts if isinstance(value.slice, ast.Tuple) else [value.slice]
        if any(isinstance(p, ast.Constant) and p.value is None for p in parts) and all(
            (isinstance(p, ast.Constant) and p.value is None)
            or (isinstance(p, ast.Slice) and p.lower is None and p.upper is None)
            for p in parts
        ):
            return value.value, None
    return None


def derive(ctx: FileContext, scope: Scope, name: ast.Name, b: Binding, depth: int) -> Result | None:
    if b.kind != "assign" or b.value is None or not isinstance(b.stmt, ast.Assign):
        return None
    found = mirrorable(b.value)
    if found is None:
        return None
    receiver, problem = found
    result = derive_expr(ctx, scope, receiver, depth + 1)
    if not isinstance(result, Derivation):
        return result
    if problem is not None:
        return Failure(
            f"{problem}; the companion's last dimension is the number of slots",
            f"reshape `{result.text}` by hand to match `{name.id}` on the leading dimensions",
        )
    in_place = isinstance(receiver, ast.Name) and receiver.id == name.id
    return companion_statement(
        ctx,
        scope,
        b,
        ctx.splice(b.value, receiver, result.text),
        f"the reshape of `{name.id}` (line {b.line}) mirrored on its companion",
        "mirror the reshape",
        name=result.text if in_place and result.text.isidentifier() else None,
        base=result,
    )
