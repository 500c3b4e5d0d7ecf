"""Call analysis shared by the call rules (EM001, EM004, EM006): which target a call reaches,
how its arguments bind, whether it is migrated, and the companion it needs.

The receiver is resolved through the index (``self._network`` assigned or annotated,
``agent.policy`` annotated, annotated parameters, ``net = FactoredRecurrentActorCritic(...)``;
``net(state)`` calls ``forward``): tier ``resolved``. An unresolvable receiver matches by method
name and binding: tier ``name``. A receiver of a known class outside the spec is a look-alike
and is never touched.

A call is matched to the old and the migrated signature by binding its arguments the way Python
does. Binding only the old one: the argument is missing. Only the new one: migrated, left alone.
Both (a positional argument reaches the new slot): data flow decides. The argument there derives
from the companion (a producer, a dict key, the enclosing target's parameter, any spelling such
as ``bp.to(device)``, an int64 test tensor): migrated. The arguments line up with the old
parameters (``masks`` where ``masks`` was, ``hidden`` where ``hidden`` was) more than with the
new ones, or a literal sits in the new slot: a slide. Anything else is reported, never guessed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from enum import Enum
from typing import cast

from esper_migrate.context import FileContext, Scope
from esper_migrate.derive import Derivation, Failure, Result, derive
from esper_migrate.derive.chain import CHAIN_METHODS
from esper_migrate.derive.lookup import _quote
from esper_migrate.derive.shape import SHAPE_METHODS
from esper_migrate.index import FunctionInfo, ParamInfo, callee_name
from esper_migrate.records import Code, Edit, EditKind, Tier


class Verdict(Enum):
    MIGRATED = "migrated"
    #: Binds only the old signature: the argument is missing.
    MISSING = "missing"
    #: Binds both, and the argument in the new slot is the old parameter's value.
    SLIDE = "slide"
    #: Binds both, and nothing says what the argument in the new slot is.
    UNCLEAR = "unclear"


@dataclass(frozen=True)
class CallSite:
    """A call resolved to a target method."""

    node: ast.Call
    cls: str | None
    method: str
    definition: FunctionInfo
    tier: Tier
    storage_add: bool

    @property
    def where(self) -> str:
        if self.cls == "":
            return f"`{self.method}`"  # a module-level function target
        return f"`{self.cls or '?'}.{self.method}`"


@dataclass
class CallPlan:
    """One resolved call: its verdict, its features argument and the companion derived for it."""

    site: CallSite
    scope: Scope
    verdict: Verdict
    #: (positional index or keyword name, expression) of the features argument.
    features: tuple[int | str, ast.expr] | None = None
    #: The argument that lands in the new slot (SLIDE/UNCLEAR) and the old parameter it fills.
    slot: tuple[ast.expr, str] | None = None
    result: Result | None = None
    #: The target method whose features parameter this call passes on (None: not a pass-on).
    passes_on: ast.AST | None = None

    @property
    def needs_value(self) -> bool:
        return self.verdict is not Verdict.MIGRATED

    @property
    def renames(self) -> bool:
        return isinstance(self.result, Derivation) and any(
            e.kind is EditKind.RENAME for e in self.result.edits
        )


# -- signatures and binding --------------------------------------------------------------------

Bound = dict[str, ast.expr]


def bind(params: list[ParamInfo], call: ast.Call) -> Bound | None:
    """Parameter name -> argument, as Python binds the call; None when it raises TypeError."""
    positional = [p for p in params if p["kind"] in ("pos", "posonly")]
    vararg = any(p["kind"] == "vararg" for p in params)
    kwarg = any(p["kind"] == "kwarg" for p in params)
    bound: Bound = {}
    if len(call.args) > len(positional) and not vararg:
        return None
    for p, arg in zip(positional, call.args, strict=False):
        bound[p["name"]] = arg
    by_keyword = {p["name"] for p in params if p["kind"] in ("pos", "kwonly")}
    for k in call.keywords:
        assert k.arg is not None
        if k.arg in bound or (k.arg not in by_keyword and not kwarg):
            return None
        bound[k.arg] = k.value
    missing = [
        p
        for p in params
        if not p["has_default"]
        and p["kind"] in ("pos", "posonly", "kwonly")
        and p["name"] not in bound
    ]
    return None if missing else bound


def signatures(
    ctx: FileContext, fn: FunctionInfo, storage_add: bool
) -> tuple[list[ParamInfo], list[ParamInfo]] | None:
    """(old, migrated) parameter lists of a target definition as the index has it, whichever of
    the two it is today; None when the placement names no place for the new one there."""
    new = ctx.spec.parameter.name
    params = fn["params"]
    if any(p["name"] == new for p in params):
        return [p for p in params if p["name"] != new], params
    at = ctx.insertion(fn, storage_add)
    if at is None or ctx.placement_problem(params, at) is not None:
        return None
    added = ParamInfo(
        name=new, annotation=None, has_default=ctx.spec.parameter.default is not None, kind="pos"
    )
    return params, at.migrated(params, added)


# -- resolution -------------------------------------------------------------------------------


def resolve_call(ctx: FileContext, scope: Scope, call: ast.Call) -> CallSite | None:
    """The target method a call reaches, with the tier of the match; None if it reaches none."""
    index = ctx.index
    func = call.func
    storage_adds = {s.add_method for s in ctx.spec.storage}
    if isinstance(func, ast.Attribute) and func.attr in ctx.spec.target_functions:
        # ``losses.policy_loss(...)``: the function of the module the file imported under that
        # name, never a function of that name in whatever module.
        module = ctx.module_of(func.value, scope, call.lineno, call.col_offset)
        if module is not None:
            definition = index.module_function(module, func.attr)
            if definition is None:
                return None  # an unrelated module's function of the same name
            return CallSite(call, "", func.attr, definition, Tier.RESOLVED, False)
    if isinstance(func, ast.Attribute) and func.attr in ctx.spec.target_methods | storage_adds:
        method = func.attr
        owner = ctx.expr_type(func.value, scope, call.lineno)
        if owner is not None and index.is_known_class(owner):
            target = index.is_target(owner, method)
            if target is None:
                return None  # a method of a known class outside the spec: a look-alike
            definition = index.method(owner, method) or index.method(target.origin, method)
            if definition is None:
                return None
            return CallSite(call, owner, method, definition, Tier.RESOLVED, target.how == "storage")
        return _by_name(ctx, call, method, method in storage_adds)
    if isinstance(func, ast.Name) and func.id in ctx.spec.target_functions:
        b = scope.lookup(func.id, call.lineno, call.col_offset)
        if b is None or b.kind in ("import", "def", "other"):
            definitions = index.functions.get(func.id, [])
            if definitions:
                return CallSite(call, "", func.id, definitions[0], Tier.RESOLVED, False)
        return None
    if isinstance(func, ast.Name) and func.id in ctx.aliased_functions():
        # ``from pkg.losses import policy_loss as loss``: the target under another name.
        imported = ctx.module_of(func, scope, call.lineno, call.col_offset)
        module, _, name = (imported or "").rpartition(".")
        if name in ctx.spec.target_functions:
            definition = index.module_function(module, name)
            if definition is not None:
                return CallSite(call, "", name, definition, Tier.RESOLVED, False)
    # ``net(state)`` and ``self._network(state)``: __call__ of a target instance is forward.
    callee_type = ctx.expr_type(func, scope, call.lineno)
    if callee_type is not None and index.is_target(callee_type, "forward") is not None:
        definition = index.method(callee_type, "forward")
        if definition is not None:
            return CallSite(call, callee_type, "forward", definition, Tier.RESOLVED, False)
    return None


def _by_name(ctx: FileContext, call: ast.Call, method: str, storage_add: bool) -> CallSite | None:
    keywords = [k.arg for k in call.keywords if k.arg is not None]
    if storage_add:
        definitions = [
            fn
            for (cls, m), t in ctx.index.targets.items()
            if m == method and t.how == "storage"
            for fn in [ctx.index.method(cls, m)]
            if fn is not None
        ]
    else:
        definitions = ctx.index.target_definitions(method)
    forwarded = any(k.arg is None for k in call.keywords) or any(
        isinstance(a, ast.Starred) for a in call.args
    )
    for fn in definitions:
        features = ctx.features_param(fn, storage_add)
        if storage_add and features not in keywords:
            continue  # ``add`` is too common a name to match without its features keyword
        pair = signatures(ctx, fn, storage_add)
        if pair is None:
            continue
        if forwarded or any(bind(params, call) is not None for params in pair):
            return CallSite(call, None, method, fn, Tier.NAME, storage_add)
    return None


# -- the verdict ------------------------------------------------------------------------------


def features_argument(ctx: FileContext, site: CallSite) -> tuple[int | str, ast.expr] | None:
    """The call's features argument (the one the companion derives from): (positional index
    or keyword name, expression)."""
    fn = site.definition
    features = ctx.features_param(fn, site.storage_add)
    if features is None:
        return None
    new = ctx.spec.parameter.name
    positional = [
        p["name"] for p in fn["params"] if p["kind"] in ("pos", "posonly") and p["name"] != new
    ]
    if features in positional:
        i = positional.index(features)
        if len(site.node.args) > i:
            return i, site.node.args[i]
    for kw in site.node.keywords:
        if kw.arg == features:
            return features, kw.value
    return None


def classify(ctx: FileContext, scope: Scope, site: CallSite) -> CallPlan | None:
    """The call's verdict; None when it binds neither signature (not ours to judge)."""
    call = site.node
    new = ctx.spec.parameter.name
    plan = CallPlan(site, scope, Verdict.MIGRATED)
    if any(k.arg in (new, None) for k in call.keywords) or any(
        isinstance(a, ast.Starred) for a in call.args
    ):
        return plan  # passed by keyword, or forwarded *args/**kwargs carry it
    pair = signatures(ctx, site.definition, site.storage_add)
    if pair is None:
        if ctx.insertion(site.definition, site.storage_add) is not None:
            return None  # the definition cannot take it where placed: EM002 reports it
        plan.verdict = Verdict.MISSING
        return plan
    old, migrated = pair
    b_old, b_new = bind(old, call), bind(migrated, call)
    if b_old is None:
        return plan if b_new is not None else None
    plan.features = features_argument(ctx, site)
    param = ctx.spec.parameter
    if b_new is not None and new not in b_new and param.optional and not param.require_at_calls:
        return plan  # an optional parameter the call may omit (its default applies)
    if b_new is None or new not in b_new:
        plan.verdict = Verdict.MISSING
        return plan
    slot = b_new[new]
    old_param = next((name for name, arg in b_old.items() if arg is slot), "?")
    if is_companion(ctx, scope, slot):
        return plan
    if ctx.text(slot) in _written_values(ctx):
        return plan  # what apply writes in the slot (the default, a constant source)
    if plan.features is not None:
        derived = derive(ctx, scope, plan.features[1])
        if isinstance(derived, Derivation) and derived.text == ctx.text(slot):
            return plan
    plan.slot = (slot, old_param)
    old_votes, new_votes = _line_ups(call, old, migrated)
    if new_votes > old_votes:
        return plan  # the later arguments sit where the migrated signature wants them
    literal = isinstance(slot, ast.Constant | ast.Dict | ast.Tuple | ast.List)
    plan.verdict = Verdict.SLIDE if literal or old_votes > new_votes else Verdict.UNCLEAR
    return plan


