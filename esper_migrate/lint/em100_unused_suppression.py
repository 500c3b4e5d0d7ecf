"""EM100 unused-suppression: a suppression comment that silences nothing (ruff's RUF100)."""

from __future__ import annotations

from esper_migrate.lint import CheckContext
from esper_migrate.records import Code, Finding, Tier
from esper_migrate.rule import Example, Expected, LintRule
from esper_migrate.suppress import directives

_NET = """\
class FactoredRecurrentActorCritic:
    def get_action(self, features, blueprint_indices, hidden=None): ...


def act(net: FactoredRecurrentActorCritic, states):
"""


class UnusedSuppression(LintRule):
    CODE = Code.UNUSED_SUPPRESSION
    NAME = "unused-suppression"
    SUMMARY = "A suppression comment silences no finding."
    DOC = """
## What it does
Finds `# esper-migrate: ignore[...]` comments (and bare `# esper-migrate: ignore`) whose
lines carry no finding of the codes they name, as ruff's RUF100 does for `# noqa`.

## Why is this bad?
A stale suppression hides the next real finding on that line, and tells the reader a problem
is there when there is none.

## Example
```python
value = net.get_value(states, bp)  # esper-migrate: ignore[EM001]
```

Use instead:
```python
value = net.get_value(states, bp)
```

## Fix
Remove the comment (or the codes it names that never fire there). Not automatic: `apply`
writes code, not comments.

## Fix safety
Not applicable (no automatic fix).
"""
    EXAMPLES = (
        Example(
            before=_NET + "    return net.get_action(states)  # esper-migrate: ignore[EM001]\n",
            findings=(),
        ),
        Example(
            before=_NET
            + "    return net.get_action(states, blueprint_indices=None)  # esper-migrate: ignore[EM001]\n",
            findings=(Expected(6, "EM100", reason="no EM001 finding"),),
        ),
    )

    def lint(self, ctx: CheckContext) -> list[Finding]:
        found: list[Finding] = []
        for directive in directives(ctx.source):
            hits = {
                str(f.code)
                for f in ctx.findings
                if f.line in directive.lines and f.code is not self.CODE
            }
            unused = (
                sorted(directive.codes - hits)
                if directive.codes is not None
                else ([] if hits else ["any code"])
            )
            if not unused:
                continue
            what = ", ".join(unused)
            found.append(
                Finding(
                    path=ctx.path,
                    line=directive.line,
                    col=directive.col + 1,
                    code=self.CODE,
                    message=f"suppression of {what} is unused",
                    tier=Tier.RESOLVED,
                    unfixable_reason=f"no {what} finding on the line it covers; "
                    "suggested edit: remove it",
                )
            )
        return found
