"""EM006 companion-unused: a producer's companion is discarded while the features reach a call
that needs it.

``states, _bp_indices = batch_obs_to_features(...)`` (or ``_``, or through a local wrapper)
followed by a target call that lacks the argument: one root cause, one finding on the discarded
name, whose fix renames it (with every use) and passes it. Features that never reach a target
(a warm-up loop feeding a scripted policy) lose nothing by dropping it and are not flagged.
"""

from __future__ import annotations

from esper_migrate.context import FileContext
from esper_migrate.derive import Derivation
from esper_migrate.plan.calls import Verdict, add_call_unit, analyse
from esper_migrate.records import Code, EditKind
from esper_migrate.rule import Example, Expected, Rule, edited

_NET = """\
class FactoredRecurrentActorCritic:
    def get_action(self, features, blueprint_indices, hidden=None): ...


"""

_ROLLOUT = (
    _NET
    + """\
def rollout(net: FactoredRecurrentActorCritic, batch):
    states, _bp_indices = batch_obs_to_features(batch)
    return net.get_action(states)
"""
)
_BOOTSTRAP = (
    _NET
    + """\
def _features(env):
    return batch_obs_to_features([env])


def bootstrap(net: FactoredRecurrentActorCritic, env):
    obs, _ = _features(env)
    return net.get_action(obs, None)
"""
)


def _renamed(before: str, line: int, fix: str, *changes: tuple[str, str]) -> Example:
    return Example(
        before=before, after=edited(before, *changes), findings=(Expected(line, "EM006", fix),)
    )


EXAMPLES = (
    _renamed(
        _ROLLOUT,
        6,
        "rename `_bp_indices` to `bp_indices` (line 6); "
        "pass `blueprint_indices=bp_indices` right after `states`",
        ("states, _bp_indices", "states, bp_indices"),
        ("(states)", "(states, blueprint_indices=bp_indices)"),
    ),
    _renamed(
        _BOOTSTRAP,
        10,
        "rename `_` to `blueprint_indices` (line 10); "
        "pass `blueprint_indices` positionally right after `obs`",
        ("obs, _ =", "obs, blueprint_indices ="),
        ("(obs, None)", "(obs, blueprint_indices, None)"),
    ),
    Example(
        # The features never reach a target: dropping the companion loses nothing.
        before="""\
class ScriptedPolicy:
    def get_action(self, obs, epoch=0): ...


def warmup(scripted: ScriptedPolicy, batch, normalizer):
    obs, _ = batch_obs_to_features(batch)
    normalizer.update(obs)
    return scripted.get_action(obs[0], 0)
""",
        findings=(),
    ),
)


class CompanionUnused(Rule):
    CODE = Code.COMPANION_UNUSED
    NAME = "companion-unused"
    SUMMARY = "A producer's companion is discarded while its features reach a call that needs it."
    DOC = """
## What it does
Finds a producer's result unpacked with the companion discarded (`_bp_indices`, `_`) where the
features go on to a target call that lacks the new argument.

## Why is this bad?
The value the call needs was in hand and thrown away; without it the call fails (or a value
must be invented).

## Example
```python
states, _bp_indices = batch_obs_to_features(signals)
value = policy.get_value(states)
```

Use instead:
```python
states, bp_indices = batch_obs_to_features(signals)
value = policy.get_value(states, blueprint_indices=bp_indices)
```

## Fix
The discarded name is renamed with every use (`_bp_indices` -> `bp_indices`; a bare `_`
becomes the features name with its stem replaced) and passed at the call, as one unit.

## Fix safety
Safe: the rename is refused when the new name is taken in the scope.
"""
    EXAMPLES = EXAMPLES

    def plan(self, ctx: FileContext) -> None:
        new = ctx.spec.parameter.name
        for plan in analyse(ctx):
            if plan.verdict is Verdict.MIGRATED or not plan.renames:
                continue
            assert isinstance(plan.result, Derivation)
            rename = next(e for e in plan.result.edits if e.kind is EditKind.RENAME)
            message = (
                f"the companion `{rename.after}` is discarded while its features reach "
                f"{plan.site.where}, which needs `{new}`"
            )
            suggestion = f"rename `{rename.after}` and pass it"
            add_call_unit(ctx, plan, self.CODE, message, suggestion, at=rename)
