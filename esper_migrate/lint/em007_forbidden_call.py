"""EM007 forbidden-call: a call the spec restricts, outside the files and functions it allows."""

from __future__ import annotations

import ast
from fnmatch import fnmatchcase
from pathlib import PurePath

from esper_migrate.lint import CheckContext
from esper_migrate.records import Code, Finding, Tier
from esper_migrate.rule import Example, Expected, LintRule
from esper_migrate.spec import ForbiddenCallSpec

_BUNDLE = """\
class LSTMPolicyBundle:
    def get_value(self, features, blueprint_indices, hidden=None): ...


"""


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner is not None else f"?.{node.attr}"
    return None


def matches_callee(rule: ForbiddenCallSpec, func: ast.expr) -> bool:
    """``get_value`` matches any call whose callee ends in ``.get_value`` (or is the bare
    name); a dotted ``net.get_value`` matches that suffix."""
    dotted = _dotted(func)
    if dotted is None:
        return False
    parts, want = dotted.split("."), rule.callee.split(".")
    return parts[-len(want) :] == want


def allowed_path(rule: ForbiddenCallSpec, path: str) -> bool:
    posix = PurePath(path).as_posix()
    while posix.startswith("./"):
        posix = posix[2:]
    return any(fnmatchcase(posix, pattern) for pattern in rule.allowed_in)


class _Calls(ast.NodeVisitor):
    def __init__(self, rules: list[ForbiddenCallSpec]) -> None:
        self.rules = rules
        self.functions: list[str] = []
        self.hits: list[tuple[ast.Call, ForbiddenCallSpec]] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_Call(self, node: ast.Call) -> None:
        for rule in self.rules:
            if matches_callee(rule, node.func) and not any(
                fnmatchcase(fn, pattern)
                for fn in self.functions
                for pattern in rule.allowed_functions
            ):
                self.hits.append((node, rule))
                break
        self.generic_visit(node)


class ForbiddenCall(LintRule):
    CODE = Code.FORBIDDEN_CALL
    NAME = "forbidden-call"
    SUMMARY = "A call the spec restricts appears where it is not allowed."
    DOC = """
## What it does
Finds calls named in the spec's `[[forbidden_calls]]` (by callee name or dotted suffix)
outside the files matched by `allowed_in` (path globs) and outside functions matched by
`allowed_functions` (name globs over every enclosing function). The built-in Phase 4 spec
forbids `get_value` outside tests and debugging code.

## Why is this bad?
Some APIs exist for one purpose only. The Phase 4 audit marks `get_value()` "DEBUG ONLY -
NOT FOR TRAINING": training takes the value from `get_action()`, which is op-conditioned on
the sampled op; a separate `get_value()` in the training loop evaluates a different op.

## Example
```python
def bootstrap(bundle, features, blueprint_indices):
    return bundle.get_value(features, blueprint_indices)
```

Use instead:
```python
def bootstrap(bundle, features, blueprint_indices, masks, hidden):
    return bundle.get_action(features, blueprint_indices, masks, hidden).value
```

## Fix
By hand, as the reason says: the tool cannot know what the call should become.

## Fix safety
Not applicable (no automatic fix).
"""
    EXAMPLES = (
        Example(
            before=_BUNDLE
            + "def bootstrap(bundle: LSTMPolicyBundle, features, blueprint_indices):\n"
            + "    return bundle.get_value(features, blueprint_indices)\n",
            findings=(Expected(6, "EM007", reason="DEBUG ONLY"),),
        ),
        Example(
            before=_BUNDLE
            + "def value_probe(bundle: LSTMPolicyBundle, features, blueprint_indices):\n"
            + '    """V(s) for a plot."""\n'
            + "    return bundle.get_value(features, blueprint_indices)\n",
            findings=(),
        ),
    )

    def lint(self, ctx: CheckContext) -> list[Finding]:
        rules = [r for r in ctx.spec.forbidden_calls if not allowed_path(r, ctx.path)]
        if not rules:
            return []
        visitor = _Calls(rules)
        visitor.visit(ctx.tree)
        return [
            Finding(
                path=ctx.path,
                line=node.lineno,
                col=node.col_offset + 1,
                code=self.CODE,
                message=f"call to `{rule.callee}` is forbidden here",
                tier=Tier.RESOLVED,
                unfixable_reason=rule.reason,
            )
            for node, rule in visitor.hits
        ]
