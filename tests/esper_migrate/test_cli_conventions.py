"""Both commands follow ruff's and click's conventions: `-h`/`-V`; every error as
`<prog>: error: ...` on stderr with exit 2; plurals; `--diff` that `git apply` takes whether the
paths came from the command line or the config; `--quiet`, `--verbose`, `--output-file`;
colour only on a terminal, NO_COLOR honoured."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from esper_migrate import __version__
from esper_migrate.cli import main as migrate_main
from esper_migrate.console import plural
from esper_migrate.formats import display_path, unified_diff
from esper_ref.cli import main as ref_main

FEATURES = """\
def batch_obs_to_features(batch):
    return batch, batch
"""

NETWORK = """\
class FactoredRecurrentActorCritic:
    def get_action(self, features, blueprint_indices, hidden=None):
        return features
"""

# apply passes the companion on (and renames `_bp_indices`); check reports one root cause: EM006.
# No newline at the end: the diff must still apply.
ROLLOUT = """\
from pkg.features import batch_obs_to_features
from pkg.net import FactoredRecurrentActorCritic

def collect(net: FactoredRecurrentActorCritic, batch):
    states, _bp_indices = batch_obs_to_features(batch)
    return net.get_action(states)"""

ESC = "\033["


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "features.py").write_text(FEATURES)
    (root / "pkg" / "net.py").write_text(NETWORK)
    (root / "pkg" / "rollout.py").write_text(ROLLOUT)
    (root / "pyproject.toml").write_text('[tool.esper-migrate]\npaths = ["pkg"]\n')
    monkeypatch.chdir(root)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    yield root


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _migrate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = migrate_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- -h, -V ------------------------------------------------------------------------------------


@pytest.mark.parametrize("main, prog", [(migrate_main, "esper-migrate"), (ref_main, "esper-ref")])
def test_short_help_and_version(
    main: object, prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert callable(main)
    assert main(["-V"]) == 0
    assert capsys.readouterr().out == f"{prog} {__version__}\n"
    assert main(["-h"]) == 0
    assert "Usage" in capsys.readouterr().out
    command = "check" if prog == "esper-migrate" else "evaluate"
    assert main([command, "-h"]) == 0
    assert "--help" in capsys.readouterr().out


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["check", "--bogus"], "No such option: --bogus"),
        (["apply", "--bogus"], "No such option: --bogus"),
        (["frobnicate"], "No such command 'frobnicate'."),
        (["check", "-j", "many"], "Invalid value for '--jobs' / '-j'"),
        (["check", "--format", "xml"], "Invalid value for '--format'"),
        (["check", "missing_dir"], "missing_dir: no such file or directory"),
        (["check", "-q", "-v"], "--quiet and --verbose exclude each other"),
        (["apply", "-q", "-v"], "--quiet and --verbose exclude each other"),
    ],
)
def test_esper_migrate_errors_share_one_wording(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _migrate(capsys, *argv)
    assert code == 2
    assert out == ""
    first = err.splitlines()[0]
    assert first.startswith("esper-migrate: error: "), err
    assert message in first
    assert "Traceback" not in err and "╭" not in err


def test_usage_errors_point_at_the_command_help(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, err = _migrate(capsys, "apply", "--bogus")
    assert err.splitlines()[1] == "Try 'esper-migrate apply -h' for help."


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--bogus"], "No such option: --bogus"),
        (["evaluate", "no/such/checkpoint.pt"], "no/such/checkpoint.pt"),
        (["train", "--resume", "x.pt", "--seed", "3"], "cannot change seed"),
    ],
)
def test_esper_ref_errors_share_the_wording(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code = ref_main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("esper-ref: error: "), err
    assert message in err.splitlines()[0]


def test_a_crash_is_an_internal_error_with_exit_2(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import esper_migrate.engine

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(esper_migrate.engine, "run_apply", crash)
    monkeypatch.delenv("ESPER_MIGRATE_DEBUG", raising=False)
    code, out, err = _migrate(capsys, "apply")
    assert code == 2
    assert out == ""
    # One line for the user (issue 14: no traceback reaches a user) naming how to get the rest.
    assert err == (
        "esper-migrate: error: internal error: RuntimeError: boom "
        "(set ESPER_MIGRATE_DEBUG=1 for the traceback)\n"
    )
    monkeypatch.setenv("ESPER_MIGRATE_DEBUG", "1")
    code, out, err = _migrate(capsys, "apply")
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("esper-migrate: error: internal error: RuntimeError: boom")
    assert lines[1] == "Traceback (most recent call last):"


def test_bare_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate_main([]) == 2
    assert "Usage" in capsys.readouterr().out


def test_console_script_exit_code_is_the_commands(project: Path) -> None:
    exe = shutil.which("esper-migrate")
    assert exe is not None
    proc = subprocess.run([exe, "check", "--nope"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("esper-migrate: error: No such option: --nope")
    proc = subprocess.run([exe, "check", "-q"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1  # findings
    proc = subprocess.run(
        [sys.executable, "-m", "esper_migrate", "-V"], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, f"esper-migrate {__version__}\n")


# -- plurals -----------------------------------------------------------------------------------


def test_plural() -> None:
    assert plural(1, "file") == "1 file"
    assert plural(0, "file") == "0 files"
    assert plural(2, "finding") == "2 findings"
    assert plural(3, "index", "indices") == "3 indices"


def test_summaries_count_in_the_singular_for_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _migrate(capsys, "apply", "--check", "pkg/__init__.py")
    assert code == 0
    assert out.splitlines()[-1].startswith("1 file scanned, ")
    code, out, _ = _migrate(capsys, "apply", "--check", "pkg")
    assert out.splitlines()[-1].startswith("4 files scanned, ")
    baseline = project / "baseline.json"
    _migrate(capsys, "check", "--no-cache", "--baseline", str(baseline), "--write-baseline")
    _, err = capsys.readouterr()
    code, _, err = _migrate(
        capsys, "check", "--no-cache", "--baseline", str(baseline), "--write-baseline"
    )
    assert code == 0
    # one dropped companion is one finding (one root cause), in the singular
    assert "wrote 1 finding to " in err


# -- --diff and git apply ----------------------------------------------------------------------


def _diff_applies(root: Path, patch: str) -> None:
    assert patch.startswith("--- a/"), patch
    (root.parent / "out.patch").write_text(patch)
    proc = _git(root, "apply", "--check", "-v", str(root.parent / "out.patch"))
    assert proc.returncode == 0, proc.stderr + patch
    proc = _git(root, "apply", str(root.parent / "out.patch"))
    assert proc.returncode == 0, proc.stderr
    assert _git(root, "diff", "--quiet").returncode == 1  # the patch changed the tree
    assert "blueprint_indices" in (root / "pkg" / "rollout.py").read_text()


@pytest.fixture
def repo(project: Path) -> Path:
    assert _git(project, "init", "-q").returncode == 0
    _git(project, "add", "-A")
    assert _git(project, "commit", "-q", "-m", "init").returncode == 0
    return project


@pytest.mark.parametrize("how", ["config", "relative", "absolute", "dot", "file"])
def test_diff_applies_with_git_apply(
    repo: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    args = {
        "config": [],  # `paths` from [tool.esper-migrate]
        "relative": ["pkg"],
        "absolute": [str(repo / "pkg")],
        "dot": ["."],
        "file": ["./pkg/../pkg/rollout.py"],
    }[how]
    code, out, err = _migrate(capsys, "apply", "--diff", *args)
    assert code == 0, err
    assert "--- a/pkg/rollout.py\n+++ b/pkg/rollout.py\n" in out
    assert "\\ No newline at end of file" in out
    assert " scanned, " in err  # the summary stays out of the patch
    _diff_applies(repo, out)


def test_diff_from_a_subdirectory_applies_there(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo / "pkg")
    code, out, _ = _migrate(capsys, "apply", "--diff", ".")
    assert code == 0
    assert out.startswith("--- a/rollout.py\n")
    patch = repo.parent / "sub.patch"
    patch.write_text(out)
    proc = subprocess.run(
        ["git", "apply", str(patch)], cwd=repo / "pkg", capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "blueprint_indices" in (repo / "pkg" / "rollout.py").read_text()


def test_diff_to_output_file_is_a_patch(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _migrate(capsys, "apply", "--diff", "-o", "../x.patch")
    assert code == 0
    assert out == ""
    assert "files scanned" in err
    _diff_applies(repo, (repo.parent / "x.patch").read_text())


def test_unified_diff_keeps_form_feeds_and_crlf_inside_lines() -> None:
    before = "a = 1\r\n\x0cb = 2\r\nc = 3"
    after = "a = 1\r\n\x0cb = 20\r\nc = 3"
    patch = unified_diff("m.py", before, after)
    assert "-\x0cb = 2\r\n+\x0cb = 20\r\n" in patch
    assert patch.endswith(" c = 3\n\\ No newline at end of file\n")


def test_display_path(tmp_path: Path) -> None:
    cwd = str(tmp_path / "a")
    assert display_path(str(tmp_path / "a" / "b.py"), cwd) == "b.py"
    assert display_path("./x/../b.py", cwd) == "b.py"
    assert display_path(str(tmp_path / "c.py"), cwd) == str(tmp_path / "c.py")


# -- --quiet, --verbose, --output-file ---------------------------------------------------------


def test_check_quiet_leaves_out_the_count_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, loud, _ = _migrate(capsys, "check", "--no-cache")
    code, quiet, err = _migrate(capsys, "check", "--no-cache", "-q")
    assert code == 1
    assert loud.splitlines()[-1] == "Found 1 finding (1 failing)."
    assert quiet == "".join(line + "\n" for line in loud.splitlines()[:-1])
    assert err == ""


def test_apply_quiet_leaves_out_the_counts(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _migrate(capsys, "apply", "--check", "-q")
    assert code == 1
    assert out == ""


def test_verbose_says_what_was_used(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _migrate(capsys, "check", "-v")
    assert code == 1
    assert f"esper-migrate: config {project / 'pyproject.toml'}" in err
    assert "esper-migrate: 4 files checked, 0 other files indexed; cache cold" in err
    assert out.splitlines()[-1] == "Found 1 finding (1 failing)."
    _, _, err = _migrate(capsys, "check", "-v")
    assert "cache warm" in err
    code, _, err = _migrate(capsys, "apply", "-v")
    assert code == 0
    assert "esper-migrate: changed pkg/rollout.py" in err.splitlines()


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_check_output_file_holds_the_report(
    project: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    _, expected, _ = _migrate(capsys, "check", "--format", fmt)
    code, out, _ = _migrate(capsys, "check", "--format", fmt, "--output-file", "report.out")
    assert code == 1
    assert out == ""
    assert (project / "report.out").read_text() == expected
    umask = os.umask(0)
    os.umask(umask)
    assert (project / "report.out").stat().st_mode & 0o777 == 0o666 & ~umask


def test_output_file_that_cannot_be_written_is_an_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("check", "apply"):
        code, _, err = _migrate(capsys, command, "-o", "no/such/dir/report.txt")
        assert code == 2
        assert err.startswith("esper-migrate: error: no/such/dir/report.txt: cannot write: ")
    assert (project / "pkg" / "rollout.py").read_text() != ROLLOUT  # apply still applied


def test_check_that_fails_leaves_the_output_file_alone(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "report.txt").write_text("previous\n")
    code, _, _ = _migrate(capsys, "check", "missing", "-o", "report.txt")
    assert code == 2
    assert (project / "report.txt").read_text() == "previous\n"


# -- colour ------------------------------------------------------------------------------------


def test_no_colour_off_a_terminal_and_force_color_on(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, out, _ = _migrate(capsys, "check")
    assert ESC not in out
    monkeypatch.setenv("FORCE_COLOR", "1")
    _, out, _ = _migrate(capsys, "check")
    assert ESC in out
    monkeypatch.setenv("NO_COLOR", "1")
    _, out, _ = _migrate(capsys, "check")
    assert ESC not in out
    monkeypatch.delenv("NO_COLOR")
    _, out, _ = _migrate(capsys, "check", "-o", "r.txt")
    assert ESC not in (project / "r.txt").read_text()


def _on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """What a command prints to a real terminal (a pseudo-terminal)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=120) in (0, 1)
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("command", [["check"], ["apply", "--diff"]])
def test_colour_on_a_terminal_unless_no_color(project: Path, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    argv = [sys.executable, "-m", "esper_migrate", *command]
    assert ESC in _on_a_terminal(argv, project, env)
    assert ESC not in _on_a_terminal(argv, project, {**env, "NO_COLOR": "1"})


def _colours(text: str) -> set[str]:
    """The colour parameters (foreground/background) of the SGR sequences in ``text``;
    bold and dim are styles, which NO_COLOR leaves alone (https://no-color.org)."""
    import re

    params = {p for seq in re.findall(r"\x1b\[([0-9;]*)m", text) for p in seq.split(";")}
    return {p for p in params if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107)}


def test_help_is_coloured_on_a_terminal_unless_no_color(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    argv = [sys.executable, "-m", "esper_migrate", "check", "--help"]
    assert _colours(_on_a_terminal(argv, project, env))
    assert not _colours(_on_a_terminal(argv, project, {**env, "NO_COLOR": "1"}))
