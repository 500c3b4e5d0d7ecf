"""EM005 storage-missing-companion: a storage class keeps the features without the companion.

Everything that belongs together lands as one unit: the class-level declaration (dataclass
style), every allocation of the features field (``__init__``, ``__post_init__``, ``reset``, any
method: int64, last dimension the number of slots, padded with the fill value, with the fill
call of the allocation's own library), the ``add()`` parameter and its store, and the key of
the batched output. If one part cannot be planned, none is, and the class is reported with why.
"""

from __future__ import annotations

import ast

from esper_migrate.context import FileContext
from esper_migrate.derive.chain import CHAIN_METHODS
from esper_migrate.derive.lookup import _quote
from esper_migrate.index import method_info
from esper_migrate.plan.em002_missing_parameter import parameter_edits
from esper_migrate.records import Code, Edit, EditKind, Tier
from esper_migrate.rule import Example, Expected, Rule, edited
from esper_migrate.spec import StorageSpec

_ALLOCATE = "        self.states = torch.zeros(self.num_envs, self.max_steps, self.state_dim)\n"
_ALLOCATE_COMPANION = (
    "        self.blueprint_indices = torch.full((self.num_envs, self.max_steps, self.num_slots), "
    "-1, dtype=torch.long)\n"
)
_DATACLASS = f"""\
from dataclasses import dataclass, field

import torch


@dataclass
class TamiyoRolloutBuffer:
    num_envs: int
    max_steps: int
    state_dim: int
    num_slots: int = 3
    states: torch.Tensor = field(init=False)

    def __post_init__(self):
{_ALLOCATE}
    def reset(self):
{_ALLOCATE}
    def add(self, env_id, t, state):
        self.states[env_id, t] = state
"""
_NUMPY = """\
import numpy as np


class TamiyoRolloutBuffer:
    def __init__(self, num_envs, max_steps, state_dim, num_slots):
        self.states = np.zeros((num_envs, max_steps, state_dim), dtype=np.float32)

    def add(self, env_id, t, state):
        self.states[env_id, t] = state.detach().cpu().numpy()
"""

EXAMPLES = (
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
        findings=(
            Expected(
                4,
                "EM005",
                fix="insert `self.blueprint_indices = torch.full((num_envs, max_steps, num_slots), -1, "
                "dtype=torch.long, device=device)` after line 6; insert parameter "
                "`blueprint_indices: torch.Tensor` after `state`; insert "
                "`self.blueprint_indices[env_id, self.step] = blueprint_indices` after line 10; "
                'add `"blueprint_indices": self.blueprint_indices.to(self.device)` after the '
                '"states" entry (line 14)',
            ),
        ),
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
    Example(
        # A dataclass: the declaration, and every allocation (__post_init__ and reset).
        before=_DATACLASS,
        after=edited(
            _DATACLASS,
            (
                "    states: torch.Tensor = field(init=False)\n",
                "    states: torch.Tensor = field(init=False)\n"
                "    blueprint_indices: torch.Tensor = field(init=False)\n",
            ),
            (
                "    def __post_init__(self):\n" + _ALLOCATE,
                "    def __post_init__(self):\n" + _ALLOCATE + _ALLOCATE_COMPANION,
            ),
            (
                "    def reset(self):\n" + _ALLOCATE,
                "    def reset(self):\n" + _ALLOCATE + _ALLOCATE_COMPANION,
            ),
            (
                "(self, env_id, t, state)",
                "(self, env_id, t, state, blueprint_indices: torch.Tensor)",
            ),
            (
                "        self.states[env_id, t] = state\n",
                "        self.states[env_id, t] = state\n"
                "        self.blueprint_indices[env_id, t] = blueprint_indices\n",
            ),
        ),
    ),
    Example(
        # numpy-backed: numpy's own fill call and dtype, the store's conversions copied.
        before=_NUMPY,
        after=edited(
            _NUMPY,
            (
                "dtype=np.float32)\n",
                "dtype=np.float32)\n"
                "        self.blueprint_indices = np.full((num_envs, max_steps, num_slots), -1, dtype=np.int64)\n",
            ),
            ("(self, env_id, t, state)", "(self, env_id, t, state, blueprint_indices)"),
            (
                "        self.states[env_id, t] = state.detach().cpu().numpy()\n",
                "        self.states[env_id, t] = state.detach().cpu().numpy()\n"
                "        self.blueprint_indices[env_id, t] = blueprint_indices.detach().cpu().numpy()\n",
            ),
        ),
        findings=(
            Expected(
                4,
                "EM005",
                fix="insert `self.blueprint_indices = np.full((num_envs, max_steps, num_slots), -1, "
                "dtype=np.int64)` after line 6; insert parameter `blueprint_indices` after `state`; "
                "insert `self.blueprint_indices[env_id, t] = blueprint_indices.detach().cpu().numpy()` "
                "after line 9",
            ),
        ),
    ),
    Example(
        # All or nothing: the re-allocation in reset() cannot be planned (no number of slots
        # there), so neither is the rest; the class is reported.
        before=_NUMPY.replace(
            "    def add(",
            "    def reset(self, n):\n        self.states = np.zeros((n, 5))\n\n    def add(",
        ),
        unresolved="allocated in `reset` but the number of slots is not visible",
        findings=(Expected(4, "EM005", reason="allocated in `reset`"),),
    ),
)


