"""EM005 storage-missing-companion: a storage class keeps the features without their companion.

For each storage class of the spec (and its subclasses) four places travel together: the
field's allocation in ``__init__`` (or its class-level annotation), the ``add()`` parameter,
the store in ``add()``, and the key of the batched output. Each place that has the features
but not the companion is one finding, on the features' line there.
"""

from __future__ import annotations

import ast

from esper_migrate.records import Code, Finding, Tier
from esper_migrate.rules_check import (
    CheckContext,
    classes_in,
    per_index,
    self_attribute,
    walk_scope,
)
from esper_migrate.spec import StorageSpec

CODE = Code.STORAGE_MISSING_COMPANION

FLAGGED = [
    """
import torch

class TamiyoRolloutBuffer:
    def __init__(self, num_envs, max_steps, obs_dim, num_slots, device):
        self.states = torch.zeros((num_envs, max_steps, obs_dim), device=device)  # flagged
        self.step = torch.zeros(num_envs, dtype=torch.long)

    def add(self, env, state, action):  # flagged
        t = self.step[env]
        self.states[env, t] = state  # flagged

    def get_batched_sequences(self):
        return {"states": self.states, "step": self.step}  # flagged
""",
]

NOT_FLAGGED = [
    """
import torch

class TamiyoRolloutBuffer:
    def __init__(self, num_envs, max_steps, obs_dim, num_slots, device):
        self.states = torch.zeros((num_envs, max_steps, obs_dim), device=device)
        self.blueprint_indices = torch.full(
            (num_envs, max_steps, num_slots), -1, dtype=torch.long, device=device
        )

    def add(self, env, state, blueprint_indices):
        self.states[env] = state
        self.blueprint_indices[env] = blueprint_indices

    def get_batched_sequences(self):
        return {"states": self.states, "blueprint_indices": self.blueprint_indices}
""",
    """
import torch

class ReplayMemory:  # not a storage class of the spec: a look-alike
    def __init__(self, n, obs_dim):
        self.states = torch.zeros((n, obs_dim))

    def add(self, state):
        self.states[0] = state

    def get_batched_sequences(self):
        return {"states": self.states}
""",
]


