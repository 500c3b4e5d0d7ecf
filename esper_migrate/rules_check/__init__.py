"""Check-only rules (EM003-EM006): what `check` reports beyond the engine's EM001/EM002.

Each rule is one module with ``CODE``, ``FLAGGED`` and ``NOT_FLAGGED`` examples beside its
logic, and ``check(ctx) -> list[Finding]``. In a flagged example every line that must be
reported carries ``# flagged`` (as in the fixture's ``# planted: EM00N``); a not-flagged example
must produce no finding of the rule's code. One generic test runs them all through the whole
`check` pipeline.

The rules read the file's stdlib ``ast`` (parsed once by `check`), the repository index and the
engine's findings for the same file; they never parse and never import torch.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from esper_migrate.records import Finding

if TYPE_CHECKING:
    from esper_migrate.index import Index
    from esper_migrate.spec import MigrationSpec


@dataclass(frozen=True)
class CheckContext:
    """One file, as the check rules see it."""

    path: str
    source: str
    tree: ast.Module
    spec: MigrationSpec
    index: Index
    #: EM001/EM002 findings the engine reported for this file.
    engine_findings: tuple[Finding, ...] = ()


#: The rule modules, in code order.
RULE_NAMES = (
    "signature_drift",
    "positional_slide",
    "storage_missing_companion",
    "companion_unused",
)


def rule_modules() -> tuple[ModuleType, ...]:
    return tuple(importlib.import_module(f"{__name__}.{name}") for name in RULE_NAMES)


def run_rules(ctx: CheckContext) -> list[Finding]:
    found: list[Finding] = []
    for module in rule_modules():
        found.extend(module.check(ctx))
    return found


def walk_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` except those inside nested functions, classes and lambdas."""
    stack: list[ast.AST] = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        yield child
        if not isinstance(
            child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
        ):
            stack.extend(ast.iter_child_nodes(child))


def self_attribute(node: ast.expr) -> str | None:
    """``self.<name>`` -> name."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    ):
        return node.attr
    return None
