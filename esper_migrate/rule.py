"""The rule model (Fixit's): one object per finding code, discovered, documented, with examples.

A rule lives in one module of ``esper_migrate.plan`` (it plans edits ``apply`` makes and
``check`` reports: one unit per root cause, its finding's fix text rendered from its edits) or
of ``esper_migrate.lint`` (check only: what ``apply`` cannot express). It carries ``CODE``, a
``NAME``, a ``SUMMARY``, a ``DOC`` in ruff's sections (what it does, why is this bad, example,
fix, fix safety) and ``EXAMPLES``: before, the exact after, and the findings ``check`` reports
on before, each with its fix text (or the reason it cannot be fixed).
``tests/esper_migrate/test_rule_examples.py`` runs every rule's examples; ``esper-migrate rule
CODE`` prints the doc. Derivations (``esper_migrate.derive``) carry examples of the same shape.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, ClassVar

from esper_migrate.records import Code, Finding

if TYPE_CHECKING:
    from esper_migrate.context import FileContext
    from esper_migrate.lint import CheckContext


@dataclass(frozen=True)
class Expected:
    """A finding an example must produce: its line and code, and its fix text exactly (or a
    substring of the reason it cannot be fixed)."""

    line: int
    code: str
    fix: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Example:
    """A self-contained module and what the engine must make of it.

    ``after`` is the exact expected output (None: the file must stay unchanged). ``unresolved``
    is a substring of the reason of a site the engine must report instead of changing.
    ``findings`` (rules only) are exactly what ``check`` reports on ``before``.
    """

    before: str
    after: str | None = None
    unresolved: str | None = None
    findings: tuple[Expected, ...] | None = None


def edited(before: str, *changes: tuple[str, str]) -> str:
    """``before`` with each ``(old, new)`` change made (``old`` must occur exactly once): an
    example's after written as the edits apply makes, so the two cannot drift apart."""
    after = before
    for old, new in changes:
        if after.count(old) != 1:
            raise ValueError(f"edited: {old!r} occurs {after.count(old)} times, expected once")
        after = after.replace(old, new)
    return after


#: The callee most examples share: a spec target whose ``get_action`` gains the parameter
#: (format ``new`` with ``""`` before and ``"blueprint_indices, "`` after).
GET_ACTION_NET = """\
class FactoredRecurrentActorCritic:
    def get_action(self, state, {new}hidden=None):
        return state


"""


def get_action_example(
    body: str,
    *changes: tuple[str, str],
    unresolved: str | None = None,
    findings: tuple[Expected, ...] | None = None,
    net: str = GET_ACTION_NET,
) -> Example:
    """An example calling ``net`` (a template whose ``{new}`` marks where the parameter goes):
    ``body`` before, and after with the network migrated and ``changes`` made to it."""
    return Example(
        before=net.format(new="") + body,
        after=net.format(new="blueprint_indices, ") + edited(body, *changes),
        unresolved=unresolved,
        findings=findings,
    )


class Rule:
    """One finding code: its documentation, its examples, and its planning or lint logic."""

    CODE: ClassVar[Code]
    NAME: ClassVar[str]
    SUMMARY: ClassVar[str]
    DOC: ClassVar[str]
    EXAMPLES: ClassVar[tuple[Example, ...]] = ()
    #: True: ``plan`` adds units that ``apply`` makes; False: ``lint`` reports for ``check``.
    PLANS: ClassVar[bool] = True

    def plan(self, ctx: FileContext) -> None:
        """Add this rule's units (edits, or the reason none can be made) to ``ctx``."""

    def lint(self, ctx: CheckContext) -> list[Finding]:
        """This rule's findings on one file (check-only rules)."""
        return []

    @classmethod
    def doc(cls) -> str:
        """The text ``esper-migrate rule CODE`` prints (as ``ruff rule`` does)."""
        kind = "apply fixes it; check reports it" if cls.PLANS else "check only"
        return f"# {cls.NAME} ({cls.CODE})\n\n{cls.SUMMARY}\n\n*{kind}*\n\n{cls.DOC.strip()}\n"


class LintRule(Rule):
    """A check-only rule: it reports what ``apply`` cannot express."""

    PLANS = False


_PACKAGES = ("esper_migrate.plan", "esper_migrate.lint")


@cache
def all_rules() -> tuple[type[Rule], ...]:
    """Every rule of the planning and lint packages, in code order (found, not listed)."""
    found: dict[Code, type[Rule]] = {}
    for package_name in _PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package_name}.{info.name}")
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, Rule)
                    and value not in (Rule, LintRule)
                    and value.__module__ == module.__name__
                ):
                    if value.CODE in found:
                        raise RuntimeError(
                            f"two rules for {value.CODE}: {value} and {found[value.CODE]}"
                        )
                    found[value.CODE] = value
    return tuple(found[code] for code in sorted(found))


def rule_for(code: Code | str) -> type[Rule]:
    for rule in all_rules():
        if code == rule.CODE:
            return rule
    raise KeyError(code)


def planning_rules() -> tuple[Rule, ...]:
    return tuple(rule() for rule in all_rules() if rule.PLANS)


def lint_rules() -> tuple[Rule, ...]:
    return tuple(rule() for rule in all_rules() if not rule.PLANS)