def _written_values(ctx: FileContext) -> set[str]:
    """Source texts apply passes for the parameter without deriving them: its constant
    sources and, for an optional one, its default."""
    param = ctx.spec.parameter
    out = {s.value for s in param.sources if s.kind == "constant" and s.value is not None}
    if param.default is not None:
        out.add(param.default)
    return out


def _line_ups(call: ast.Call, old: list[ParamInfo], migrated: list[ParamInfo]) -> tuple[int, int]:
    """How many positional arguments are spelled like the parameter they bind under the old
    signature, and under the migrated one."""
    old_pos = [p["name"] for p in old if p["kind"] in ("pos", "posonly")]
    new_pos = [p["name"] for p in migrated if p["kind"] in ("pos", "posonly")]
    votes = [0, 0]
    for i, arg in enumerate(call.args):
        if isinstance(arg, ast.Constant):
            continue  # a literal says nothing about which signature it was written for
        for side, names in enumerate((old_pos, new_pos)):
            if i < len(names) and lines_up(arg, names[i]):
                votes[side] += 1
    return votes[0], votes[1]


def _spelled(expr: ast.expr) -> str | None:
    """The name an argument is spelled with: ``masks``, ``obs.masks``, ``batch["masks"]``."""
    while isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
        expr = expr.func.value
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    if (
        isinstance(expr, ast.Subscript)
        and isinstance(expr.slice, ast.Constant)
        and isinstance(expr.slice.value, str)
    ):
        return expr.slice.value
    if isinstance(expr, ast.Subscript):
        return _spelled(expr.value)
    return None


