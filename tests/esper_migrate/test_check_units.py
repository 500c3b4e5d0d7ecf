"""The parts of `check` around the engine: config, formats, suppression, baseline, cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper_migrate.baseline import BaselineError, new_findings, write_baseline
from esper_migrate.cache import CheckCache
from esper_migrate.config import ConfigError, find_pyproject, load_config
from esper_migrate.formats import (
    OutputFormat,
    Reported,
    render,
    render_github,
    rule_docs,
    sarif_document,
)
from esper_migrate.records import Code, Finding, Tier
from esper_migrate.suppress import filter_suppressed, suppressions


def _finding(
    line: int = 3, code: Code = Code.MISSING_ARGUMENT, path: str = "src/a.py", **kw: object
) -> Finding:
    fields: dict[str, object] = {
        "path": path,
        "line": line,
        "col": 5,
        "code": code,
        "message": "call to get_action without blueprint_indices",
        "tier": Tier.RESOLVED,
        "fix": "pass blueprint_indices=bp_indices",
    }
    fields.update(kw)
    return Finding(**fields)  # type: ignore[arg-type]


# -- config ------------------------------------------------------------------------------------


def test_config_is_found_by_walking_up_and_paths_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.esper-migrate]\npaths = ["src"]\nexclude = ["legacy/**"]\n'
        'fail-tiers = ["resolved"]\nfail-on = ["EM001", "EM004"]\nspec = "m.toml"\n'
    )
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    # A closer pyproject without our table is skipped.
    (tmp_path / "src" / "pyproject.toml").write_text("[tool.ruff]\nline-length = 90\n")
    assert find_pyproject(nested) == tmp_path / "pyproject.toml"
    config = load_config(nested)
    assert config.root == tmp_path.resolve()
    assert config.paths == (tmp_path.resolve() / "src",)
    assert config.exclude == ("legacy/**",)
    assert config.spec == tmp_path.resolve() / "m.toml"
    assert config.fails(Code.MISSING_ARGUMENT, Tier.RESOLVED)
    assert not config.fails(Code.MISSING_ARGUMENT, Tier.NAME)
    assert not config.fails(Code.SIGNATURE_DRIFT, Tier.RESOLVED)


def test_config_defaults_fail_every_code_in_both_tiers(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config.source is None
    assert all(config.fails(code, tier) for code in Code for tier in Tier)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("paths = 'src'", "'paths' must be a list of strings"),
        ("fail-tiers = ['exact']", "'fail-tiers' has 'exact'"),
        ("fail-on = ['EM999']", "'fail-on' has 'EM999'"),
        ("colour = true", "unknown key 'colour'"),
        ("spec = 3", "'spec' must be a non-empty string"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, body: str, needle: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.esper-migrate]\n{body}\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml") as info:
        load_config(tmp_path)
    assert needle in str(info.value)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.esper-migrate\npaths = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(tmp_path)


# -- formats -----------------------------------------------------------------------------------


def _items() -> list[Reported]:
    return [
        Reported(_finding(), fails=True),
        Reported(
            _finding(
                7,
                Code.POSITIONAL_SLIDE,
                tier=Tier.NAME,
                fix=None,
                unfixable_reason="no companion for `obs` in scope",
            ),
            fails=False,
        ),
    ]


def test_text_format_has_location_code_tier_and_the_edit() -> None:
    out = render(_items(), OutputFormat.TEXT)
    lines = out.splitlines()
    assert lines[0] == (
        "src/a.py:3:5: EM001 call to get_action without blueprint_indices [resolved]"
    )
    assert lines[1].strip() == "fix: pass blueprint_indices=bp_indices"
    assert lines[2].endswith("[name] (not failing)")
    assert lines[3].strip() == "cannot fix: no companion for `obs` in scope"
    assert lines[-1] == "Found 2 findings (1 failing)."
    assert render([], OutputFormat.TEXT) == "All checks passed.\n"


def test_json_format_round_trips_every_field() -> None:
    rows = json.loads(render(_items(), OutputFormat.JSON))
    assert rows[0] == {
        "path": "src/a.py",
        "line": 3,
        "col": 5,
        "code": "EM001",
        "name": "missing-argument",
        "message": "call to get_action without blueprint_indices",
        "tier": "resolved",
        "fails": True,
        "fix": "pass blueprint_indices=bp_indices",
        "unfixable_reason": None,
    }
    assert rows[1]["fails"] is False


def test_statistics_count_per_code() -> None:
    items = [*_items(), Reported(_finding(9), fails=True)]
    text = render(items, OutputFormat.TEXT, statistics=True).splitlines()
    assert text[0].split() == ["2", "EM001", "missing-argument", "(2", "failing)"]
    assert text[1].split() == ["1", "EM004", "positional-slide", "(0", "failing)"]
    assert text[-1].split() == ["3", "total"]
    rows = json.loads(render(items, OutputFormat.JSON, statistics=True))
    assert rows[0] == {"code": "EM001", "name": "missing-argument", "count": 2, "failing": 2}


def test_github_annotations_escape_properties_and_data() -> None:
    finding = _finding(path="a,b:c.py", message="50% of\nit")
    out = render_github([Reported(finding, fails=True), _items()[1]]).splitlines()
    assert out[0].startswith("::error file=a%2Cb%3Ac.py,line=3,col=5,title=EM001 missing-argument")
    assert out[0].endswith("::50%25 of%0Ait%0Afix: pass blueprint_indices=bp_indices")
    assert out[1].startswith("::warning ")


def test_sarif_has_the_2_1_0_structure_and_rule_metadata() -> None:
    doc = sarif_document(_items())
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]  # type: ignore[index]
    driver = run["tool"]["driver"]
    assert [r["id"] for r in driver["rules"]] == [str(c) for c in Code]
    assert all(r["shortDescription"]["text"] and r["name"] for r in driver["rules"])
    first, second = run["results"]
    assert driver["rules"][first["ruleIndex"]]["id"] == first["ruleId"] == "EM001"
    assert first["level"] == "error" and second["level"] == "warning"
    region = first["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 3, "startColumn": 5}
    assert first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/a.py"
    assert set(rule_docs()) == set(Code)


# -- suppression -------------------------------------------------------------------------------


def test_suppression_on_the_line_and_on_a_comment_line_above() -> None:
    source = (
        "a = f(x)  # esper-migrate: ignore[EM001]\n"  # 1
        "# esper-migrate: ignore[EM004, em001]\n"  # 2
        "b = f(x)\n"  # 3
        "c = f(x)  # esper-migrate: ignore\n"  # 4
        "d = f(x)\n"  # 5: a trailing comment on line 4 does not reach here
    )
    table = suppressions(source)
    assert table[1] == frozenset({"EM001"})
    assert table[3] == frozenset({"EM004", "EM001"})
    assert table[4] is None
    assert 5 not in table
    findings = [
        _finding(1),
        _finding(1, Code.POSITIONAL_SLIDE),
        _finding(3),
        _finding(3, Code.COMPANION_UNUSED),
        _finding(4, Code.SIGNATURE_DRIFT),
        _finding(5),
    ]
    kept = filter_suppressed(findings, source)
    assert [(f.line, f.code) for f in kept] == [
        (1, Code.POSITIONAL_SLIDE),
        (3, Code.COMPANION_UNUSED),
        (5, Code.MISSING_ARGUMENT),
    ]


# -- baseline ----------------------------------------------------------------------------------


def test_baseline_survives_line_shifts_and_catches_new_duplicates(tmp_path: Path) -> None:
    texts = {
        "src/a.py": ["x = 1", "y = net.get_action(obs)", "z = net.get_action(obs)"],
    }

    def line_text(path: str, line: int) -> str:
        return texts[path][line - 1]

    baseline = tmp_path / "baseline.json"
    old = [_finding(2, path="src/a.py"), _finding(3, path="src/a.py")]
    # Paths are resolved relative to the cwd; use absolute ones to stay independent of it.
    old = [Finding(**{**_fields(f), "path": str(tmp_path / f.path)}) for f in old]
    texts = {str(tmp_path / "src/a.py"): texts["src/a.py"]}
    write_baseline(baseline, old, line_text)
    stored = json.loads(baseline.read_text())
    assert stored["findings"] == [
        {"path": "src/a.py", "code": "EM001", "text": "y = net.get_action(obs)", "count": 1},
        {"path": "src/a.py", "code": "EM001", "text": "z = net.get_action(obs)", "count": 1},
    ]
    # Two lines inserted above, and a third identical call added: only that one is new.
    path = str(tmp_path / "src/a.py")
    texts[path] = ["# a", "# b", "x = 1", *texts[path][1:], "z  =  net.get_action(obs)"]
    shifted = [Finding(**{**_fields(f), "line": f.line + 2}) for f in old]
    added = Finding(**{**_fields(old[1]), "line": 6})
    assert new_findings(baseline, [*shifted, added], line_text) == [added]


def test_baseline_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    missing_dir = tmp_path / "nodir" / "baseline.json"
    with pytest.raises(BaselineError, match="cannot write baseline"):
        write_baseline(missing_dir, [], lambda path, line: "")
    assert not (tmp_path / "nodir").exists()


def _fields(f: Finding) -> dict[str, object]:
    return {name: getattr(f, name) for name in Finding.__dataclass_fields__}


def test_missing_or_foreign_baseline_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="--write-baseline"):
        new_findings(tmp_path / "none.json", [], lambda p, n: "")
    (tmp_path / "other.json").write_text('{"version": 1}')
    with pytest.raises(BaselineError, match="not an esper-migrate baseline"):
        new_findings(tmp_path / "other.json", [], lambda p, n: "")


# -- cache -------------------------------------------------------------------------------------


def test_cache_round_trip_and_invalidation(tmp_path: Path) -> None:
    cache = CheckCache(tmp_path, "spec1")
    assert cache.unchanged_tree({"a.py": "h1"}, {"a.py"}) is None
    summary = {
        "path": "a.py",
        "version": 2,
        "classes": [],
        "functions": {},
        "error": None,
        "top_functions": [],
        "reexports": {},
    }
    cache.store_summary("a.py", "h1", summary)
    found = _finding(path="a.py")
    cache.replace_findings(
        "fp", {"a.py": ("h1", [found]), "b.py": ("h2", [])}, {"b.py": "does not parse"}
    )
    cache.save()
    assert (tmp_path / ".esper_migrate_cache" / ".gitignore").read_text().endswith("*\n")

    warm = CheckCache(tmp_path, "spec1")
    both = {"a.py", "b.py"}
    assert warm.unchanged_tree({"a.py": "h1", "b.py": "h2"}, both) == (
        {"a.py": [found], "b.py": []},
        {"b.py": "does not parse"},
    )
    assert warm.unchanged_tree({"a.py": "h1", "b.py": "CHANGED"}, both) is None
    assert warm.unchanged_tree({"a.py": "h1"}, {"a.py"}) is None  # a deleted file: new index
    assert warm.summary("a.py", "h1") == summary
    assert warm.summary("a.py", "other") is None
    assert warm.findings("a.py", "h1", "fp") == [found]
    assert warm.findings("a.py", "h1", "other-index") is None
    # Another spec (or tool version) never sees these entries.
    assert CheckCache(tmp_path, "spec2").unchanged_tree({"a.py": "h1", "b.py": "h2"}, both) is None
    assert CheckCache(tmp_path, "spec1", enabled=False).summary("a.py", "h1") is None


def test_corrupt_cache_is_ignored_and_repaired(tmp_path: Path) -> None:
    cache = CheckCache(tmp_path, "s")
    cache.replace_findings("fp", {"a.py": ("h", [])})
    cache.save()
    for file in (tmp_path / ".esper_migrate_cache").glob("*.json"):
        file.write_text("{not json")
    again = CheckCache(tmp_path, "s")
    assert again.unchanged_tree({"a.py": "h"}, {"a.py"}) is None
    again.replace_findings("fp", {"a.py": ("h", [])})
    again.save()
    assert CheckCache(tmp_path, "s").unchanged_tree({"a.py": "h"}, {"a.py"}) == ({"a.py": []}, {})


def test_text_says_the_engine_reason_once() -> None:
    finding = _finding(
        message="call lacks it", fix=None, unfixable_reason="call lacks it; suggested edit: x"
    )
    out = render([Reported(finding, fails=True)], OutputFormat.TEXT).splitlines()
    assert out[1].strip() == "cannot fix: suggested edit: x"


def test_index_only_files_are_never_served_as_checked(tmp_path: Path) -> None:
    found = _finding(path="b.py")
    cache = CheckCache(tmp_path, "s")
    cache.replace_findings("fp", {"a.py": ("h1", []), "b.py": ("h2", [found])})
    # A run over a.py only: b.py feeds the index (None), its findings stay valid and kept.
    cache.replace_findings("fp", {"a.py": ("h1", []), "b.py": ("h2", None)})
    hashes = {"a.py": "h1", "b.py": "h2"}
    assert cache.unchanged_tree(hashes, {"a.py"}) == ({"a.py": []}, {})
    assert cache.unchanged_tree(hashes, {"a.py", "b.py"}) == ({"a.py": [], "b.py": [found]}, {})
    cache.replace_findings("other-index", {"a.py": ("h1", []), "b.py": ("h2", None)})
    assert cache.unchanged_tree(hashes, {"a.py", "b.py"}) is None
    assert cache.findings("b.py", "h2", "other-index") is None


def test_the_cache_keeps_only_the_latest_keys(tmp_path: Path) -> None:
    for spec in ("a", "b", "c", "d", "e"):
        cache = CheckCache(tmp_path, spec)
        cache.store_summary("x.py", "h", {})
        cache.replace_findings("fp", {"x.py": ("h", [])})
        cache.save()
    directory = tmp_path / ".esper_migrate_cache"
    assert len(list(directory.glob("findings-*.json"))) == 3
    assert len(list(directory.glob("summaries-*.json"))) == 3
    assert CheckCache(tmp_path, "e").unchanged_tree({"x.py": "h"}, {"x.py"}) is not None
