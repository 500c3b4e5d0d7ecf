"""`esper-migrate check` end to end on small trees: exit codes, formats, config, suppression,
baseline, and a warm cache that parses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from esper_migrate import check as check_module
from esper_migrate.check import check_command

FEATURES = """\
def batch_obs_to_features(batch):
    return batch, batch
"""

NETWORK = """\
class FactoredRecurrentActorCritic:
    def get_action(self, features, blueprint_indices, hidden=None):
        return features
"""

# EM006 (the companion dropped on the way to a call that needs it: one root cause, one
# finding) at 5:13, EM001 (a call that lacks the argument) at 10:12.
ROLLOUT = """\
from pkg.features import batch_obs_to_features
from pkg.net import FactoredRecurrentActorCritic

def collect(net: FactoredRecurrentActorCritic, batch):
    states, _bp_indices = batch_obs_to_features(batch)
    return net.get_action(states)

def replay(net: FactoredRecurrentActorCritic, batch):
    obs, bp = batch_obs_to_features(batch)
    return net.get_action(obs)
"""

CLEAN = """\
from pkg.features import batch_obs_to_features
from pkg.net import FactoredRecurrentActorCritic

def collect(net: FactoredRecurrentActorCritic, batch):
    states, bp_indices = batch_obs_to_features(batch)
    return net.get_action(states, bp_indices)

def replay(net: FactoredRecurrentActorCritic, batch):
    obs, bp = batch_obs_to_features(batch)
    return net.get_action(obs, bp)
