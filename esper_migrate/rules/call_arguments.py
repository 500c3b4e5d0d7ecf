"""Calls to target methods gain the argument, right after the features argument.

The receiver is resolved through the index (``self._network`` assigned or annotated, ``agent.policy``
annotated, annotated parameters, ``net = FactoredRecurrentActorCritic(...)``; ``net(state)`` calls
``forward``): tier ``resolved``. An unresolvable receiver matches by method name and arity: tier
``name``. A receiver of a known class outside the spec is a look-alike and is never touched.
The value goes in positionally when a later argument is positional, else as a keyword.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from esper_migrate.context import FileContext, Scope
from esper_migrate.flow import Derivation, derive
from esper_migrate.index import FunctionInfo, ParamInfo
from esper_migrate.records import Code, Edit, EditKind, Tier
from esper_migrate.rules import Example

_NET = """\
class FactoredRecurrentActorCritic:
    def get_action(self, features, {new}hidden=None, masks=None):
        return features


class ScriptedPolicy:
    def get_action(self, obs):
        return obs


"""

EXAMPLES = [
    Example(
        before=_NET.format(new="")
        + """\
class LSTMPolicyBundle:
    def __init__(self, network: FactoredRecurrentActorCritic):
        self._network = network
        self._scripted = ScriptedPolicy()

    def get_action(self, features, hidden=None, masks=None):
        self._scripted.get_action(features)
        return self._network.get_action(
            features,
            hidden,
            masks=masks,
        )
""",
        after=_NET.format(new="blueprint_indices, ")
        + """\
class LSTMPolicyBundle:
    def __init__(self, network: FactoredRecurrentActorCritic):
        self._network = network
        self._scripted = ScriptedPolicy()

    def get_action(self, features, blueprint_indices, hidden=None, masks=None):
        self._scripted.get_action(features)
        return self._network.get_action(
            features,
            blueprint_indices,
            hidden,
            masks=masks,
        )
""",
    ),
    Example(
        before=_NET.format(new="")
        + """\
def act(policy, signals):
    states, bp = batch_obs_to_features(signals)
    return policy.get_action(states, masks=None)
""",
        after=_NET.format(new="blueprint_indices, ")
        + """\
def act(policy, signals):
    states, bp = batch_obs_to_features(signals)
    return policy.get_action(states, blueprint_indices=bp, masks=None)
""",
    ),
    Example(
        before=_NET.format(new="")
        + """\
def act(net: FactoredRecurrentActorCritic, states):
    return net.get_action(states)
""",
        after=_NET.format(new="blueprint_indices, ")
        + """\
def act(net: FactoredRecurrentActorCritic, states):
    return net.get_action(states)
""",
        unresolved="`states` is a parameter of `act`, which is not a target",
    ),
    Example(
        # Look-alikes: an unrelated nn.Module's forward, and the old call kept on purpose
        # inside pytest.raises(TypeError), are never touched.
        before="""\
import pytest
from torch import nn


class Encoder(nn.Module):
    def forward(self, state, hidden=None):
        return state


class Model(nn.Module):
    def __init__(self):
        self.encoder = Encoder()

    def run(self, signals):
        states, bp = batch_obs_to_features(signals)
        return self.encoder(states), self.encoder.forward(states, None)


def test_old_call_fails(net: FactoredRecurrentActorCritic, signals):
    states, bp = batch_obs_to_features(signals)
    with pytest.raises(TypeError):
        net.get_action(states)
