"""The tree is the boundary: links out of it, read-only files, unreadable directories, FIFOs,
symlink loops and the project root are each reported with a clear result, and nothing blocks.
(Rows 4-9 of the hardening issue's probe table.)"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from faultlib import (
    IS_ROOT,
    NET,
    NET_AFTER,
    TIMEOUT,
    assert_one_line_error,
    make_tree,
    run_cli,
)

from esper_migrate.config import load_config
from esper_migrate.discover import walk

# -- row 4: a symlink inside the tree to a file outside it -------------------------------------


def test_a_symlink_to_a_file_outside_the_project_is_never_written(tree: Path) -> None:
    outside = tree.parent / "outside.py"
    outside.write_text(NET)
    (tree / "src" / "link.py").symlink_to(outside)
    code, out, err = run_cli("apply", ".", cwd=tree)
    assert outside.read_text() == NET
    assert (tree / "src" / "a.py").read_text() == NET_AFTER
    assert f"src/link.py: skipped: symlink to {outside}, outside the project root" in out
    assert code == 0, out + err
    code, _, err = run_cli("check", ".", cwd=tree)
    assert "src/link.py: skipped: symlink to" in err and code == 0


def test_a_symlink_inside_the_project_is_followed_once(tree: Path) -> None:
    (tree / "src" / "alias.py").symlink_to(tree / "src" / "a.py")
    code, out, err = run_cli("apply", ".", cwd=tree)
    assert code == 0, out + err
    assert (tree / "src" / "alias.py").is_symlink()
    assert (tree / "src" / "a.py").read_text() == NET_AFTER
    assert "2 changed" in out  # a.py and b.py; the alias is not planned a second time


def test_the_writer_refuses_a_target_outside_the_root_even_if_asked(tmp_path: Path) -> None:
    from esper_migrate.safe_write import WriteRefused, write_if_unchanged

    root = make_tree(tmp_path / "root", {"a.py": "x = 1\n"})
    outside = make_tree(tmp_path, {"outside.py": "x = 1\n"}) / "outside.py"
    (root / "link.py").symlink_to(outside)
    with pytest.raises(WriteRefused, match="outside the project root"):
        write_if_unchanged(root / "link.py", b"x = 1\n", b"x = 2\n", root=root)
    assert outside.read_text() == "x = 1\n"


# -- row 5: a read-only file -------------------------------------------------------------------


def test_a_read_only_file_is_reported_not_rewritten(tree: Path) -> None:
    (tree / "src" / "a.py").chmod(0o444)
    code, out, _ = run_cli("apply", ".", cwd=tree)
    assert code == 3, out
    assert "src/a.py: error: read-only (mode 0444); not rewritten" in out
    assert (tree / "src" / "a.py").read_text() == NET
    assert (tree / "src" / "b.py").read_text() == NET_AFTER
    assert stat.S_IMODE((tree / "src" / "a.py").stat().st_mode) == 0o444


# -- row 6: an unreadable directory ------------------------------------------------------------


def _assert_unreadable_reported(tree: Path, code: int, out: str) -> None:
    assert code == 3, out
    assert "src/locked: error: unreadable directory: Permission denied" in out
    assert "errors: 1" in out
    assert (tree / "src" / "a.py").read_text() == NET_AFTER


def test_an_unreadable_directory_is_an_error_not_a_silent_skip_mocked(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root (CI) chmod 000 does not stop reads: make the walk see the error a user gets.
    from typer.testing import CliRunner

    from esper_migrate.cli import app

    make_tree(tree, {"src/locked/hidden.py": NET})
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if os.fspath(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.chdir(tree)
    result = CliRunner().invoke(app, ["apply", "."])
    _assert_unreadable_reported(tree, result.exit_code, result.output)
    result = CliRunner().invoke(app, ["check", "."])
    assert result.exit_code == 1
    assert "error: src/locked: skipped: unreadable directory" in result.output


@pytest.mark.skipif(IS_ROOT, reason="root reads a chmod 000 directory; the mocked test covers it")
def test_an_unreadable_directory_is_an_error_not_a_silent_skip(tree: Path) -> None:
    locked = make_tree(tree, {"src/locked/hidden.py": NET}) / "src" / "locked"
    locked.chmod(0)
    try:
        code, out, _ = run_cli("apply", ".", cwd=tree)
        _assert_unreadable_reported(tree, code, out)
        code, _, err = run_cli("check", ".", cwd=tree)
        assert code == 1 and "unreadable directory" in err
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(IS_ROOT, reason="root reads a 0000 file")
def test_an_unreadable_file_fails_check_with_the_reason(tree: Path) -> None:
    (tree / "src" / "a.py").chmod(0)
    try:
        code, _, err = run_cli("check", ".", cwd=tree)
        assert code == 1 and "src/a.py: skipped: cannot read: Permission denied" in err
    finally:
        (tree / "src" / "a.py").chmod(0o644)


# -- row 7: FIFOs (and other special files) ----------------------------------------------------


@pytest.mark.parametrize("command", ["apply", "check"])
def test_a_fifo_named_like_a_python_file_never_blocks(tree: Path, command: str) -> None:
    os.mkfifo(tree / "src" / "x.py")
    # A hang would raise subprocess.TimeoutExpired here and fail the test.
    code, out, err = run_cli(command, ".", cwd=tree, timeout=TIMEOUT)
    assert "src/x.py: skipped: a FIFO, not a regular file; never opened" in out + err
    assert "Traceback" not in err
    assert code == (0 if command == "apply" else 1), out + err


def test_a_fifo_elsewhere_in_the_project_never_blocks_a_one_file_run(tree: Path) -> None:
    # One file inside the project reads the rest of the project as index context.
    os.mkfifo(tree / "x.py")
    os.mkfifo(tree / "src" / "spec.toml")
    for command in ("apply", "check"):
        code, out, err = run_cli(command, "src/a.py", cwd=tree)
        assert "Traceback" not in err and code in (0, 1), out + err
    code, _, err = run_cli("check", "--spec", "src/spec.toml", "src/b.py", cwd=tree)
    assert code == 2 and "not a regular file" in err


def test_a_fifo_named_on_the_command_line_is_skipped(tree: Path) -> None:
    os.mkfifo(tree / "src" / "x.py")
    code, out, _ = run_cli("apply", "src/x.py", cwd=tree)
    assert code == 0 and "src/x.py: skipped: a FIFO" in out


def test_reading_never_waits_on_a_fifo(tmp_path: Path) -> None:
    from esper_migrate.discover import read_regular_file

    os.mkfifo(tmp_path / "x.py")
    with pytest.raises(OSError, match="a FIFO, not a regular file"):
        read_regular_file(tmp_path / "x.py")


# -- row 8: symlink loops ----------------------------------------------------------------------


def test_symlink_loops_are_reported_not_a_traceback(tree: Path) -> None:
    (tree / "src" / "self.py").symlink_to(tree / "src" / "self.py")
    (tree / "src" / "ping.py").symlink_to(tree / "src" / "pong.py")
    (tree / "src" / "pong.py").symlink_to(tree / "src" / "ping.py")
    (tree / "src" / "up").symlink_to(tree)  # a directory link back up: never followed
    (tree / "src" / "gone.py").symlink_to(tree / "nowhere.py")
    code, out, err = run_cli("apply", ".", cwd=tree)
    assert code == 0, out + err
    for name in ("self.py", "ping.py", "pong.py"):
        assert f"src/{name}: skipped: symlink loop" in out
    assert "src/up: skipped: symlink to a directory, not followed" in out
    assert "src/gone.py: skipped: dangling symlink" in out
    assert (tree / "src" / "a.py").read_text() == NET_AFTER
    code, _, err = run_cli("check", ".", cwd=tree)
    assert code == 0 and "Traceback" not in err and "symlink loop" in err


def test_a_loop_named_on_the_command_line_is_skipped(tree: Path) -> None:
    (tree / "loop.py").symlink_to(tree / "loop.py")
    found = walk([tree / "loop.py"])
    assert found.files == [] and found.skipped[0].reason == "symlink loop"


# -- row 9: the project root without a config table --------------------------------------------


def test_without_a_table_a_sibling_tree_is_never_read(tmp_path: Path) -> None:
    """`check b3` from the parent of two trees: the cwd is not the project; b3 is."""
    make_tree(tmp_path / "b3", {"a.py": NET})
    # A sibling that would change the index (another definition) and one that would hang.
    make_tree(tmp_path / "sibling", {"net.py": NET.replace("hidden=None", "x, hidden=None")})
    os.mkfifo(tmp_path / "sibling" / "x.py")
    code, out_parent, err = run_cli("check", "--no-cache", "b3", cwd=tmp_path)
    assert code == 1 and "sibling" not in out_parent + err, out_parent + err
    code, out_inside, _ = run_cli("check", "--no-cache", ".", cwd=tmp_path / "b3")
    assert [line.split(":", 1)[1] for line in out_parent.splitlines() if "EM00" in line] == [
        line.split(":", 1)[1] for line in out_inside.splitlines() if "EM00" in line
    ]
    assert not (tmp_path / ".esper_migrate_cache").exists()


def test_the_project_root_is_the_repository_then_a_project_then_the_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_tree(tmp_path / "repo", {"pkg/sub/a.py": "", "pkg/b.py": ""})
    (repo / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_config(repo / "pkg" / "sub").root == repo.resolve()
    make_tree(repo, {"pkg/pyproject.toml": "[project]\nname = 'p'\n"})
    assert load_config(repo / "pkg" / "sub").root == (repo / "pkg").resolve()
    loose = make_tree(tmp_path / "loose", {"x/a.py": "", "y/b.py": ""})
    paths = [loose / "x" / "a.py", loose / "y"]
    assert load_config(paths[0], paths=paths).root == loose.resolve()
    assert load_config(loose / "x").root == (loose / "x").resolve()


# -- row 14: an exclude that matches everything ------------------------------------------------


@pytest.mark.parametrize("pattern", ["***", "*", "**/*.py"])
def test_an_exclude_matching_everything_is_a_config_error(tree: Path, pattern: str) -> None:
    (tree / "pyproject.toml").write_text(f'[tool.esper-migrate]\nexclude = ["{pattern}"]\n')
    for command in ("apply", "check"):
        code, out, err = run_cli(command, ".", cwd=tree)
        assert code == 2, out + err
        assert_one_line_error(err, f"'exclude' pattern {pattern!r} matches every Python file")
    assert (tree / "src" / "a.py").read_text() == NET


def test_excludes_that_leave_no_file_under_the_paths_are_an_error(tree: Path) -> None:
    (tree / "pyproject.toml").write_text('[tool.esper-migrate]\nexclude = ["src/"]\n')
    for command in ("apply", "check"):
        code, out, err = run_cli(command, "src", cwd=tree)
        assert code == 2, out + err
        assert_one_line_error(err, "every Python file under src (2) is excluded")


def test_a_fifo_given_as_config_spec_or_baseline_never_blocks(tree: Path) -> None:
    for name in ("pyproject-fifo.toml", "spec.toml", "baseline.json"):
        os.mkfifo(tree / name)
    for args in (
        ("check", "--config", "pyproject-fifo.toml", "."),
        ("check", "--spec", "spec.toml", "."),
        ("apply", "--spec", "spec.toml", "."),
        ("check", "--baseline", "baseline.json", "."),
    ):
        code, _, err = run_cli(*args, cwd=tree)
        assert code == 2, args
        assert_one_line_error(err, "not a regular file")
