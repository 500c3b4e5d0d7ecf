"""EM004 positional-slide: a positional call that binds the old and the migrated signature.

``policy.evaluate_actions(states, actions, masks, hidden)`` against ``(states,
blueprint_indices, actions, masks, hidden=None)`` raises nothing: ``actions`` lands in
``blueprint_indices`` and every later argument shifts by one.
"""

from __future__ import annotations

from esper_migrate.context import FileContext
from esper_migrate.plan.calls import Verdict, add_call_unit, analyse
from esper_migrate.records import Code
from esper_migrate.rule import Example, Expected, Rule

_NET = """\
class FactoredRecurrentActorCritic:
    def evaluate_actions(self, states, {new}actions, masks, hidden=None): ...


class PPOAgent:
    def __init__(self, network: FactoredRecurrentActorCritic) -> None:
        self.network = network

"""

EXAMPLES = (
    Example(
        before=_NET.format(new="blueprint_indices, ")
        + """\
    def update(self, batch, actions, masks, hidden):
        states, bp = batch_obs_to_features(batch)
        return self.network.evaluate_actions(states, actions, masks, hidden)
""",
        after=_NET.format(new="blueprint_indices, ")
        + """\
    def update(self, batch, actions, masks, hidden):
        states, bp = batch_obs_to_features(batch)
        return self.network.evaluate_actions(states, bp, actions, masks, hidden)
""",
        findings=(Expected(11, "EM004", fix="pass `bp` positionally right after `states`"),),
    ),
    Example(
        # Already migrated, in any spelling: never changed, never reported.
        before=_NET.format(new="blueprint_indices, ")
        + """\
    def update(self, batch, actions, masks, hidden, device):
        states, bp = batch_obs_to_features(batch)
        self.network.evaluate_actions(states, bp.to(device), actions, masks)
        return self.network.evaluate_actions(states, actions=actions, masks=masks, blueprint_indices=bp)
""",
        findings=(),
    ),
    Example(
        # Nothing says what `x` is: reported, never guessed.
        before=_NET.format(new="blueprint_indices, ")
        + """\
    def update(self, states, x, y, z):
        return self.network.evaluate_actions(states, x, y, z)
""",
        unresolved="nothing says whether `x`",
        findings=(Expected(10, "EM004", reason="nothing says whether `x`"),),
    ),
)


class PositionalSlide(Rule):
    CODE = Code.POSITIONAL_SLIDE
    NAME = "positional-slide"
    SUMMARY = "A positional call fits the old signature, so an argument slides into the new slot."
    DOC = """
## What it does
Finds positional calls to a target method that bind both the old and the migrated signature,
where the argument in the new slot is not the companion and the arguments line up with the old
parameters (more of them are spelled like the parameter they bind under the old signature than
under the new one), or the slot holds a literal.

## Why is this bad?
Nothing fails: `masks` silently becomes `blueprint_indices`, every later argument shifts by
one, and the policy trains on garbage.

## Example
```python
policy.evaluate_actions(states, actions, masks, hidden)
```

Use instead:
```python
policy.evaluate_actions(states, blueprint_indices, actions, masks, hidden)
```

## Fix
The companion of the features is inserted positionally right after them. An argument in the
new slot that derives from the companion (`bp`, `bp.to(device)`, `data["blueprint_indices"]`,
an int64 test tensor) means the call is migrated already; a call whose arguments line up with
neither signature is reported, never guessed.

## Fix safety
Safe: the value is derived by data flow from the call's own features argument.
"""
    EXAMPLES = EXAMPLES

    def plan(self, ctx: FileContext) -> None:
        new = ctx.spec.parameter.name
        for plan in analyse(ctx):
            if plan.verdict not in (Verdict.SLIDE, Verdict.UNCLEAR) or plan.renames:
                continue
            assert plan.slot is not None
            slot, old = plan.slot
            text = ctx.text(slot)
            if plan.verdict is Verdict.SLIDE:
                message = (
                    f"positional call to {plan.site.where} fits the old signature: `{text}` "
                    f"(the old `{old}`) slides into `{new}` and every later argument shifts"
                )
                suggestion = f"insert the companion of the features positionally before `{text}`"
                add_call_unit(ctx, plan, self.CODE, message, suggestion)
                continue
            message = f"positional call to {plan.site.where} binds `{text}` to `{new}`"
            ctx.report(
                plan.site.node,
                self.CODE,
                plan.site.tier,
                message,
                f"nothing says whether `{text}` is the companion of the features or the old `{old}`",
                f"pass `{new}=...` (or `{old}=...`) by keyword",
            )