def check(ctx: CheckContext) -> list[Finding]:
    if not ctx.spec.storage:
        return []
    index = ctx.index

    def every_storage_class() -> dict[str, StorageSpec]:
        return {
            name: storage for name in index.classes if (storage := index.storage(name)) is not None
        }

    known = per_index(index, "storage_classes", every_storage_class)
    storages = {
        info["name"]: known[info["name"]]
        for info in classes_in(index, ctx.path)
        if info["name"] in known
    }
    if not storages:
        return []
    found: list[Finding] = []
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.ClassDef) and node.name in storages:
            found.extend(_check_class(ctx, node, storages[node.name]))
    return found


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {
        stmt.name: stmt
        for stmt in cls.body
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _finding(
    ctx: CheckContext,
    node: ast.AST,
    message: str,
    fix: str | None,
    reason: str | None,
) -> Finding:
    return Finding(
        path=ctx.path,
        line=getattr(node, "lineno", 1),
        col=getattr(node, "col_offset", 0) + 1,
        code=CODE,
        message=message,
        tier=Tier.RESOLVED,
        fix=fix,
        unfixable_reason=reason,
    )


def _check_class(ctx: CheckContext, cls: ast.ClassDef, storage: StorageSpec) -> list[Finding]:
    param = ctx.spec.parameter.name
    field = storage.field
    where = f"{cls.name}"
    found: list[Finding] = []
    methods = _methods(cls)

    # 1. the field: a class-level annotation (dataclass style) or the allocation in __init__.
    annotated = {
        stmt.target.id: stmt
        for stmt in cls.body
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    }
    if field in annotated and param not in annotated:
        found.append(
            _finding(
                ctx,
                annotated[field],
                f"{where} declares `{field}` without `{param}`",
                f"declare `{param}: torch.Tensor` after `{field}`",
                None,
            )
        )
    init = methods.get("__init__")
    if init is not None:
        assigned = _self_assignments(init)
        if field in assigned and param not in assigned:
            allocation = assigned[field]
            fix, reason = _allocation_fix(ctx, init, allocation, storage)
            found.append(
                _finding(
                    ctx,
                    allocation,
                    f"{where}.__init__ allocates `self.{field}` but not `self.{param}`",
                    fix,
                    reason,
                )
            )

    # 2 and 3. add(): the parameter and the store.
    add = methods.get(storage.add_method)
    if add is not None:
        params = [a.arg for a in (*add.args.posonlyargs, *add.args.args, *add.args.kwonlyargs)]
        stores = _subscript_stores(add)
        if param not in params:
            features = _stored_param(stores.get(field), params) or _features_param(ctx, params)
            found.append(
                _finding(
                    ctx,
                    add,
                    f"{where}.{add.name}() takes the features but no `{param}` parameter",
                    f"insert parameter `{_annotated(ctx)}` after `{features}`"
                    if features
                    else None,
                    None if features else "no features parameter found to place it after",
                )
            )
        if field in stores and param not in stores:
            store = stores[field]
            target = store.targets[0]
            index = "..."
            if isinstance(target, ast.Subscript):
                index = ast.get_source_segment(ctx.source, target.slice) or ast.unparse(
                    target.slice
                )
            found.append(
                _finding(
                    ctx,
                    store,
                    f"{where}.{add.name}() stores `self.{field}` but not `self.{param}`",
                    f"add `self.{param}[{index}] = {param}` after this store",
                    None,
                )
            )

    # 4. the batched output: a dict literal with the field's key but not the companion's.
    if storage.batched_method is not None and storage.batched_method in methods:
        keys = {field, *ctx.spec.features.keys}
        for node in walk_scope(methods[storage.batched_method]):
            if not isinstance(node, ast.Dict):
                continue
            present = {
                k.value: (k, v)
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            }
            name = next((k for k in present if k in keys), None)
            if name is None or param in present:
                continue
            key, value = present[name]
            text = ast.get_source_segment(ctx.source, value) or ast.unparse(value)
            swapped = text.replace(f"self.{field}", f"self.{param}")
            found.append(
                _finding(
                    ctx,
                    key,
                    f"{where}.{storage.batched_method}() returns `{name}` without `{param}`",
                    f'add "{param}": {swapped} after this entry' if swapped != text else None,
                    None
                    if swapped != text
                    else f"the value does not read `self.{field}`; cannot derive `{param}`",
                )
            )
    return found


def _annotated(ctx: CheckContext) -> str:
    p = ctx.spec.parameter
    return f"{p.name}: {p.annotation}" if p.annotation else p.name


def _self_assignments(fn: ast.AST) -> dict[str, ast.Assign | ast.AnnAssign]:
    out: dict[str, ast.Assign | ast.AnnAssign] = {}
    for node in walk_scope(fn):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            name = self_attribute(target)
            if name is not None and isinstance(node, ast.Assign | ast.AnnAssign):
                out.setdefault(name, node)
    return out


def _subscript_stores(fn: ast.AST) -> dict[str, ast.Assign]:
    """``self.<name>[...] = value`` statements, by name (the first one)."""
    out: dict[str, ast.Assign] = {}
    for node in walk_scope(fn):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript):
                    name = self_attribute(target.value)
                    if name is not None:
                        out.setdefault(name, node)
    return out


def _stored_param(store: ast.Assign | None, params: list[str]) -> str | None:
    if store is None:
        return None
    value = store.value
    while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
        value = value.func.value  # state.detach().clone() -> state
    return value.id if isinstance(value, ast.Name) and value.id in params else None


def _features_param(ctx: CheckContext, params: list[str]) -> str | None:
    for name in params:
        if any(stem in name for stem in ctx.spec.features.stems):
            return name
    return None


def _allocation_fix(
    ctx: CheckContext,
    init: ast.FunctionDef | ast.AsyncFunctionDef,
    allocation: ast.Assign | ast.AnnAssign,
    storage: StorageSpec,
) -> tuple[str | None, str | None]:
    value = allocation.value
    if not isinstance(value, ast.Call) or not value.args:
        return None, f"cannot read the shape of `self.{storage.field}`'s allocation"
    dims: list[ast.expr] = (
        list(value.args[0].elts)
        if isinstance(value.args[0], ast.Tuple | ast.List)
        else list(value.args)
    )
    if len(dims) < 2:
        return None, f"cannot read the leading dimensions of `self.{storage.field}`"
    init_params = {a.arg for a in (*init.args.args, *init.args.kwonlyargs)}
    assigned = _self_assignments(init)
    slots = next((n for n in storage.num_slots_names if n in init_params), None)
    if slots is None:
        slots = next((f"self.{n}" for n in storage.num_slots_names if n in assigned), None)
    if slots is None:
        return None, "the number of slots is not visible in __init__ (" + ", ".join(
            storage.num_slots_names
        ) + ")"
    leading = ", ".join(ast.unparse(d) for d in dims[:-1])
    device = next((k.value for k in value.keywords if k.arg == "device"), None)
    tail = f", device={ast.unparse(device)}" if device is not None else ""
    param = ctx.spec.parameter.name
    return (
        f"add `self.{param} = torch.full(({leading}, {slots}), {storage.fill_value}, "
        f"dtype={storage.dtype}{tail})` after it",
        None,
    )
