"""EM002 missing-parameter: a target definition lacks the new parameter.

It gains the parameter where the spec's placement puts it (for the Phase 4 spec right after the
features parameter), and the docstring's ``Args:`` section its line beside its neighbour's; the
calls inside it that pass the features on join the same unit (the engine folds them in). Targets: the spec's classes and protocols, their
subclasses, and every class with a method of the same name and a compatible signature
(structural implementers a hand migration forgets). Storage ``add()`` methods are EM005's.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import replace

from esper_migrate.context import FileContext
from esper_migrate.index import function_info, method_info
from esper_migrate.insertion import Insertion
from esper_migrate.records import Code, Edit, EditKind, Tier
from esper_migrate.rule import Example, Expected, Rule, edited

_PROTOCOL = '''\
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
'''

_STALE_PROTOCOL = """\
from typing import Protocol


class PolicyBundle(Protocol):
    def get_action(self, states, masks, hidden=None): ...


def act(policy: PolicyBundle, signals, masks):
    states, bp = batch_obs_to_features(signals)
    return policy.get_action(states, bp, masks)
"""

EXAMPLES = (
    Example(
        before=_PROTOCOL,
        after=edited(
            _PROTOCOL,
            (
                "features: torch.Tensor, hidden",
                "features: torch.Tensor, blueprint_indices: torch.Tensor, hidden",
            ),
            (
                "[batch, obs_dim].\n",
                "[batch, obs_dim].\n            blueprint_indices: Blueprint index per slot "
                "(int64, [..., num_slots]); -1 marks an empty slot.\n",
            ),
            (
                "obs: torch.Tensor,\n",
                "obs: torch.Tensor,\n        blueprint_indices: torch.Tensor,\n",
            ),
        ),
        findings=(
            Expected(
                7,
                "EM002",
                fix="insert parameter `blueprint_indices: torch.Tensor` after `features`; "
                "document it in the docstring's `Args:`",
            ),
            Expected(
                18, "EM002", fix="insert parameter `blueprint_indices: torch.Tensor` after `obs`"
            ),
        ),
    ),
    Example(
        before="""\
class FactoredRecurrentActorCritic:
    def forward(self, *args, **kwargs):
        return args
""",
        unresolved="no features parameter",
    ),
    Example(
        # The call passes the companion positionally already (it binds the migrated signature
        # by data flow): the finding is the protocol's, never the correct call's.
        before=_STALE_PROTOCOL,
        after=edited(
            _STALE_PROTOCOL, ("(self, states, masks", "(self, states, blueprint_indices, masks")
        ),
        findings=(Expected(5, "EM002", fix="insert parameter `blueprint_indices` after `states`"),),
    ),
)

_ENTRY = re.compile(r"^(?P<indent>[ \t]*)(?P<name>\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(\(.*\))?\s*:")


def updated_docstring(
    literal: str, features: str | None, new: str, doc: str, before: str | None = None
) -> str | None:
    """The docstring literal with ``new``'s entry after ``features``' in ``Args:`` (or, with
    ``features`` None, right before ``before``'s); None if no such section or entry (or the
    entry is there already)."""
    lines = literal.split("\n")
    args_at = next((i for i, ln in enumerate(lines) if ln.strip() in ("Args:", "Arguments:")), None)
    if args_at is None:
        return None
    section_indent = len(lines[args_at]) - len(lines[args_at].lstrip())
    entry_at: int | None = None
    entry_indent = ""
    wanted = features if features is not None else before
    for i in range(args_at + 1, len(lines)):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip()) <= section_indent:
            break
        m = _ENTRY.match(line)
        if m and m.group("name") == new:
            return None
        if m and m.group("name") == wanted and entry_at is None:
            entry_at, entry_indent = i, m.group("indent")
    if entry_at is None:
        return None
    if features is None:
        lines.insert(entry_at, f"{entry_indent}{new}: {doc}")
        return "\n".join(lines)
    end = entry_at + 1
    while end < len(lines):
        line = lines[end]
        if not line.strip() or len(line) - len(line.lstrip()) <= len(entry_indent):
            break
        end += 1
    lines.insert(end, f"{entry_indent}{new}: {doc}")
    return "\n".join(lines)


class MissingParameter(Rule):
    CODE = Code.MISSING_PARAMETER
    NAME = "missing-parameter"
    SUMMARY = "A target definition or protocol member lacks the new parameter."
    DOC = """
## What it does
Finds the definitions that must take the new parameter: the spec's target methods, those of
subclasses and of structural implementers of a target protocol, that lack it.

