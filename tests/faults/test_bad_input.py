"""No traceback reaches a user: bad excludes, specs, caches and baselines end in one line
naming the cause and exit 2, or are discarded (the cache). (Rows 10-13 of the probe table.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faultlib import NET, NET_AFTER, assert_one_line_error, make_tree, run_cli

from esper_migrate.spec import SpecError, builtin_spec_text, load_spec, parse_spec

# -- row 10: exclude patterns that do not compile ----------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [("!", "Invalid git pattern"), ("a/[z-a]", "bad character range"), ("\\\\", "Invalid")],
)
def test_an_invalid_exclude_pattern_is_a_config_error(
    tree: Path, pattern: str, reason: str
) -> None:
    (tree / "pyproject.toml").write_text(f'[tool.esper-migrate]\nexclude = ["{pattern}"]\n')
    for command in ("apply", "check"):
        code, out, err = run_cli(command, ".", cwd=tree)
        assert code == 2, out + err
        assert_one_line_error(err, "pyproject.toml", "'exclude' pattern", reason)
    assert (tree / "src" / "a.py").read_text() == NET


# -- row 11: specs that would write invalid code -----------------------------------------------


def _spec_with(old: str, new: str) -> str:
    text = builtin_spec_text()
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "field", "reason"),
    [
        ('name = "blueprint_indices"', 'name = "class"', "parameters.0.name", "Python keyword"),
        (
            'annotation = "torch.Tensor"',
            'annotation = "torch.Tensor["',
            "parameters.0.annotation",
            "not a Python expression",
        ),
        (
            'annotation = "torch.Tensor"',
            'annotation = "torch.Tensor"\ndefault = "None)"',
            "parameters.0.default",
            "not a Python expression",
        ),
        ('dtype = "torch.long"', 'dtype = "torch.long +"', "storage.0.dtype", "expression"),
        ('methods = ["forward", "get_action"', 'methods = ["def", "get_action"', "methods", "kw"),
        ('random_call = "torch.randint"', 'random_call = "torch.rand int"', "random_call", "dot"),
        (
            'docstring = "Blueprint',
            'docstring = "end \\"\\"\\" Blueprint',
            "parameters.0.docstring",
            "triple quotes",
        ),
        ('"pytest.raises"', '"pytest.raises("', "context_managers", "dotted"),
    ],
)
def test_a_spec_that_would_write_invalid_code_fails_validation_naming_the_field(
    tree: Path, old: str, new: str, field: str, reason: str
) -> None:
    text = _spec_with(old, new)
    with pytest.raises(SpecError) as info:
        parse_spec(text, "bad.toml")
    message = str(info.value)
    assert field in message
    assert reason in message or reason in {"kw", "dot"}
    (tree / "bad.toml").write_text(text)
    code, out, err = run_cli("apply", "--spec", "bad.toml", ".", cwd=tree)
    assert code == 2, out + err
    assert "bad.toml" in err and field in err and "Traceback" not in err
    assert (tree / "src" / "a.py").read_text() == NET  # nothing half-applied


def test_a_spec_that_is_not_utf8_is_a_spec_error(tree: Path) -> None:
    (tree / "latin1.toml").write_bytes(builtin_spec_text().replace("-1", "\xe9").encode("latin-1"))
    with pytest.raises(SpecError, match=r"not UTF-8 \(byte 0xe9"):
        load_spec(tree / "latin1.toml")
    for command in ("apply", "check"):
        code, out, err = run_cli(command, "--spec", "latin1.toml", ".", cwd=tree)
        assert code == 2, out + err
        assert_one_line_error(err, "latin1.toml", "not UTF-8")


def test_a_spec_nested_too_deeply_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="invalid TOML"):
        parse_spec("x = " + "[" * 100_000 + "]" * 100_000)


def test_the_builtin_spec_still_validates() -> None:
    assert load_spec().parameter.name == "blueprint_indices"


# -- row 12: a cache of the wrong shape --------------------------------------------------------


def _cache_files(root: Path, kind: str) -> list[Path]:
    return sorted((root / ".esper_migrate_cache").glob(f"{kind}-*.json"))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda files: {k: [v[0], [[1, 2, 3]]] for k, v in files.items()},  # a short row
        lambda files: {
            k: [v[0], [["1", 1, "EM001", "m", "name", None, None]]] for k, v in files.items()
        },
        lambda files: {
            k: [v[0], [[1, 1, "EM999", "m", "name", None, None]]] for k, v in files.items()
        },
        lambda files: {k: "not a list" for k, v in files.items()},
        lambda files: [],
    ],
)
def test_a_findings_cache_of_the_wrong_shape_is_discarded(tree: Path, corrupt: object) -> None:
    code, out, _ = run_cli("check", ".", cwd=tree)
    assert code == 1
    for file in _cache_files(tree, "findings"):
        document = json.loads(file.read_text())
        document["files"] = corrupt(document["files"])  # type: ignore[operator]
        file.write_text(json.dumps(document))
    for _ in range(2):  # the run repairs the cache; the one after reads it
        again, out_again, err = run_cli("check", ".", cwd=tree)
        assert (again, out_again) == (code, out), err
        assert "internal error" not in err


def test_a_summary_the_index_cannot_read_discards_the_cache_and_reruns(tree: Path) -> None:
    code, out, _ = run_cli("check", ".", cwd=tree)
    (tree / "src" / "c.py").write_text(NET)  # a miss, so the summaries are read
    for file in _cache_files(tree, "summaries"):
        document = json.loads(file.read_text())
        for entry in document["files"].values():
            entry[1]["classes"] = [{"name": 3}]  # right keys, wrong contents
        file.write_text(json.dumps(document))
    code, out, err = run_cli("check", ".", cwd=tree)
    assert code == 1 and "internal error" not in err and "Traceback" not in err
    assert "discarded the cache" in err
    assert out.count("EM00") >= 3 * 2  # a.py, b.py and c.py all reported
    code, again, err = run_cli("check", ".", cwd=tree)
    assert (code, again, err) == (1, out, "")


# -- row 13: baselines -------------------------------------------------------------------------


def _baseline(tree: Path) -> dict[str, object]:
    code, _, err = run_cli("check", "--baseline", "b.json", "--write-baseline", ".", cwd=tree)
    assert code == 0, err
    document: dict[str, object] = json.loads((tree / "b.json").read_text())
    return document


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ('"count": 1e400', "findings[0]: 'count' must be a positive integer, got float"),
        ('"count": 2.5', "'count' must be a positive integer, got float"),
        ('"count": 0', "'count' must be a positive integer, got 0"),
        ('"count": "1"', "'count' must be a positive integer, got str"),
        ('"count": true', "'count' must be a positive integer, got bool"),
        ('"path": 7', "'path' must be a string, got int"),
    ],
)
def test_a_baseline_entry_of_the_wrong_type_is_refused_with_the_reason(
    tree: Path, edit: str, reason: str
) -> None:
    _baseline(tree)
    text = (tree / "b.json").read_text()
    key = edit.split(":")[0]
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith(key))
    comma = "," if lines[first].rstrip().endswith(",") else ""
    lines[first] = lines[first][: lines[first].index(key)] + edit + comma
    (tree / "b.json").write_text("\n".join(lines))
    code, out, err = run_cli("check", "--baseline", "b.json", ".", cwd=tree)
    assert code == 2, out + err
    assert_one_line_error(err, "b.json", reason)


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        (2, "baseline format 2 (written by esper-migrate 9.9); esper-migrate"),
        (0, "baseline format 0"),
        ("1", "'version' must be an integer format version, got str"),
    ],
)
def test_a_baseline_of_another_format_says_so(tree: Path, version: object, reason: str) -> None:
    document = _baseline(tree)
    document.update(version=version, written_by="9.9")
    (tree / "b.json").write_text(json.dumps(document))
    code, out, err = run_cli("check", "--baseline", "b.json", ".", cwd=tree)
    assert code == 2, out + err
    assert_one_line_error(err, reason)
    if version == 2:
        assert "reads format 1: upgrade esper-migrate or rewrite it with --write-baseline" in err


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"tool": "ruff"}', "not an esper-migrate baseline"),
        (b'{"tool": "esper-migrate", "version": 1, "findings": {}}', "must be a list, got dict"),
    ],
)
def test_a_baseline_that_is_not_one_is_refused(tree: Path, content: bytes, reason: str) -> None:
    (tree / "b.json").write_bytes(content)
    code, out, err = run_cli("check", "--baseline", "b.json", ".", cwd=tree)
    assert code == 2, out + err
    assert_one_line_error(err, reason)


# -- an internal error -------------------------------------------------------------------------


def test_an_internal_error_of_apply_is_one_line_and_exit_2(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import esper_migrate.engine as engine
    from esper_migrate.cli import app

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(engine, "run_apply", explode)
    monkeypatch.chdir(tree)
    monkeypatch.delenv("ESPER_MIGRATE_DEBUG", raising=False)
    result = CliRunner().invoke(app, ["apply", "."])
    assert result.exit_code == 2
    assert_one_line_error(result.output, "internal error: RuntimeError: engine exploded")
    assert (tree / "src" / "a.py").read_text() == NET
    monkeypatch.setenv("ESPER_MIGRATE_DEBUG", "1")
    result = CliRunner().invoke(app, ["apply", "."])
    assert result.exit_code == 2 and "Traceback" in result.output


def test_a_clean_run_still_migrates(tree: Path) -> None:
    code, out, _ = run_cli("apply", ".", cwd=tree)
    assert code == 0 and (tree / "src" / "a.py").read_text() == NET_AFTER, out
    assert "skipped: 0" in out and (tree / "src" / "a.py").parent.is_dir()
    assert make_tree  # (imported for symmetry with the other fault tests)