""",
    ),
]


@dataclass(frozen=True)
class CallSite:
    """A call resolved to a target method (what ``check`` needs to judge it)."""

    node: ast.Call
    cls: str | None
    method: str
    definition: FunctionInfo
    tier: Tier
    storage_add: bool


def binds(params: list[ParamInfo], n_positional: int, keywords: list[str]) -> bool:
    """Whether a call with these arguments binds to the signature (no extras, no missing)."""
    positional = [p for p in params if p["kind"] in ("pos", "posonly")]
    has_vararg = any(p["kind"] == "vararg" for p in params)
    has_kwarg = any(p["kind"] == "kwarg" for p in params)
    if n_positional > len(positional) and not has_vararg:
        return False
    filled = {p["name"] for p in positional[:n_positional]}
    by_keyword = {p["name"] for p in params if p["kind"] in ("pos", "kwonly")}
    for k in keywords:
        if k in filled or (k not in by_keyword and not has_kwarg):
            return False
        filled.add(k)
    return all(
        p["name"] in filled
        for p in params
        if not p["has_default"] and p["kind"] in ("pos", "posonly", "kwonly")
    )


def _without(params: list[ParamInfo], name: str) -> list[ParamInfo]:
    return [p for p in params if p["name"] != name]


def resolve_call(ctx: FileContext, scope: Scope, call: ast.Call) -> CallSite | None:
    """The target method a call reaches, with the tier of the match; None if it reaches none."""
    index = ctx.index
    line = call.lineno
    func = call.func
    storage_adds = {s.add_method for s in ctx.spec.storage}
    method_names = ctx.spec.target_methods | storage_adds
    owner: str | None = None
    if isinstance(func, ast.Attribute) and func.attr in method_names:
        method = func.attr
        owner = ctx.expr_type(func.value, scope, line)
        if owner is not None and index.is_known_class(owner):
            target = index.is_target(owner, method)
            if target is None:
                return None  # a method of a known class outside the spec: a look-alike
            definition = index.method(owner, method) or index.method(target.origin, method)
            if definition is None:
                return None
            return CallSite(call, owner, method, definition, Tier.RESOLVED, target.how == "storage")
        return _by_name(ctx, scope, call, method, method in storage_adds)
    # ``net(state)`` and ``self._network(state)``: __call__ of a target instance is forward.
    callee_type = ctx.expr_type(func, scope, line)
    if callee_type is not None and index.is_target(callee_type, "forward") is not None:
        definition = index.method(callee_type, "forward")
        if definition is not None:
            return CallSite(call, callee_type, "forward", definition, Tier.RESOLVED, False)
    return None


def _by_name(
    ctx: FileContext, scope: Scope, call: ast.Call, method: str, storage_add: bool
) -> CallSite | None:
    new = ctx.spec.parameter.name
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
    for fn in definitions:
        features = ctx.features_param(fn, storage_add)
        if storage_add and features not in keywords:
            continue  # ``add`` is too common a name to match without its features keyword
        params = fn["params"]
        if binds(_without(params, new), len(call.args), [k for k in keywords if k != new]):
            return CallSite(call, None, method, fn, Tier.NAME, storage_add)
        if binds(params, len(call.args), keywords):
            # Binding only the new signature is evidence only when the argument is there
            # (otherwise the first run, before the definition changed, would not have matched).
            site = CallSite(call, None, method, fn, Tier.NAME, storage_add)
            if has_argument(ctx, site, scope):
                return site
    return None


def has_argument(ctx: FileContext, site: CallSite, scope: Scope | None = None) -> bool:
    """Whether the call already passes the new argument (idempotence, and no double insert).

    Against a definition that has the parameter already, a positional argument in its slot
    counts only if it is the derived companion or names the parameter (``blueprint_indices``,
    ``data["blueprint_indices"]``); anything else there slid in from the old signature.
    """
    new = ctx.spec.parameter.name
    call = site.node
    if any(k.arg == new for k in call.keywords):
        return True
    if any(k.arg is None for k in call.keywords) or any(
        isinstance(a, ast.Starred) for a in call.args
    ):
        return True  # forwarded *args/**kwargs carry whatever the caller passed
    params = site.definition["params"]
    positional = [p["name"] for p in params if p["kind"] in ("pos", "posonly")]
    if new not in positional:
        return False
    slot = positional.index(new)
    if len(call.args) <= slot:
        return False
    in_slot = ctx.text(call.args[slot])
    if new in in_slot:
        return True
    located = features_argument(ctx, site)
    if located is not None and scope is not None:
        derived = derive(ctx, scope, located[1])
        if isinstance(derived, Derivation) and derived.text == in_slot:
            return True
    return False


def features_argument(ctx: FileContext, site: CallSite) -> tuple[int | str, ast.expr] | None:
    """The call's features argument: (positional index or keyword name, expression)."""
    fn = site.definition
    features = ctx.features_param(fn, site.storage_add)
    if features is None:
        return None
    new = ctx.spec.parameter.name
    positional = [
        p["name"] for p in fn["params"] if p["kind"] in ("pos", "posonly") and p["name"] != new
    ]
    i = positional.index(features)
    if len(site.node.args) > i:
        return i, site.node.args[i]
    for kw in site.node.keywords:
        if kw.arg == features:
            return features, kw.value
    return None


def plan_call(ctx: FileContext, scope: Scope, site: CallSite) -> None:
    call = site.node
    new = ctx.spec.parameter.name
    where = f"`{site.cls or '?'}.{site.method}`"
    located = features_argument(ctx, site)
    if located is None:
        ctx.report(
            call,
            Code.MISSING_ARGUMENT,
            site.tier,
            f"call to {where} passes no features argument",
            f"pass `{new}=<its companion>`",
        )
        return
    after, features = located
    result = derive(ctx, scope, features)
    if not isinstance(result, Derivation):
        ctx.report(
            call,
            Code.MISSING_ARGUMENT,
            site.tier,
            f"call to {where} lacks `{new}` and {result.reason}",
            result.suggestion or f"pass `{new}=<companion of {ctx.text(features)}>` right after it",
        )
        return
    positional = isinstance(after, int) and len(call.args) > after + 1
    for side in result.edits:
        if ctx.once("side", side.kind, side.anchor, side.text):
            ctx.add_edit(side)
    ctx.add_edit(
        Edit(
            kind=EditKind.ARGUMENT,
            path=ctx.path,
            line=call.lineno,
            col=ctx.char_col(call.lineno, call.col_offset),
            code=Code.MISSING_ARGUMENT,
            tier=site.tier,
            reason=f"call to {where} lacks `{new}`",
            derivation=result.how,
            anchor=ctx.span(call),
            text=result.text,
            after=after,
            positional=positional,
            extra=new,
        )
    )


def run(ctx: FileContext) -> list[tuple[CallSite, Scope]]:
    """Plan every call site; return the resolved sites (those already migrated included)."""
    sites: list[tuple[CallSite, Scope]] = []
    for node, scope in ctx.calls:
        site = resolve_call(ctx, scope, node)
        if site is None:
            continue
        sites.append((site, scope))
        if not has_argument(ctx, site, scope):
            plan_call(ctx, scope, site)
    return sites