def lines_up(expr: ast.expr, param: str) -> bool:
    """Whether an argument is spelled like the parameter ``param`` (``masks``,
    ``action_masks``, ``batch["masks"]``, ``masks.to(device)``)."""
    name = _spelled(expr)
    if name is None:
        return False
    a, b = name.strip("_").lower(), param.strip("_").lower()
    if a == b or b.startswith(a):
        return True  # the name, or an abbreviation of it (``h`` for ``hidden``)
    # ``action_masks`` for ``masks``; too short a name (``a``, ``h``) says nothing.
    return min(len(a), len(b)) >= 4 and (a in b or b in a)


def is_companion(ctx: FileContext, scope: Scope, expr: ast.expr, depth: int = 0) -> bool:
    """Whether ``expr`` evaluates to the companion, by data flow: it names the parameter or a
    key of that name, or comes from a producer's companion, the target's parameter, the spec's
    synthesis call, or a chain, reshape or transform of one of these (through local
    assignments and the tuples that local functions return)."""
    new = ctx.spec.parameter.name
    if depth > 8:
        return False
    if isinstance(expr, ast.Name):
        if new in expr.id:
            return True
        b = scope.lookup(expr.id, expr.lineno, expr.col_offset)
        if b is None:
            return False
        if b.kind == "unpack" and isinstance(b.value, ast.Call):
            producer = ctx.index.producer(callee_name(b.value.func))
            if producer is not None:
                return b.position == producer.companion_index
            return _returned(ctx, b.value, b.position, depth)
        if b.kind in ("assign", "for") and b.value is not None:
            return is_companion(ctx, scope, b.value, depth + 1)
        return False
    if isinstance(expr, ast.Attribute):
        return new in expr.attr
    if isinstance(expr, ast.Subscript):
        key = expr.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return new in key.value
        return is_companion(ctx, scope, expr.value, depth + 1)
    if isinstance(expr, ast.Call):
        if ctx.dotted(expr.func) == ctx.spec.synthesis.random_call or _int64(ctx, expr):
            return True
        if isinstance(expr.func, ast.Attribute) and expr.func.attr in CHAIN_METHODS | SHAPE_METHODS:
            return is_companion(ctx, scope, expr.func.value, depth + 1)
        return any(
            is_companion(ctx, scope, a, depth + 1)
            for a in [*expr.args, *(k.value for k in expr.keywords)]
        )
    return False