class _CannotPlan(Exception):
    """One part of the unit cannot be planned: (reason, suggestion)."""


def _is_self_attr(node: ast.AST, attr: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == attr
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


class StorageMissingCompanion(Rule):
    CODE = Code.STORAGE_MISSING_COMPANION
    NAME = "storage-missing-companion"
    SUMMARY = "A storage class keeps the features without their companion."
    DOC = """
## What it does
Finds the spec's storage classes (and subclasses) that keep the features field without the
companion beside it: declaration, allocations, `add()` parameter and store, batched key.

## Why is this bad?
The companion recorded at rollout time is lost, so the update cannot pass it (or passes a
fresh, wrong one); a half-migrated class fails with `AttributeError` at run time.

## Example
```python
@dataclass
class TamiyoRolloutBuffer:
    num_slots: int
    states: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.states = torch.zeros(self.num_envs, self.max_steps, self.state_dim)
```

Use instead:
```python
@dataclass
class TamiyoRolloutBuffer:
    num_slots: int
    states: torch.Tensor = field(init=False)
    blueprint_indices: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.states = torch.zeros(self.num_envs, self.max_steps, self.state_dim)
        self.blueprint_indices = torch.full((self.num_envs, self.max_steps, self.num_slots), -1, dtype=torch.long)
```

## Fix
Every missing part is added as one unit; a numpy-backed field gets `np.full(..., dtype=np.int64)`.

## Fix safety
Safe: the companion is padded with the fill value (-1, an empty slot) until `add()` stores it.
"""
    EXAMPLES = EXAMPLES

    def plan(self, ctx: FileContext) -> None:
        new = ctx.spec.parameter.name
        for cls in ctx.class_defs:
            storage = ctx.index.storage(cls.name)
            if storage is None:
                continue
            message = f"`{cls.name}` stores `{storage.field}` without `{new}`"
            try:
                edits = _class_edits(ctx, cls, storage)
            except _CannotPlan as exc:
                reason, suggestion = exc.args
                ctx.report(cls, self.CODE, Tier.RESOLVED, message, reason, suggestion)
                continue
            if edits:
                ctx.add_unit(ctx.unit(cls, self.CODE, Tier.RESOLVED, message, edits))


def _statement(ctx: FileContext, stmt: ast.stmt, text: str, reason: str, how: str) -> Edit:
    return ctx.edit(
        EditKind.STATEMENT, stmt, text, reason, how, code=Code.STORAGE_MISSING_COMPANION
    )


def _class_edits(ctx: FileContext, cls: ast.ClassDef, storage: StorageSpec) -> list[Edit]:
    new = ctx.spec.parameter.name
    field = storage.field
    methods = {
        fn.name: fn for fn in cls.body if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    declared = {
        stmt.target.id: stmt
        for stmt in cls.body
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    }
    assigned = {
        node.attr
        for node in ast.walk(cls)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    } | set(declared)
    edits: list[Edit] = []
    if field in declared and new not in declared:
        edits.append(_declaration(ctx, cls.name, declared[field]))
    for fn in methods.values():
        edits.extend(_allocations(ctx, cls.name, fn, storage, assigned))
    add = methods.get(storage.add_method)
    if add is not None:
        features = ctx.features_param(method_info(add), storage_add=True)
        planned = parameter_edits(ctx, cls.name, add, "storage", storage.class_name, features)
        if isinstance(planned, tuple):
            raise _CannotPlan(planned[1], planned[2])
        edits.extend(planned or [])
        edits.extend(_store(ctx, cls.name, add, field))
    batched = methods.get(storage.batched_method or "")
    if batched is not None:
        edits.extend(_batched(ctx, cls.name, batched, field))
    return edits


def _declaration(ctx: FileContext, cls: str, stmt: ast.AnnAssign) -> Edit:
    new = ctx.spec.parameter.name
    value = stmt.value
    if value is not None and not (
        isinstance(value, ast.Call)
        and ctx.dotted(value.func) in ("field", "dataclasses.field")
        and not value.args
        and all(k.arg in ("init", "repr", "compare") for k in value.keywords)
    ):
        raise _CannotPlan(
            f"the declaration of `{ctx.text(stmt.target)}` has a value that cannot be copied",
            f"declare `{new}` beside it",
        )
    text = f"{new}: {ctx.text(stmt.annotation)}" + (f" = {ctx.text(value)}" if value else "")
    return _statement(
        ctx, stmt, text, f"`{cls}` declares `{ctx.text(stmt.target)}` only", "same declaration"
    )


def _allocations(
    ctx: FileContext,
    cls: str,
    fn: ast.FunctionDef | ast.AsyncFunctionDef,
    storage: StorageSpec,
    assigned: set[str],
) -> list[Edit]:
    new = ctx.spec.parameter.name
    field = storage.field
    if any(
        isinstance(n, ast.Assign | ast.AnnAssign)
        and any(
            _is_self_attr(t, new) for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        )
        for n in ast.walk(fn)
    ):
        return []
    edits: list[Edit] = []
    for stmt in ast.walk(fn):
        if not (isinstance(stmt, ast.Assign | ast.AnnAssign) and isinstance(stmt.value, ast.Call)):
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if not any(_is_self_attr(t, field) for t in targets):
            continue
        call = stmt.value
        dims: list[ast.expr] = list(call.args)
        if len(dims) == 1 and isinstance(dims[0], ast.Tuple | ast.List):
            dims = list(dims[0].elts)
        params = {a.arg for a in [*fn.args.args, *fn.args.kwonlyargs]}
        slots = next((n for n in storage.num_slots_names if n in params), None)
        if slots is None:
            slots = next((f"self.{n}" for n in storage.num_slots_names if n in assigned), None)
        module = (ctx.dotted(call.func) or "torch").rpartition(".")[0] or "torch"
        if slots is None or not dims or any(isinstance(d, ast.Starred) for d in dims):
            why = "the number of slots is not visible" if slots is None else "its shape is unclear"
            raise _CannotPlan(
                f"`{cls}.{field}` is allocated in `{fn.name}` but {why}",
                f"allocate `self.{new} = {module}.full((..., num_slots), {storage.fill_value})` "
                "beside it",
            )
        torch_like = module.split(".")[0] == "torch"
        dtype = storage.dtype if torch_like else f"{module}.int64"
        shape = ", ".join([*(ctx.text(d) for d in dims[:-1]), slots])
        device = next((ctx.text(k.value) for k in call.keywords if k.arg == "device"), None)
        text = (
            f"self.{new} = {module}.full(({shape}), {storage.fill_value}, dtype={dtype}"
            + (f", device={device}" if device is not None else "")
            + ")"
        )
        edits.append(
            _statement(
                ctx,
                stmt,
                text,
                f"`{cls}` stores `{field}` without `{new}`",
                f"shape of `self.{field}` with the last dim `{slots}`",
            )
        )
    return edits


def _store(
    ctx: FileContext, cls: str, add: ast.FunctionDef | ast.AsyncFunctionDef, field: str
) -> list[Edit]:
    new = ctx.spec.parameter.name
    stores = [
        stmt
        for stmt in ast.walk(add)
        if isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Subscript)
    ]
    if any(_is_self_attr(s.targets[0].value, new) for s in stores):  # type: ignore[attr-defined]
        return []
    for stmt in stores:
        target = stmt.targets[0]
        assert isinstance(target, ast.Subscript)
        if _is_self_attr(target.value, field):
            text = f"self.{new}[{ctx.text(target.slice)}] = {_stored_value(ctx, stmt.value)}"
            reason = f"`{cls}.{add.name}` stores `{field}` only"
            return [_statement(ctx, stmt, text, reason, "same index as the features store")]
    if not any(_is_self_attr(n, field) for n in ast.walk(add)):
        return []  # an abstract or forwarding add(): nothing is stored here
    raise _CannotPlan(
        f"`{cls}.{add.name}` stores `{field}` in a way the companion's store cannot copy",
        f"store `{new}` beside `{field}` by hand",
    )


#: Conversions a store may apply to the features that keep the values (and the int64 dtype):
#: the companion's store copies them (``state.detach().cpu().numpy()`` into a numpy buffer).
_KEEPS_VALUES = CHAIN_METHODS | {"numpy"}


def _stored_value(ctx: FileContext, value: ast.expr) -> str:
    """The companion as the features' store writes the features: the same value-keeping
    conversions (``.detach().cpu().numpy()``), none that would change it (``.float()``)."""
    new = ctx.spec.parameter.name
    inner = value
    while isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
        if inner.func.attr not in _KEEPS_VALUES:
            return new
        inner = inner.func.value
    if inner is value or not isinstance(inner, ast.Name):
        return new
    return ctx.splice(value, inner, new)


def _batched(
    ctx: FileContext, cls: str, fn: ast.FunctionDef | ast.AsyncFunctionDef, field: str
) -> list[Edit]:
    new = ctx.spec.parameter.name
    edits: list[Edit] = []
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
            raise _CannotPlan(
                f"`{cls}.{fn.name}` returns `{field}` through an expression the field cannot "
                "be swapped in",
                f"add `{_quote(ctx.text(key_node), new)}: <same expression over self.{new}>`",
            )
        edits.append(
            ctx.edit(
                EditKind.DICT_ENTRY,
                node,
                ctx.splice(value, uses[0], f"self.{new}"),
                f"`{cls}.{fn.name}` returns `{field}` without `{new}`",
                f"the `{field}` entry with the field swapped",
                code=Code.STORAGE_MISSING_COMPANION,
                after=ctx.text(key_node),
                extra=_quote(ctx.text(key_node), new),
            )
        )
    return edits
