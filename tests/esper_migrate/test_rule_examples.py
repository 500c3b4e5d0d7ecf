"""One test runs every rule's and every derivation's own examples through the whole engine:
apply gives the exact after (and nothing more on a second run), and check reports exactly the
expected findings with their fix text (or the reason they cannot be fixed)."""

from __future__ import annotations

import importlib
import io
import json
import pkgutil
from pathlib import Path

import pytest

import esper_migrate.derive
from esper_migrate.check import CheckOptions, run_check
from esper_migrate.engine import run_apply
from esper_migrate.formats import OutputFormat
from esper_migrate.records import Code
from esper_migrate.rule import Example, all_rules
from esper_migrate.spec import load_spec

SPEC = load_spec()


def _derivations() -> list[tuple[str, list[Example]]]:
    out = []
    for info in pkgutil.iter_modules(esper_migrate.derive.__path__):
        module = importlib.import_module(f"esper_migrate.derive.{info.name}")
        out.append((info.name, list(module.EXAMPLES)))
    return out


CASES = [
    pytest.param(example, id=f"{rule.CODE}-{i}")
    for rule in all_rules()
    for i, example in enumerate(rule.EXAMPLES)
] + [
    pytest.param(example, id=f"derive-{name}-{i}")
    for name, examples in _derivations()
    for i, example in enumerate(examples)
]


def test_every_rule_is_discovered_documented_and_has_examples() -> None:
    assert {rule.CODE for rule in all_rules()} == set(Code)
    for rule in all_rules():
        assert rule.EXAMPLES, f"{rule.CODE} carries no examples"
        assert any(ex.findings for ex in rule.EXAMPLES), f"{rule.CODE}: no example flags"
        doc = rule.doc()
        for section in ("## What it does", "## Why is this bad?", "## Example", "## Fix"):
            assert section in doc, (rule.CODE, section)
    for name, examples in _derivations():
        assert examples, f"derivation {name} carries no examples"


def _check(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    monkeypatch.chdir(root)
    out, err = io.StringIO(), io.StringIO()
    code = run_check(
        CheckOptions(paths=(Path("."),), fmt=OutputFormat.JSON, use_cache=False), out, err
    )
    assert code in (0, 1), err.getvalue()
    rows: list[dict[str, object]] = json.loads(out.getvalue())
    return rows


@pytest.mark.parametrize("example", CASES)
def test_example(example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "example.py"
    path.write_text(example.before, encoding="utf-8")
    first = run_apply([tmp_path], SPEC)
    out = first.results[0].new.decode() if first.results else example.before
    assert out == (example.after if example.after is not None else example.before)
    reasons = [f"{u.message}: {u.reason}" for u in first.unresolved]
    if example.unresolved is None:
        assert reasons == []
    else:
        assert any(example.unresolved in r for r in reasons), reasons
    assert not first.errors
    if example.findings is not None:
        rows = _check(tmp_path, monkeypatch)
        assert len(rows) == len(example.findings), rows
        for row, expected in zip(rows, example.findings, strict=True):
            assert (row["line"], row["code"]) == (expected.line, expected.code), rows
            if expected.fix is not None:
                assert row["fix"] == expected.fix
            if expected.reason is not None:
                assert expected.reason in str(row["unfixable_reason"]), row
    # Idempotence: the migrated example plans nothing more.
    path.write_text(out, encoding="utf-8")
    second = run_apply([tmp_path], SPEC)
    assert [r.path for r in second.changed] == []


def test_rule_command_prints_the_doc() -> None:
    from typer.testing import CliRunner

    from esper_migrate.cli import app

    result = CliRunner().invoke(app, ["rule", "EM004"])
    assert result.exit_code == 0
    assert "# positional-slide (EM004)" in result.output
    assert "## Why is this bad?" in result.output
    unknown = CliRunner().invoke(app, ["rule", "EM999"])
    assert unknown.exit_code == 2
