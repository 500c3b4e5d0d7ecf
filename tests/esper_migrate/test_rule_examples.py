"""One test runs every rule's own before/after examples through the whole engine."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from esper_migrate.engine import run_apply
from esper_migrate.rules import RULE_MODULES, Example
from esper_migrate.spec import load_spec

SPEC = load_spec()

CASES = [
    pytest.param(example, id=f"{name}-{i}")
    for name in RULE_MODULES
    for i, example in enumerate(importlib.import_module(f"esper_migrate.rules.{name}").EXAMPLES)
]


def test_every_rule_has_examples() -> None:
    for name in RULE_MODULES:
        module = importlib.import_module(f"esper_migrate.rules.{name}")
        assert module.EXAMPLES, f"rule {name} carries no examples"


@pytest.mark.parametrize("example", CASES)
def test_rule_example(example: Example, tmp_path: Path) -> None:
    path = tmp_path / "example.py"
    path.write_text(example.before, encoding="utf-8")
    first = run_apply([tmp_path], SPEC)
    out = first.results[0].new.decode() if first.results else example.before
    assert out == (example.after if example.after is not None else example.before)
    reasons = [u.reason for u in first.unresolved]
    if example.unresolved is None:
        assert reasons == []
    else:
        assert any(example.unresolved in r for r in reasons), reasons
    assert not first.errors
    # Idempotence: the migrated example plans nothing more.
    path.write_text(out, encoding="utf-8")
    second = run_apply([tmp_path], SPEC)
    assert [r.path for r in second.changed] == []
