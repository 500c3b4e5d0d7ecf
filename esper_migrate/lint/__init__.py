"""Check-only rules: what ``check`` reports beyond the units ``apply`` plans.

Each rule is a :class:`esper_migrate.rule.Rule` with ``PLANS = False`` in one module of this
package; ``lint(ctx)`` reads the file's stdlib ``ast`` (parsed once by ``check``), the
repository index, the engine's plan for the file and the findings so far. They never parse and
never import torch.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
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
    #: The engine's plan for this file: its units.
    plan: FilePlan
    #: The findings of the rules run before (the plan's, then the earlier lint rules'), before
    #: suppression comments are applied.
    findings: tuple[Finding, ...] = ()


def run_rules(ctx: CheckContext) -> list[Finding]:
    """Every lint rule over one file, in code order; each sees the findings before it."""
    from dataclasses import replace

    from esper_migrate.rule import lint_rules

    found: list[Finding] = []
    for rule in lint_rules():
        found.extend(rule.lint(replace(ctx, findings=(*ctx.findings, *found))))
    return found


_T = TypeVar("_T")


def per_index(index: Index, name: str, compute: Callable[[], _T]) -> _T:
    """``compute()`` once per repository index (the rules run once per file, the
    repository-wide parts of their work once per run), memoised on the index itself."""
    if name not in index.memo:
        index.memo[name] = compute()
    return index.memo[name]  # type: ignore[return-value]


def classes_in(index: Index, path: str) -> list[ClassInfo]:
    """The indexed classes defined in the file at ``path``."""

    def build() -> dict[str, list[ClassInfo]]:
        table: dict[str, list[ClassInfo]] = {}
        for infos in index.classes.values():
            for info in infos:
                table.setdefault(info["path"], []).append(info)
        return table

    return per_index(index, "classes_in", build).get(path, [])


def self_attribute(node: ast.expr) -> str | None:
    """``self.<name>`` -> name."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    ):
        return node.attr
    return None