#: Spellings of the companion's dtype (int64) in a tensor factory's ``dtype=``.
_INT64 = frozenset({"torch.long", "torch.int64", "long", "int64", "np.int64", "numpy.int64"})


def _int_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.List | ast.Tuple):
        return bool(node.elts) and all(_int_literal(e) for e in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _int_literal(node.left) or _int_literal(node.right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _int_literal(node.operand)
    return isinstance(node, ast.Constant) and type(node.value) is int


def _int64(ctx: FileContext, call: ast.Call) -> bool:
    """A tensor built as int64 (``dtype=torch.long``, or ``torch.tensor`` of integer
    literals): in a test, an index tensor where the indices go; the features are float, the
    masks bool and the hidden state a tuple."""
    for k in call.keywords:
        if k.arg == "dtype":
            return ctx.dotted(k.value) in _INT64
    name = ctx.dotted(call.func) or ""
    if name.endswith(("full", "full_like")) and len(call.args) >= 2:
        return _int_literal(call.args[1])  # the fill value sets the dtype
    return name.endswith(("tensor", "as_tensor")) and bool(call.args) and _int_literal(call.args[0])


def _returned(ctx: FileContext, call: ast.Call, position: int, depth: int) -> bool:
    """Whether element ``position`` of what a function of this file returns is a companion."""
    name = callee_name(call.func)
    for node in ctx.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            scope = ctx.scopes[id(node)]
            for ret in ast.walk(node):
                if (
                    isinstance(ret, ast.Return)
                    and isinstance(ret.value, ast.Tuple)
                    and position < len(ret.value.elts)
                    and is_companion(ctx, scope, ret.value.elts[position], depth + 1)
                ):
                    return True
    return False


def _passes_on(ctx: FileContext, scope: Scope, expr: ast.expr, depth: int = 0) -> ast.AST | None:
    """The enclosing target method when ``expr`` is (a reassignment of) its features parameter."""
    fn = scope.function
    if fn is None or scope.target is None or depth > 8:
        return None
    for name in ast.walk(expr):
        if not isinstance(name, ast.Name):
            continue
        b = scope.lookup(name.id, name.lineno, name.col_offset)
        if b is None:
            continue
        if b.kind == "param" and b.line == fn.lineno:
            return fn
        if b.kind == "assign" and b.value is not None:
            found = _passes_on(ctx, scope, b.value, depth + 1)
            if found is not None:
                return found
    return None


def analyse(ctx: FileContext) -> list[CallPlan]:
    """Every resolved call of the file with its verdict and (when it needs one) its value;
    computed once per file (the call rules share it). Dict literals are analysed first: the
    lookups that carry the companion beside the features depend on them."""
    cached = ctx.shared.get("calls")
    if cached is not None:
        return cast(list[CallPlan], cached)
    analyse_dicts(ctx)
    plans: list[CallPlan] = []
    for node, scope in ctx.calls:
        site = resolve_call(ctx, scope, node)
        if site is None:
            continue
        plan = classify(ctx, scope, site)
        if plan is None:
            continue
        plans.append(plan)
        if not plan.needs_value:
            continue
        plan.result = value_for(ctx, scope, plan)
        if plan.features is not None:
            plan.passes_on = _passes_on(ctx, scope, plan.features[1])
        if plan.passes_on is None and isinstance(plan.result, Derivation):
            # A value that is the enclosing target's new parameter lands with its definition.
            plan.passes_on = plan.result.via_parameter_of
    _claim_renames(plans)
    ctx.shared["calls"] = plans
    return plans


def value_for(ctx: FileContext, scope: Scope, plan: CallPlan) -> Result:
    """The value the call passes, from the spec's sources in their order; the first failure's
    reason when none gives one. An optional parameter's calls fall back on its default (they
    must pass something only where later positional arguments would slide into its slot)."""
    param = ctx.spec.parameter
    site = plan.site
    failures: list[Failure] = []
    placed = ctx.insertion(site.definition, site.storage_add) is not None
    for source in param.sources:
        result: Result
        if source.kind != "companion" and not placed:
            # The definition cannot take the parameter (its EM002 says why): no value helps.
            result = Failure(f"{site.where} has no parameter to place `{param.name}` after")
        elif source.kind == "companion":
            if plan.features is None:
                result = Failure(f"call to {site.where} passes no features argument")
            else:
                result = derive(ctx, scope, plan.features[1])
        elif source.kind == "self":
            result = _self_source(ctx, scope, source.attr or param.name)
        elif source.kind == "parameter":
            result = _parameter_source(ctx, scope, param.name)
        else:
            assert source.value is not None
            result = Derivation(source.value, "the spec's constant")
        if isinstance(result, Derivation):
            return result
        failures.append(result)
    if placed and param.optional and not param.require_at_calls:
        return Derivation(
            param.default or "None",
            "the parameter's default: the call omits it, its later positional arguments "
            "keep their slots",
        )
    return failures[0]


def _self_source(ctx: FileContext, scope: Scope, attr: str) -> Result:
    fn, cls = scope.function, scope.cls
    if fn is None or cls is None or not fn.args.args or fn.args.args[0].arg != "self":
        return Failure(f"`self.{attr}`: the call is not in a method")
    for node in ctx.class_defs:
        if node.name != cls:
            continue
        for sub in ast.walk(node):
            targets = (
                sub.targets
                if isinstance(sub, ast.Assign)
                else [sub.target]
                if isinstance(sub, ast.AnnAssign | ast.AugAssign)
                else []
            )
            for t in targets:
                if (
                    isinstance(t, ast.Attribute)
                    and t.attr == attr
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                ):
                    return Derivation(f"self.{attr}", f"`{cls}` sets `self.{attr}`")
    return Failure(f"`{cls}` never sets `self.{attr}`")


def _parameter_source(ctx: FileContext, scope: Scope, name: str) -> Result:
    fn = scope.function
    if fn is None:
        return Failure(f"the call is at module level: no parameter `{name}` to pass")
    a = fn.args
    every = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    if any(arg.arg == name for arg in every):
        return Derivation(name, f"the parameter `{name}` of `{fn.name}`")
    if scope.target is not None:
        # The enclosing method gains the parameter in this run: the call passes it on.
        return Derivation(name, f"the new parameter `{name}` of `{fn.name}`", via_parameter_of=fn)
    return Failure(f"`{fn.name}` has no parameter `{name}`")


def _claim_renames(plans: list[CallPlan]) -> None:
    """A discarded companion is renamed once, by the first call that needs it (its EM006
    unit); later calls of the same companion only pass the new name."""
    seen: set[object] = set()
    for plan in plans:
        if not isinstance(plan.result, Derivation):
            continue
        renames = [e for e in plan.result.edits if e.kind is EditKind.RENAME]
        if not renames:
            continue
        if renames[0].anchor in seen:
            plan.result.edits = [e for e in plan.result.edits if e.kind is not EditKind.RENAME]
        seen.add(renames[0].anchor)


def argument_edits(ctx: FileContext, plan: CallPlan, code: Code) -> list[Edit]:
    """The edits that pass the derived value: its side edits (each planned once per file) and
    the argument where the migrated signature binds it. Positionally when the call passes a
    positional argument at or past the new slot (right after the one before it, or first);
    else by keyword, right after the argument of the parameter it follows, first when it
    goes first, else last. A keyword-only parameter is always passed by keyword, last."""
    assert isinstance(plan.result, Derivation)
    call = plan.site.node
    new = ctx.spec.parameter.name
    edits = [
        side for side in plan.result.edits if ctx.once("side", side.kind, side.anchor, side.text)
    ]
    at = ctx.insertion(plan.site.definition, plan.site.storage_add)
    after: int | str | None = None
    positional = first = False
    follows: ast.expr | None = None
    if at is not None and not at.keyword_only:
        n = len(call.args)
        if n > at.index:
            positional = True
        if at.index > 0 and n >= at.index:
            after, follows = at.index - 1, call.args[at.index - 1]
        elif at.index == 0:
            first = True
        else:
            passed = [k for k in call.keywords if k.arg == at.after]
            if passed:
                after, follows = at.after, passed[0].value
    if after is None and not first:
        # Nothing to follow (the neighbour is not passed, or keyword-only): a keyword at the
        # end, after ``**kwargs`` too (Python allows it).
        every = [*call.args, *(k.value for k in call.keywords)]
        every.sort(key=lambda n: (n.lineno, n.col_offset))
        follows = every[-1] if every else None
    edits.append(
        ctx.edit(
            EditKind.ARGUMENT,
            call,
            plan.result.text,
            f"call to {plan.site.where} lacks `{new}`",
            plan.result.how,
            code=code,
            tier=plan.site.tier,
            after=after,
            positional=positional,
            first=first,
            extra=new,
            follows=ctx.text(follows) if follows is not None else None,
        )
    )
    return edits


def add_call_unit(
    ctx: FileContext,
    plan: CallPlan,
    code: Code,
    message: str,
    suggestion: str,
    at: Edit | None = None,
) -> None:
    """The call's unit (located at the call, or at the edit ``at``): the argument and its side
    edits, or the reason no value derives. The engine folds it into its definition's unit when
    the call passes the features on."""
    result = plan.result
    if isinstance(result, Derivation):
        unit = ctx.unit(
            plan.site.node, code, plan.site.tier, message, argument_edits(ctx, plan, code)
        )
    else:
        reason = result.reason if result is not None else "no value derives"
        better = result.suggestion if result is not None else None
        unit = ctx.unit(
            plan.site.node,
            code,
            plan.site.tier,
            message,
            reason=reason,
            suggestion=better or suggestion,
        )
    if at is not None:
        unit = replace(unit, line=at.line, col=at.col)
    units: dict[int, tuple[CallPlan, int]] = ctx.shared.setdefault("call_units", {})  # type: ignore[assignment]
    units[id(plan.site.node)] = (plan, len(ctx.units))
    ctx.units.append(unit)


# -- dict literals ----------------------------------------------------------------------------


@dataclass
class DictPlan:
    node: ast.Dict
    key: ast.expr
    result: Derivation


def _key(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def analyse_dicts(ctx: FileContext) -> list[DictPlan]:
    """Dict literals that carry the features under a features key and whose companion derives:
    they gain the companion's entry (and lookups of the key then carry it too)."""
    cached = ctx.shared.get("dicts")
    if cached is not None:
        return cast(list[DictPlan], cached)
    new = ctx.spec.parameter.name
    keys = set(ctx.spec.features.keys)
    batched = {s.batched_method for s in ctx.spec.storage if s.batched_method}
    plans: list[DictPlan] = []
    for node, scope in ctx.dicts:
        present = [_key(k) for k in node.keys]
        hits = [(k, v) for k, v in zip(node.keys, node.values, strict=True) if _key(k) in keys]
        if not hits:
            continue
        if new in present:
            ctx.companion_dict_keys.update(str(_key(k)) for k, _ in hits)
            continue
        fn = scope.function
        if fn is not None and fn.name in batched and ctx.index.storage(scope.cls) is not None:
            continue  # the storage rule owns the batched output
        key_node, value = hits[0]
        assert key_node is not None
        result = derive(ctx, scope, value)
        if not isinstance(result, Derivation):
            continue  # a dict that merely has such a key; a later lookup reports if needed
        ctx.companion_dict_keys.add(str(_key(key_node)))
        plans.append(DictPlan(node, key_node, result))
    ctx.shared["dicts"] = plans
    return plans


def dict_edits(ctx: FileContext, plan: DictPlan, code: Code) -> list[Edit]:
    new = ctx.spec.parameter.name
    edits = [
        side for side in plan.result.edits if ctx.once("side", side.kind, side.anchor, side.text)
    ]
    key = ctx.text(plan.key)
    edits.append(
        ctx.edit(
            EditKind.DICT_ENTRY,
            plan.node,
            plan.result.text,
            f"dict carries the features under {key} without `{new}`",
            plan.result.how,
            code=code,
            after=key,
            extra=_quote(key, new),
        )
    )
    return edits