"""


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(check_command)
    return app


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "features.py").write_text(FEATURES)
    (tmp_path / "pkg" / "net.py").write_text(NETWORK)
    (tmp_path / "pkg" / "rollout.py").write_text(ROLLOUT)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(), list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_text_report_and_exit_1_on_findings(project: Path) -> None:
    code, out, _ = _run("pkg")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("pkg/rollout.py:5:13: EM006 the companion `_bp_indices`")
    assert lines[0].endswith("[resolved]")
    assert lines[1].strip() == (
        "fix: rename `_bp_indices` to `bp_indices` (line 5); rename `_bp_indices` to "
        "`bp_indices` (line 6)"
    ) or lines[1].strip().startswith("fix: rename `_bp_indices` to `bp_indices` (line 5)")
    assert "pass `blueprint_indices=bp_indices` right after `states`" in lines[1]
    assert lines[2].startswith("pkg/rollout.py:10:12: EM001 call to ")
    assert lines[3].strip() == "fix: pass `blueprint_indices=bp` right after `obs`"
    assert lines[-1] == "Found 2 findings (2 failing)."


def test_clean_tree_exits_0(project: Path) -> None:
    (project / "pkg" / "rollout.py").write_text(CLEAN)
    code, out, _ = _run()
    assert (code, out) == (0, "All checks passed.\n")


@pytest.mark.parametrize("fmt", ["json", "github", "sarif"])
def test_machine_formats(project: Path, fmt: str) -> None:
    code, out, _ = _run("--format", fmt, ".")
    assert code == 1
    if fmt == "json":
        rows = json.loads(out)
        assert [(r["path"], r["line"], r["col"], r["code"]) for r in rows] == [
            ("pkg/rollout.py", 5, 13, "EM006"),
            ("pkg/rollout.py", 10, 12, "EM001"),
        ]
    elif fmt == "github":
        assert out.startswith("::error file=pkg/rollout.py,line=5,col=13,title=EM006")
    else:
        results = json.loads(out)["runs"][0]["results"]
        assert [r["ruleId"] for r in results] == ["EM006", "EM001"]


def test_statistics(project: Path) -> None:
    code, out, _ = _run("--statistics")
    assert code == 1
    assert [line.split()[1] for line in out.splitlines()[:2]] == ["EM001", "EM006"]


@pytest.mark.parametrize(
    "args",
    [
        ("missing_dir",),
        ("--format", "xml"),
        ("--write-baseline",),
        ("--spec", "nope.toml"),
        ("--baseline", "nope.json"),
    ],
)
def test_usage_errors_exit_2(project: Path, args: tuple[str, ...]) -> None:
    code, _, _ = _run(*args)
    assert code == 2


def test_invalid_spec_and_config_exit_2_with_the_reason(project: Path) -> None:
    (project / "bad.toml").write_text("[parameter]\nname = 'not an identifier'\n")
    code, _, err = _run("--spec", "bad.toml")
    assert code == 2 and "bad.toml" in err
    (project / "pyproject.toml").write_text("[tool.esper-migrate]\nfail-tiers = ['exact']\n")
    code, _, err = _run()
    assert code == 2 and "fail-tiers" in err


def test_internal_error_exits_2(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> object:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(check_module, "_analyze", boom)
    code, _, err = _run("--no-cache")
    assert code == 2 and "internal error: RuntimeError: engine exploded" in err


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('fail-on = ["EM003", "EM004"]', 0),
        ('fail-tiers = ["name"]', 0),
        ('fail-tiers = ["resolved"]', 1),
        ('paths = ["pkg"]\nexclude = ["pkg/rollout.py"]', 0),
    ],
)
def test_config_decides_what_fails(project: Path, table: str, expected: int) -> None:
    (project / "pyproject.toml").write_text(f"[tool.esper-migrate]\n{table}\n")
    code, out, _ = _run()
    assert code == expected, out
    if expected == 0 and "exclude" not in table:
        assert "(not failing)" in out


def test_suppression_comment(project: Path) -> None:
    source = ROLLOUT.replace(
        "batch_obs_to_features(batch)\n",
        "batch_obs_to_features(batch)  # esper-migrate: ignore[EM006]\n",
        1,
    ).replace(
        "    return net.get_action(obs)",
        "    # esper-migrate: ignore\n    return net.get_action(obs)",
    )
    (project / "pkg" / "rollout.py").write_text(source)
    assert _run()[0] == 0
    wrong_code = source.replace("ignore[EM006]", "ignore[EM001]")
    (project / "pkg" / "rollout.py").write_text(wrong_code)
    code, out, _ = _run()
    assert code == 1 and "EM006" in out
    # The comment that silences nothing is reported itself (ruff's RUF100).
    assert "EM100 suppression of EM001 is unused" in out


def test_baseline_accepts_todays_findings_and_fails_on_new_ones(project: Path) -> None:
    code, _, err = _run("--baseline", "baseline.json", "--write-baseline")
    assert code == 0 and "wrote 2 findings" in err
    assert _run("--baseline", "baseline.json")[0] == 0
    # Lines inserted above: the old finding is still recognised.
    rollout = project / "pkg" / "rollout.py"
    rollout.write_text("# a comment\n\n" + ROLLOUT)
    assert _run("--baseline", "baseline.json")[0] == 0
    # A second dropped companion is new.
    rollout.write_text(
        "# a comment\n\n" + ROLLOUT + "\ndef again(net: FactoredRecurrentActorCritic, b):\n"
        "    s, _c = batch_obs_to_features(b)\n    return net.get_action(s)\n"
    )
    code, out, _ = _run("--baseline", "baseline.json")
    assert code == 1
    # One root cause, one finding: the dropped `_c`, whose fix renames it and passes it.
    assert out.count("EM006") == 1 and "`_c`" in out
    assert out.count("EM001") == 0 and "blueprint_indices=c" in out


def test_warm_run_parses_nothing_and_a_change_reparses_one_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = _run("--format", "json")
    assert cold[0] == 1
    assert (project / ".esper_migrate_cache").is_dir()

    import ast

    import esper_migrate.index as index_module

    def no_parse(*args: object, **kwargs: object) -> object:
        raise AssertionError("a warm run must not parse")

    with monkeypatch.context() as patch:
        patch.setattr(ast, "parse", no_parse)
        patch.setattr(index_module, "summarize_tree", no_parse)
        assert _run("--format", "json") == cold

    summarized: list[str] = []
    real = index_module.summarize_tree

    def counting(path: str, tree: ast.Module) -> object:
        summarized.append(path)
        return real(path, tree)

    monkeypatch.setattr(index_module, "summarize_tree", counting)
    (project / "pkg" / "rollout.py").write_text(CLEAN)
    assert _run()[0] == 0
    assert summarized == ["pkg/rollout.py"]
    assert _run("--no-cache")[0] == 0
    assert len(summarized) == 4  # --no-cache: every candidate file again (3 of them)


def test_check_never_imports_torch_and_a_warm_run_skips_the_engine(project: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from esper_migrate.check import CheckOptions, run_check
        from pathlib import Path
        first = run_check(CheckOptions(paths=(Path("pkg"),)))
        cold = sorted(m for m in ("torch", "pydantic", "libcst") if m in sys.modules)
        print(first, cold, file=sys.stderr)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cold = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    # Cold: the engine (pydantic for the spec) but never torch, and no libcst (apply only).
    assert cold.stderr.strip().splitlines()[-1] == "1 ['pydantic']", cold.stderr
    warm = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert warm.stderr.strip().splitlines()[-1] == "1 []", warm.stderr


def test_parallel_cold_run_gives_the_same_report(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sequential = _run("--no-cache", "--format", "json", "-j", "1")
    monkeypatch.setattr(check_module, "_MIN_PARALLEL", 1)
    parallel = _run("--no-cache", "--format", "json", "-j", "2")
    assert parallel == sequential
    assert parallel[0] == 1


def test_file_that_does_not_parse_is_an_error_kept_by_the_cache(project: Path) -> None:
    (project / "pkg" / "broken.py").write_text("def get_action(:\n")
    for _ in range(2):  # cold, then warm from the cache: the error is kept
        code, out, err = _run()
        assert code == 1 and "EM001" in out
        assert "error: pkg/broken.py: does not parse" in err


def test_a_checked_file_that_does_not_parse_fails_the_run(project: Path) -> None:
    """Its sites cannot be checked, so a clean report would be a lie: exit 1, as ruff does."""
    (project / "pkg" / "broken.py").write_text("def get_action(:\n")
    code, _, err = _run("--no-cache", "pkg/broken.py")
    assert code == 1
    assert "error: pkg/broken.py: does not parse" in err


def test_a_file_that_names_nothing_and_does_not_parse_fails_the_run(project: Path) -> None:
    """Whatever it names: a syntax error in a file without one spec name is still an error,
    on a cold run and on a warm one."""
    (project / "pkg" / "util.py").write_text("def helper(:\n")
    for _ in range(2):
        code, _, err = _run()
        assert code == 1
        assert "error: pkg/util.py: does not parse" in err


@pytest.mark.parametrize("what", ["empty", "text"])
def test_nothing_to_check_is_a_usage_error(project: Path, what: str) -> None:
    if what == "empty":
        (project / "empty").mkdir()
        target = "empty"
    else:
        (project / "README.md").write_text("# not Python\n")
        target = "README.md"
    code, out, err = _run(target)
    assert code == 2 and out == ""
    assert f"error: nothing to check: no Python file under {target}" in err


def test_file_beyond_the_parsers_limits_is_skipped_with_a_warning(project: Path) -> None:
    # A generated 30000-term expression: RecursionError inside ast.parse, as in CPython.
    huge = "get_action = " + "+".join(["1"] * 30000) + "\n"
    (project / "pkg" / "generated.py").write_text(huge)
    code, out, err = _run("--no-cache")
    assert code == 1 and "EM001" in out
    assert "error: pkg/generated.py: does not parse: RecursionError" in err


def test_baseline_from_the_config(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.esper-migrate]\nbaseline = "legacy.json"\n')
    assert _run()[0] == 2  # configured but not written yet: a usage error that says so
    assert _run("--write-baseline")[0] == 0
    assert (project / "legacy.json").is_file()
    assert _run()[0] == 0


def test_checking_one_file_resolves_through_the_whole_project(project: Path) -> None:
    (project / "pkg" / "other.py").write_text(
        "from pkg.net import FactoredRecurrentActorCritic\n\n\n"
        "def act(net: FactoredRecurrentActorCritic, obs):\n    return net.get_action(obs)\n"
    )
    code, out, _ = _run("pkg/rollout.py", "--format", "json")
    rows = json.loads(out)
    assert code == 1
    assert {(r["path"], r["code"], r["tier"]) for r in rows} == {
        ("pkg/rollout.py", "EM006", "resolved"),
        ("pkg/rollout.py", "EM001", "resolved"),  # the class lives in pkg/net.py (context)
    }
    assert _run("pkg/rollout.py", "--format", "json")[1] == out  # warm: the same
    # The whole tree afterwards: other.py was only context before, now it is checked.
    rows = json.loads(_run("--format", "json")[1])
    assert ("pkg/other.py", "EM001") in {(r["path"], r["code"]) for r in rows}


def test_a_custom_spec_threads_another_parameter(project: Path) -> None:
    (project / "phase5.toml").write_text(
        '[parameter]\nname = "op_mask"\nannotation = "torch.Tensor"\n\n'
        '[[targets]]\nname = "Actor"\nkind = "class"\nmethods = ["act"]\n\n'
        '[[producers]]\nname = "make_obs"\n'
    )
    (project / "pkg" / "actor.py").write_text(
        "class Actor:\n    def act(self, obs, op_mask, hidden=None):\n        return obs\n\n\n"
        "def make_obs(env):\n    return env, env\n\n\n"
        "def step(actor: Actor, env):\n    obs, mask = make_obs(env)\n"
        "    return actor.act(obs, hidden=None)\n"
    )
    code, out, _ = _run("--spec", "phase5.toml", "--format", "json")
    rows = json.loads(out)
    assert code == 1
    assert [(r["path"], r["line"], r["code"]) for r in rows] == [
        ("pkg/actor.py", 12, "EM001"),  # `mask` unpacked: the fix passes it
    ]
    assert "op_mask=mask" in rows[0]["fix"]
    # The same tree under the built-in spec: nothing about op_mask.
    assert "op_mask" not in _run("--format", "json")[1]
