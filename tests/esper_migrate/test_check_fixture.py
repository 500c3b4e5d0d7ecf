"""`check` on the fixture codebases: exactly the planted findings on partial/, nothing on the
look-alikes, a clean golden after/, and the rules' own flagged/not-flagged examples."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from esper_migrate.check import CheckOptions, run_check
from esper_migrate.engine import run_apply
from esper_migrate.formats import OutputFormat
from esper_migrate.spec import load_spec

HERE = Path(__file__).parent
PHASE4 = HERE / "fixtures" / "phase4"
Markers = tuple[dict[tuple[str, int], frozenset[str]], set[tuple[str, int]]]


def _check_json(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[dict[str, object]]]:
    monkeypatch.chdir(root)
    out, err = io.StringIO(), io.StringIO()
    code = run_check(
        CheckOptions(paths=(Path("."),), fmt=OutputFormat.JSON, use_cache=False), out, err
    )
    assert code in (0, 1), err.getvalue()
    return code, json.loads(out.getvalue())


def test_partial_reports_exactly_the_planted_findings(
    partial_markers: Markers, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted, lookalikes = partial_markers
    assert planted, "the partial fixture has no planted markers"
    code, rows = _check_json(PHASE4 / "partial", monkeypatch)
    reported = {(str(r["path"]), int(r["line"]), str(r["code"])) for r in rows}  # type: ignore[call-overload]
    expected = {(path, line, c) for (path, line), codes in planted.items() for c in codes}
    on_lookalikes = {r for r in reported if (r[0], r[1]) in lookalikes}
    assert not on_lookalikes, f"look-alikes flagged: {sorted(on_lookalikes)}"
    assert sorted(expected - reported) == [], "planted findings missed"
    assert sorted(reported - expected) == [], "findings that were not planted"
    assert code == 1
    for row in rows:  # each finding says what apply does, or why it cannot
        assert row["fix"] or row["unfixable_reason"], row


def test_golden_after_reports_only_what_apply_left_unresolved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """after/ is apply's output: every fixable finding is gone; what remains is exactly the
    site apply reported as unresolved (the fixture keeps one on purpose), unfixable."""
    from esper_migrate.engine import run_apply
    from esper_migrate.spec import load_spec

    code, rows = _check_json(PHASE4 / "after", monkeypatch)
    unresolved = {
        (Path(u.path).as_posix(), u.line) for u in run_apply(["."], load_spec()).unresolved
    }
    assert unresolved, "the golden fixture keeps one unresolved site"
    assert {(r["path"], r["line"]) for r in rows} == unresolved
    assert all(r["fix"] is None and r["unfixable_reason"] for r in rows), rows
    assert {r["code"] for r in rows} <= {"EM001", "EM004"}
    assert code == 1


def test_after_apply_and_the_reported_hand_edit_check_is_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's "after apply, check is clean": once the one site apply reported is edited
    as its suggestion says, nothing is left."""
    import shutil

    tree = tmp_path / "after"
    shutil.copytree(PHASE4 / "after", tree)
    target = tree / "src/esper/simic/training/vectorized.py"
    text = target.read_text()
    before_edit = (
        "    policy: PolicyBundle, features: torch.Tensor, masks: dict[str, torch.Tensor]\n"
    )
    after_edit = (
        "    policy: PolicyBundle,\n"
        "    features: torch.Tensor,\n"
        "    blueprint_indices: torch.Tensor,\n"
        "    masks: dict[str, torch.Tensor],\n"
    )
    call = "policy.forward(features, masks)"
    assert text.count(before_edit) == 1 and text.count(call) == 1
    text = text.replace(before_edit, after_edit)
    text = text.replace(call, "policy.forward(features, blueprint_indices, masks)")
    target.write_text(text)
    code, rows = _check_json(tree, monkeypatch)
    assert rows == []
    assert code == 0


def test_before_reports_only_what_apply_fixes_or_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    code, rows = _check_json(PHASE4 / "before", monkeypatch)
    assert code == 1
    assert all(r["fix"] or r["unfixable_reason"] for r in rows)
    # One finding per planned unit with the unit's fix text, and every edit apply makes belongs
    # to exactly one of them.
    applied = run_apply([PHASE4 / "before"], load_spec())
    units = [u for r in applied.results for u in r.plan.units if u.resolved]
    planned = sorted(
        (Path(u.path).relative_to(PHASE4 / "before").as_posix(), u.line, str(u.code), u.fix)
        for u in units
    )
    fixed = sorted((r["path"], r["line"], r["code"], r["fix"]) for r in rows if r["fix"])
    assert fixed == planned != []
    assert sum(len(u.edits) for u in units) == sum(applied.sites_by_kind().values())