## Why is this bad?
Callers pass the new argument; this definition cannot accept it (`TypeError`), or, for a
protocol member, type checkers and readers are told the old signature.

## Example
```python
class HeuristicBundle:
    def get_value(self, obs, hidden=None): ...
```

Use instead:
```python
class HeuristicBundle:
    def get_value(self, obs, blueprint_indices: torch.Tensor, hidden=None): ...
```

## Fix
The parameter goes where the spec's `placement` puts it (right after `after`, right before
`before`, first or last, or keyword-only after `*`, else after the parameter at `index`: for
the Phase 4 spec, the features), with its `default` verbatim and its
annotation where every name it uses is bound (a builtin, an import, or one the spec's `imports`
adds), its `Args:` entry right after the anchor's entry (before the next one's when it goes first), and every call inside the
method that passes the features on gets the parameter, all as one unit: if one of those calls
cannot be planned, nothing of the unit is, and the definition is reported with the reason.

## Fix safety
Safe for positional callers that `apply` migrates in the same run; code outside the tree that
calls the method must be migrated too.
"""
    EXAMPLES = EXAMPLES

    def plan(self, ctx: FileContext) -> None:
        functions = [
            ("", fn)
            for fn in ctx.tree.body
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            and fn.name in ctx.spec.target_functions
        ]
        methods = [
            (cls.name, fn)
            for cls in ctx.class_defs
            for fn in cls.body
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        storages = {cls.name: ctx.index.storage(cls.name) for cls in ctx.class_defs}
        for cls_name, fn in [*functions, *methods]:
            storage = storages.get(cls_name)
            target = ctx.index.is_target(cls_name, fn.name)
            if target is None or (storage is not None and fn.name == storage.add_method):
                continue
            edits = parameter_edits(ctx, cls_name, fn, target.how, target.origin)
            if edits is None:
                continue
            defs: dict[int, int] = ctx.shared.setdefault("def_units", {})  # type: ignore[assignment]
            defs[id(fn)] = len(ctx.units)
            if isinstance(edits, tuple):
                message, reason, suggestion = edits
                ctx.units.append(
                    ctx.unit(fn, self.CODE, Tier.RESOLVED, message, (), reason, suggestion)
                )
            else:
                ctx.units.append(ctx.unit(fn, self.CODE, Tier.RESOLVED, edits[0].reason, edits))


def parameter_edits(
    ctx: FileContext,
    cls: str,
    fn: ast.FunctionDef | ast.AsyncFunctionDef,
    how: str,
    origin: str,
    features: str | None = None,
) -> list[Edit] | tuple[str, str, str] | None:
    """The parameter (and docstring) edits for ``fn``; (message, reason, suggestion) when it
    cannot take the parameter; None when it has it already."""
    spec = ctx.spec
    new = spec.parameter.name
    info = method_info(fn) if cls else function_info(fn)
    params = info["params"]
    if any(p["name"] == new for p in params):
        return None
    where = f"`{cls}.{fn.name}`" if cls else f"`{fn.name}`"
    message = f"{where} lacks `{new}`"
    at = ctx.insertion(info, storage_add=features is not None, owner=cls)
    if at is None:
        return (
            message,
            "it has no features parameter to place it after",
            f"add `{new}` to the signature by hand",
        )
    problem = ctx.placement_problem(params, at)
    if problem is not None:
        return (message, *problem)
    default = spec.parameter.default
    annotation, imports, unannotated = _annotation(ctx, spec.parameter.annotation)
    why = {
        "spec": "named in the spec",
        "subclass": f"subclass of `{origin}`",
        "structural": f"implements `{origin}.{fn.name}` (same signature)",
        "storage": "storage `add` keeps the features",
    }[how]
    after = at.after
    if after is None and not at.keyword_only:
        # First after ``self``/``cls``: the rewriter sees them, the index does not.
        full = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
        positional = [p for p in params if p["kind"] in ("pos", "posonly")]
        after = full[0] if len(full) > len(positional) else None
    if at.keyword_only:
        placed = f"keyword-only, after `{at.after}`" if at.after else "first keyword-only"
    elif at.after is not None:
        placed = f"after `{at.after}`"
    else:
        placed = "first"
    edits = [
        ctx.edit(
            EditKind.PARAMETER,
            fn,
            new,
            f"{message} ({why})",
            f"after the features parameter `{at.after}`"
            if at.after is not None and not at.keyword_only
            else f"placed {placed}",
            code=Code.MISSING_PARAMETER,
            after=after,
            first=after is None,
            keyword_only=at.keyword_only,
            extra=annotation,
            default=default,
        )
    ]
    if spec.parameter.store_on_self and fn.name == "__init__":
        store = _store_edit(ctx, fn, new, where)
        if isinstance(store, str):
            return (message, store, f"add `{new}` to {where} and `self.{new} = {new}` by hand")
        edits.append(store)
    if unannotated:
        # Said in the derivation: the parameter is written, its annotation cannot be.
        edits[0] = replace(edits[0], derivation=f"{edits[0].derivation}; {unannotated}")
    edits.extend(imports)
    doc = _docstring_edit(ctx, fn, at, where)
    if doc is not None:
        edits.append(doc)
    return edits


#: Names an annotation may use without an import.
_BUILTIN_NAMES = frozenset(dir(builtins)) | {"None"}


def _annotation(ctx: FileContext, annotation: str | None) -> tuple[str | None, list[Edit], str]:
    """(annotation to write, import edits it needs, why it is left out ("" if it is not)).

    Every name the annotation uses must be bound in the module: a builtin (``dict``), an
    existing import or assignment, or a name the spec's ``imports`` table gives an import
    for (added once per file after the module's last top-level import). Otherwise the
    parameter is written without it (a NameError, or an F821 under ``from __future__``)."""
    if annotation is None:
        return None, [], ""
    expr = ast.parse(annotation, mode="eval").body
    roots = sorted({n.id for n in ast.walk(expr) if isinstance(n, ast.Name)} - _BUILTIN_NAMES)
    missing = [
        r
        for r in roots
        if not any(
            b.kind in ("import", "other", "assign") for b in ctx.module_scope.bindings.get(r, [])
        )
    ]
    if not missing:
        return annotation, [], ""
    given = ctx.spec.parameter.imports
    lacking = [m for m in missing if m not in given]
    anchor = _last_import(ctx.tree)
    if lacking or anchor is None:
        why = (
            f"`{'`, `'.join(lacking)}` not imported here and the spec's `imports` gives none"
            if lacking
            else "the module has no top-level import to add one after"
        )
        return None, [], f"annotation `{annotation}` left out: {why}"
    edits = [
        ctx.edit(
            EditKind.STATEMENT,
            anchor,
            given[m],
            f"the annotation `{annotation}` needs `{m}`",
            "import from the spec's `imports` table",
            code=Code.MISSING_PARAMETER,
        )
        for m in missing
        if ctx.once("annotation-import", m)
    ]
    return annotation, edits, ""


def _store_edit(
    ctx: FileContext, fn: ast.FunctionDef | ast.AsyncFunctionDef, new: str, where: str
) -> Edit | str:
    """``self.<new> = <new>`` after the constructor's last top-level simple statement (before
    a final ``return``); the reason when there is none to place it after."""
    simple = (ast.Expr, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Pass, ast.Assert)
    body = [s for s in fn.body if not isinstance(s, ast.Return)]
    if not body or not isinstance(body[-1], simple):
        return f"{where} does not end in a simple statement to store `{new}` after"
    return ctx.edit(
        EditKind.STATEMENT,
        body[-1],
        f"self.{new} = {new}",
        f"{where} stores `{new}` (store_on_self)",
        "stored on self after the constructor's last statement",
        code=Code.MISSING_PARAMETER,
    )


def _last_import(tree: ast.Module) -> ast.stmt | None:
    imports = [s for s in tree.body if isinstance(s, ast.Import | ast.ImportFrom)]
    return imports[-1] if imports else None


def _docstring_edit(
    ctx: FileContext, fn: ast.FunctionDef | ast.AsyncFunctionDef, at: Insertion, where: str
) -> Edit | None:
    """The ``Args:`` entry, where the parameter goes: after the entry of the parameter it
    follows (a keyword-only one first among them: after the last entry before its group),
    else before the entry of the one it precedes."""
    doc = ctx.spec.parameter.docstring
    if doc is None or not fn.body:
        return None
    first = fn.body[0]
    if not (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return None
    follows, precedes = at.after, at.before
    if at.keyword_only and follows is None:
        a = fn.args
        ahead = [x.arg for x in [*a.posonlyargs, *a.args]] + ([a.vararg.arg] if a.vararg else [])
        follows = ahead[-1] if ahead else None
    updated = updated_docstring(
        ctx.text(first.value), follows, ctx.spec.parameter.name, doc, before=precedes
    )
    if updated is None:
        return None
    documented = follows or precedes
    return ctx.edit(
        EditKind.DOCSTRING,
        first.value,
        updated,
        f"docstring of {where} documents `{documented}`",
        "entry added after the features entry" if follows else f"entry added before `{precedes}`'s",
        code=Code.MISSING_PARAMETER,
    )
