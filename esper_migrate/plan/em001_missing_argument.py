"""EM001 missing-argument: a call to a target method that binds only the old signature.

Also the dict literals that carry the features under a features key without the companion
(the lookup that later feeds a call needs the entry).
"""

from __future__ import annotations

from esper_migrate.context import FileContext
from esper_migrate.plan.calls import (
    Verdict,
    add_call_unit,
    analyse,
    analyse_dicts,
    dict_edits,
)
from esper_migrate.records import Code, Tier
from esper_migrate.rule import Example, Expected, Rule, edited, get_action_example

_NET = """\
class FactoredRecurrentActorCritic:
    def get_action(self, features, {new}hidden=None, masks=None):
        return features


class ScriptedPolicy:
    def get_action(self, obs):
        return obs


"""

_BUFFER_TEST = """\
import torch


class TamiyoRolloutBuffer:
    def __init__(self, n, num_slots):
        self.states = torch.zeros(n, 50)
        self.blueprint_indices = torch.full((n, num_slots), -1, dtype=torch.long)

    def add(self, env_id, state, blueprint_indices):
        self.states[env_id] = state
        self.blueprint_indices[env_id] = blueprint_indices


def test_add():
    TamiyoRolloutBuffer(n=2, num_slots=4).add(env_id=0, state=torch.randn(50))
"""

EXAMPLES = (
    get_action_example(
        """\
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
        ("(self, features, hidden", "(self, features, blueprint_indices, hidden"),
        ("            features,\n", "            features,\n            blueprint_indices,\n"),
        net=_NET,
    ),
    get_action_example(
        """\
def act(policy, signals):
    states, bp = batch_obs_to_features(signals)
    return policy.get_action(states, masks=None)
""",
        ("(states, masks=None)", "(states, blueprint_indices=bp, masks=None)"),
        findings=(
            Expected(2, "EM002", fix="insert parameter `blueprint_indices` after `features`"),
            Expected(13, "EM001", fix="pass `blueprint_indices=bp` right after `states`"),
        ),
        net=_NET,
    ),
    get_action_example(
        """\
def act(net: FactoredRecurrentActorCritic, states):
    return net.get_action(states)
""",
        unresolved="`states` is a parameter of `act`, which is not a target",
        net=_NET,
    ),
    Example(
        # Features built in place in a test: the companion is built in place too, its last
        # dimension the `num_slots=` of the visible storage constructor.
        before=_BUFFER_TEST,
        after=edited(
            _BUFFER_TEST,
            (
                "state=torch.randn(50))",
                "state=torch.randn(50), blueprint_indices=torch.randint(0, 13, (4,)))",
            ),
        ),
        findings=(
            Expected(
                15,
                "EM001",
                fix="pass `blueprint_indices=torch.randint(0, 13, (4,))` right after "
                "`torch.randn(50)`",
            ),
        ),
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
    Example(
        before="""\
def rollout(signals, num_envs):
    states_batch, blueprint_indices_batch = batch_obs_to_features(signals)
    transitions = []
    for i in range(num_envs):
        transitions.append({"state": states_batch[i].detach(), "reward": 0.0})
    return transitions
""",
        after="""\
def rollout(signals, num_envs):
    states_batch, blueprint_indices_batch = batch_obs_to_features(signals)
    transitions = []
    for i in range(num_envs):
        transitions.append({"state": states_batch[i].detach(), "blueprint_indices": blueprint_indices_batch[i].detach(), "reward": 0.0})
    return transitions
""",
    ),
    Example(
        before="""\
def config(obs):
    return {"obs": obs, "name": "x"}
""",
    ),
)


class MissingArgument(Rule):
    CODE = Code.MISSING_ARGUMENT
    NAME = "missing-argument"
    SUMMARY = "A call to a migrated method does not pass the new argument."
    DOC = """
## What it does
Finds calls to a target method (a spec class or protocol, an implementer, a storage `add`)
whose arguments bind only the old signature: no value reaches the new parameter.

## Why is this bad?
Once the definition gains the parameter, the call raises `TypeError` (or, where the new
parameter has a default, silently runs without the value).

## Example
```python
states, bp = batch_obs_to_features(signals)
action = policy.get_action(states, masks=masks)
```

Use instead:
```python
states, bp = batch_obs_to_features(signals)
action = policy.get_action(states, blueprint_indices=bp, masks=masks)
```

## Fix
The value is derived from the call's own features argument by data flow (producer unpacking,
local wrappers, transforms, subscripts and `.to()` chains, dict lookups, the enclosing target's
parameter, a synthesised test value); it is passed positionally when a positional argument
follows the features, else by keyword. Where nothing derives it, the call is reported.

## Fix safety
Safe: the value is the companion of the features the call already passes, never invented.
"""
    EXAMPLES = EXAMPLES

    def plan(self, ctx: FileContext) -> None:
        new = ctx.spec.parameter.name
        for d in analyse_dicts(ctx):
            edits = dict_edits(ctx, d, self.CODE)
            ctx.add_unit(ctx.unit(d.node, self.CODE, Tier.RESOLVED, edits[-1].reason, edits))
        for plan in analyse(ctx):
            if plan.verdict is Verdict.MISSING and not plan.renames:
                add_call_unit(
                    ctx,
                    plan,
                    self.CODE,
                    f"call to {plan.site.where} lacks `{new}`",
                    f"pass `{new}=<the companion of the features>`",
                )
