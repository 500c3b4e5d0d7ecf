"""Storage classes keep the companion beside the features field: its allocation in ``__init__``
(int64, last dimension the number of slots, padded with the fill value), its store in ``add()``
and its key in the batched output. (``add()``'s new parameter is planned by ``parameters``.)"""

from __future__ import annotations

import ast

from esper_migrate.context import FileContext
from esper_migrate.records import Code, Edit, EditKind, Tier
from esper_migrate.rules import Example

EXAMPLES = [
    Example(
        before="""\
import torch


class TamiyoRolloutBuffer:
    def __init__(self, num_envs, max_steps, state_dim, num_slots, device="cpu"):
        self.states = torch.zeros(num_envs, max_steps, state_dim, device=device)
        self.rewards = torch.zeros(num_envs, max_steps, device=device)

    def add(self, env_id, state, reward):
        self.states[env_id, self.step] = state
        self.rewards[env_id, self.step] = reward

    def get_batched_sequences(self):
        return {
            "states": self.states.to(self.device),
            "rewards": self.rewards,
        }
""",
        after="""\
import torch


class TamiyoRolloutBuffer:
    def __init__(self, num_envs, max_steps, state_dim, num_slots, device="cpu"):
        self.states = torch.zeros(num_envs, max_steps, state_dim, device=device)
        self.blueprint_indices = torch.full((num_envs, max_steps, num_slots), -1, dtype=torch.long, device=device)
        self.rewards = torch.zeros(num_envs, max_steps, device=device)

    def add(self, env_id, state, blueprint_indices: torch.Tensor, reward):
        self.states[env_id, self.step] = state
        self.blueprint_indices[env_id, self.step] = blueprint_indices
        self.rewards[env_id, self.step] = reward

    def get_batched_sequences(self):
        return {
            "states": self.states.to(self.device),
            "blueprint_indices": self.blueprint_indices.to(self.device),
            "rewards": self.rewards,
        }
""",
    ),
    Example(
        before="""\
import torch


class TamiyoRolloutBuffer:
    def __init__(self, num_envs, state_dim):
        self.states = torch.zeros(num_envs, state_dim)
""",
        unresolved="number of slots",
    ),
]


