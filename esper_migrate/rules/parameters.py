"""Target definitions gain the parameter right after the features parameter, and the docstring's
``Args:`` section gains its line right after the features entry.

Targets: the spec's classes and protocols, their subclasses, and every class with a method of the
same name and a compatible signature (structural implementers a hand migration forgets).
"""

from __future__ import annotations

import ast
import re

from esper_migrate.context import FileContext
from esper_migrate.index import _params
from esper_migrate.records import Code, Edit, EditKind, Tier
from esper_migrate.rules import Example

EXAMPLES = [
    Example(
        before='''\
from typing import Protocol

import torch


class PolicyBundle(Protocol):
    def get_value(self, features: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Value of the state.

        Args:
            features: Observation features, [batch, obs_dim].
            hidden: LSTM state.
        """
        ...


class HeuristicBundle:
    def get_value(
        self,
        obs: torch.Tensor,
        hidden: torch.Tensor,
    ) -> torch.Tensor:
        return obs.sum(-1)


class Unrelated:
    def get_value(self, key):
        return key
''',
        after='''\
from typing import Protocol

import torch


class PolicyBundle(Protocol):
    def get_value(self, features: torch.Tensor, blueprint_indices: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Value of the state.

        Args:
            features: Observation features, [batch, obs_dim].
            blueprint_indices: Blueprint index per slot (int64, [..., num_slots]); -1 marks an empty slot.
            hidden: LSTM state.
        """
        ...


class HeuristicBundle:
    def get_value(
        self,
        obs: torch.Tensor,
        blueprint_indices: torch.Tensor,
        hidden: torch.Tensor,
    ) -> torch.Tensor:
        return obs.sum(-1)


class Unrelated:
    def get_value(self, key):
        return key
''',
    ),
    Example(
        before="""\
class FactoredRecurrentActorCritic:
    def forward(self, *args, **kwargs):
        return args
""",
        unresolved="no features parameter",
    ),
]

_ENTRY = re.compile(r"^(?P<indent>[ \t]*)(?P<name>\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(\(.*\))?\s*:")


def updated_docstring(literal: str, features: str, new: str, doc: str) -> str | None:
    """The docstring literal with ``new``'s entry after ``features``' in ``Args:``; None if no
    such section or entry (or the entry is there already)."""
    lines = literal.split("\n")
    args_at = next((i for i, ln in enumerate(lines) if ln.strip() in ("Args:", "Arguments:")), None)
    if args_at is None:
        return None
    section_indent = len(lines[args_at]) - len(lines[args_at].lstrip())
    entry_at: int | None = None
    entry_indent = ""
    for i in range(args_at + 1, len(lines)):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip()) <= section_indent:
            break
        m = _ENTRY.match(line)
        if m and m.group("name") == new:
            return None
        if m and m.group("name") == features and entry_at is None:
            entry_at, entry_indent = i, m.group("indent")
    if entry_at is None:
        return None
    end = entry_at + 1
    while end < len(lines):
        line = lines[end]
        if not line.strip() or len(line) - len(line.lstrip()) <= len(entry_indent):
            break
        end += 1
    lines.insert(end, f"{entry_indent}{new}: {doc}")
    return "\n".join(lines)


def run(ctx: FileContext) -> None:
    spec = ctx.spec
    new = spec.parameter.name
    for cls in ctx.class_defs:
        storage = ctx.index.storage(cls.name)
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            target = ctx.index.is_target(cls.name, fn.name)
            if target is None:
                continue
            params = _params(fn, is_method=True)
            if any(p["name"] == new for p in params):
                continue
            is_add = storage is not None and fn.name == storage.add_method
            info = {
                "name": fn.name,
                "line": fn.lineno,
                "params": params,
                "returns_call": None,
                "returns_unpacked_call": None,
            }
            features = ctx.features_param(info, storage_add=is_add)  # type: ignore[arg-type]
            tier = Tier.RESOLVED
            where = f"`{cls.name}.{fn.name}`"
            if features is None:
                ctx.report(
                    fn,
                    Code.MISSING_PARAMETER,
                    tier,
                    f"{where} has no features parameter to place `{new}` after",
                    f"add `{new}` to the signature by hand",
                )
                continue
            names = [p["name"] for p in params]
            before = params[: names.index(features) + 1]
            if spec.parameter.default is None and any(
                p["has_default"] and p["kind"] in ("pos", "posonly") for p in before
            ):
                ctx.report(
                    fn,
                    Code.MISSING_PARAMETER,
                    tier,
                    f"{where}: `{features}` has a default, a required `{new}` cannot follow",
                    f"add `{new}` with a default after `{features}`",
                )
                continue
            annotation = spec.parameter.annotation
            if annotation is not None:
                # Annotate only where the annotation's module is imported (else a NameError).
                root = annotation.split(".")[0].split("[")[0]
                bound = ctx.module_scope.bindings.get(root, [])
                if not any(b.kind in ("import", "other", "assign") for b in bound):
                    annotation = None
            why = {
                "spec": "named in the spec",
                "subclass": f"subclass of `{target.origin}`",
                "structural": f"implements `{target.origin}.{fn.name}` (same signature)",
                "storage": "storage `add` keeps the features",
            }[target.how]
            line = fn.lineno
            ctx.add_edit(
                Edit(
                    kind=EditKind.PARAMETER,
                    path=ctx.path,
                    line=line,
                    col=ctx.char_col(line, fn.col_offset),
                    code=Code.MISSING_PARAMETER,
                    tier=tier,
                    reason=f"{where} lacks `{new}` ({why})",
                    derivation=f"after the features parameter `{features}`",
                    anchor=ctx.span(fn),
                    text=new,
                    after=features,
                    extra=annotation,
                )
            )
            _plan_docstring(ctx, fn, features, where)


def _plan_docstring(
    ctx: FileContext, fn: ast.FunctionDef | ast.AsyncFunctionDef, features: str, where: str
) -> None:
    doc = ctx.spec.parameter.docstring
    if doc is None or not fn.body:
        return
    first = fn.body[0]
    if not (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return
    literal = ctx.text(first.value)
    updated = updated_docstring(literal, features, ctx.spec.parameter.name, doc)
    if updated is None:
        return
    ctx.add_edit(
        Edit(
            kind=EditKind.DOCSTRING,
            path=ctx.path,
            line=first.lineno,
            col=ctx.char_col(first.lineno, first.col_offset),
            code=Code.MISSING_PARAMETER,
            tier=Tier.RESOLVED,
            reason=f"docstring of {where} documents `{features}`",
            derivation="entry added after the features entry",
            anchor=ctx.span(first.value),
            text=updated,
        )
    )
