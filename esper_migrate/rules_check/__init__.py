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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from esper_migrate.records import Finding

if TYPE_CHECKING:
    from esper_migrate.engine import FilePlan
    from esper_migrate.index import ClassInfo, Index
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
    engine_findings: tuple[Finding, ...]
    #: The engine's plan for this file: its edits and the calls it resolved to targets.
    plan: FilePlan


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


_T = TypeVar("_T")
_MEMO: dict[str, tuple[object, object]] = {}


def per_index(index: Index, name: str, compute: Callable[[], _T]) -> _T:
    """``compute()`` once per repository index (the rules run once per file, the
    repository-wide parts of their work once per run)."""
    hit = _MEMO.get(name)
    if hit is not None and hit[0] is index:
        return hit[1]  # type: ignore[return-value]
    value = compute()
    _MEMO[name] = (index, value)
    return value


def classes_in(index: Index, path: str) -> list[ClassInfo]:
    """The indexed classes defined in the file at ``path``."""

    def build() -> dict[str, list[ClassInfo]]:
        table: dict[str, list[ClassInfo]] = {}
        for infos in index.classes.values():
            for info in infos:
                table.setdefault(info["path"], []).append(info)
        return table

    return per_index(index, "classes_in", build).get(path, [])


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