def _is_self_attr(node: ast.AST, attr: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == attr
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _statement_edit(ctx: FileContext, stmt: ast.stmt, text: str, reason: str, how: str) -> Edit:
    return Edit(
        kind=EditKind.STATEMENT,
        path=ctx.path,
        line=stmt.lineno,
        col=ctx.char_col(stmt.lineno, stmt.col_offset),
        code=Code.STORAGE_MISSING_COMPANION,
        tier=Tier.RESOLVED,
        reason=reason,
        derivation=how,
        anchor=ctx.span(stmt),
        text=text,
    )


def run(ctx: FileContext) -> None:
    new = ctx.spec.parameter.name
    for cls in ctx.class_defs:
        storage = ctx.index.storage(cls.name)
        if storage is None:
            continue
        methods = {
            fn.name: fn for fn in cls.body if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assigned = {
            node.attr
            for node in ast.walk(cls)
            if isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        }
        init = methods.get("__init__")
        if init is not None and new not in assigned:
            _plan_allocation(
                ctx,
                cls.name,
                init,
                storage.field,
                storage.num_slots_names,
                storage.fill_value,
                storage.dtype,
                assigned,
            )
        add = methods.get(storage.add_method)
        if add is not None:
            _plan_store(ctx, cls.name, add, storage.field)
        batched = methods.get(storage.batched_method or "")
        if batched is not None:
            _plan_batched(ctx, cls.name, batched, storage.field)


def _plan_allocation(
    ctx: FileContext,
    cls: str,
    init: ast.FunctionDef | ast.AsyncFunctionDef,
    field: str,
    slot_names: list[str],
    fill: int,
    dtype: str,
    assigned: set[str],
) -> None:
    new = ctx.spec.parameter.name
    for stmt in ast.walk(init):
        if not (isinstance(stmt, ast.Assign | ast.AnnAssign) and isinstance(stmt.value, ast.Call)):
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if not any(_is_self_attr(t, field) for t in targets):
            continue
        call = stmt.value
        dims: list[ast.expr] = list(call.args)
        if len(dims) == 1 and isinstance(dims[0], ast.Tuple | ast.List):
            dims = list(dims[0].elts)
        params = {a.arg for a in [*init.args.args, *init.args.kwonlyargs]}
        slots = next((n for n in slot_names if n in params), None)
        if slots is None:
            slots = next((f"self.{n}" for n in slot_names if n in assigned), None)
        if slots is None or not dims or any(isinstance(d, ast.Starred) for d in dims):
            why = "the number of slots is not visible" if slots is None else "its shape is unclear"
            ctx.report(
                stmt,
                Code.STORAGE_MISSING_COMPANION,
                Tier.RESOLVED,
                f"`{cls}.{field}` is allocated but {why}",
                f"allocate `self.{new} = torch.full((..., num_slots), {fill}, "
                f"dtype={dtype})` beside it",
            )
            return
        module = (ctx.dotted(call.func) or "torch").rpartition(".")[0] or "torch"
        shape = ", ".join([*(ctx.text(d) for d in dims[:-1]), slots])
        device = next((ctx.text(k.value) for k in call.keywords if k.arg == "device"), None)
        text = (
            f"self.{new} = {module}.full(({shape}), {fill}, dtype={dtype}"
            + (f", device={device}" if device is not None else "")
            + ")"
        )
        ctx.add_edit(
            _statement_edit(
                ctx,
                stmt,
                text,
                f"`{cls}` stores `{field}` without `{new}`",
                f"shape of `self.{field}` with the last dim `{slots}`",
            )
        )
        return


def _plan_store(
    ctx: FileContext, cls: str, add: ast.FunctionDef | ast.AsyncFunctionDef, field: str
) -> None:
    new = ctx.spec.parameter.name
    stores = [
        stmt
        for stmt in ast.walk(add)
        if isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Subscript)
    ]
    if any(_is_self_attr(s.targets[0].value, new) for s in stores):  # type: ignore[attr-defined]
        return
    for stmt in stores:
        target = stmt.targets[0]
        assert isinstance(target, ast.Subscript)
        if _is_self_attr(target.value, field):
            text = f"self.{new}[{ctx.text(target.slice)}] = {new}"
            ctx.add_edit(
                _statement_edit(
                    ctx,
                    stmt,
                    text,
                    f"`{cls}.add` stores `{field}` only",
                    "same index as the features store",
                )
            )
            return


def _plan_batched(
    ctx: FileContext, cls: str, fn: ast.FunctionDef | ast.AsyncFunctionDef, field: str
) -> None:
    from esper_migrate.rules.derive_lookup import _quote

    new = ctx.spec.parameter.name
    for node in ast.walk(fn):
        if not isinstance(node, ast.Dict):
            continue
        keys = [k.value if isinstance(k, ast.Constant) else None for k in node.keys]
        if field not in keys or new in keys:
            continue
        i = keys.index(field)
        key_node, value = node.keys[i], node.values[i]
        assert key_node is not None
        uses = [n for n in ast.walk(value) if _is_self_attr(n, field)]
        if len(uses) != 1:
            ctx.report(
                node,
                Code.STORAGE_MISSING_COMPANION,
                Tier.RESOLVED,
                f"`{cls}.{fn.name}` returns `{field}` through an expression "
                "the field cannot be swapped in",
                f"add `{_quote(ctx.text(key_node), new)}: <same expression over self.{new}>`",
            )
            continue
        ctx.add_edit(
            Edit(
                kind=EditKind.DICT_ENTRY,
                path=ctx.path,
                line=node.lineno,
                col=ctx.char_col(node.lineno, node.col_offset),
                code=Code.STORAGE_MISSING_COMPANION,
                tier=Tier.RESOLVED,
                reason=f"`{cls}.{fn.name}` returns `{field}` without `{new}`",
                derivation=f"the `{field}` entry with the field swapped",
                anchor=ctx.span(node),
                text=ctx.splice(value, uses[0], f"self.{new}"),
                after=ctx.text(key_node),
                extra=_quote(ctx.text(key_node), new),
            )
        )
