"""``[tool.esper-migrate]`` in ``pyproject.toml``: what to check and what fails the build.

The table is found like ruff finds ``[tool.ruff]``: walk up from the start directory (the
first path given, else the current directory) to the closest ``pyproject.toml`` that has the
table. Relative paths in it are relative to that file's directory (the project root).

Without a table the project root is the closest directory at or above the start that marks a
project, as black finds it: one with a ``.git`` or ``.hg`` (the repository root) or a
``pyproject.toml`` (a project nested in a repository, e.g. one package of a monorepo, is its
own project). Failing those it is the common parent of the paths given; never the bare
current directory, whose siblings have nothing to do with the run.

Keys (all optional)::

    [tool.esper-migrate]
    paths = ["src", "tests"]          # what `check`/`apply` scan when no PATHS are given
    exclude = ["legacy/**", "*_pb2.py"]  # gitignore-style patterns, on top of .gitignore
    spec = "migrations/phase5.toml"  # a migration spec; default: the built-in Phase 4 spec
    fail-tiers = ["resolved", "name"]  # tiers whose findings fail the build (default: both)
    fail-on = ["EM001", "EM004"]     # codes that fail the build (default: all)
    baseline = "esper-migrate-baseline.json"  # used when --baseline is not given

Findings outside ``fail-tiers``/``fail-on`` are still reported, marked as not failing.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from esper_migrate.records import Code, Tier

TABLE = "esper-migrate"
_E = TypeVar("_E", Tier, Code)
_KNOWN_KEYS = frozenset({"paths", "exclude", "spec", "fail-tiers", "fail-on", "baseline"})


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class CheckConfig:
    """The effective configuration; defaults apply where the table says nothing."""

    #: Directory of the pyproject.toml that held the table (or the start directory).
    root: Path
    #: The pyproject.toml the table came from, None when there was none.
    source: Path | None = None
    paths: tuple[Path, ...] = ()
    exclude: tuple[str, ...] = ()
    spec: Path | None = None
    fail_tiers: frozenset[Tier] = field(default_factory=lambda: frozenset(Tier))
    fail_on: frozenset[Code] = field(default_factory=lambda: frozenset(Code))
    baseline: Path | None = None

    def fails(self, code: Code, tier: Tier) -> bool:
        """Whether a finding with this code and tier fails the build."""
        return code in self.fail_on and tier in self.fail_tiers


def find_pyproject(start: Path) -> Path | None:
    """The closest ``pyproject.toml`` at or above ``start`` that has ``[tool.esper-migrate]``."""
    directory = start.resolve()
    if not directory.is_dir():
        directory = directory.parent
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / "pyproject.toml"
        if candidate.is_file() and _has_table(candidate):
            return candidate
    return None


def _has_table(pyproject: Path) -> bool:
    # Cheap text test first: most pyproject.toml files on the way up are not ours.
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if TABLE not in text:
        return False
    tool = _parse(pyproject, text).get("tool")
    return isinstance(tool, dict) and TABLE in tool


def _parse(pyproject: Path, text: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None


#: What marks the top of a project when no pyproject.toml has the table.
_PROJECT_MARKERS = (".git", ".hg", "pyproject.toml")


def project_root(start: Path) -> Path | None:
    """The closest directory at or above ``start`` holding one of :data:`_PROJECT_MARKERS`
    (``.git`` may be the file of a worktree or submodule)."""
    directory = start.resolve()
    if not directory.is_dir():
        directory = directory.parent
    for candidate in (directory, *directory.parents):
        if any((candidate / marker).exists() for marker in _PROJECT_MARKERS):
            return candidate
    return None


def common_parent(paths: Sequence[Path]) -> Path:
    """The deepest directory that holds every path (a file counts as its directory)."""
    directories = []
    for path in paths:
        real = path.resolve()
        directories.append(str(real if real.is_dir() else real.parent))
    return Path(os.path.commonpath(directories))


def load_config(
    start: Path, explicit: Path | None = None, paths: Sequence[Path] = ()
) -> CheckConfig:
    """Read the configuration for a run over ``paths`` started at ``start`` (the first path,
    else the cwd), or from the ``explicit`` file."""
    pyproject = explicit if explicit is not None else find_pyproject(start)
    if pyproject is None:
        # No table anywhere above: the enclosing project or repository is the project;
        # outside one, the paths given are. The cwd is the project only when it is the path.
        root = project_root(start) or common_parent(list(paths) or [start])
        return CheckConfig(root=root)
    from esper_migrate.discover import read_regular_file  # never blocks on a FIFO

    try:
        text = read_regular_file(pyproject).decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{pyproject}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{pyproject}: cannot read: not UTF-8 ({exc.reason})") from None
    tool = _parse(pyproject, text).get("tool", {})
    table = tool.get(TABLE, {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.{TABLE}] must be a table")
    return config_from_table(table, pyproject)


def config_from_table(table: dict[str, object], pyproject: Path) -> CheckConfig:
    """Validate one ``[tool.esper-migrate]`` table; errors name the key, never dump values."""
    where = f"{pyproject}: [tool.{TABLE}]"
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        known = ", ".join(sorted(_KNOWN_KEYS))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known keys: {known})")
    root = pyproject.resolve().parent
    paths = tuple(root / p for p in _strings(table, "paths", where))
    exclude = tuple(_strings(table, "exclude", where))
    _validate_excludes(exclude, where)
    spec = _optional_path(table, "spec", where, root)
    baseline = _optional_path(table, "baseline", where, root)
    fail_tiers = frozenset(Tier)
    if "fail-tiers" in table:
        fail_tiers = frozenset(
            _enum_member(Tier, value, "fail-tiers", where)
            for value in _strings(table, "fail-tiers", where)
        )
    fail_on = frozenset(Code)
    if "fail-on" in table:
        fail_on = frozenset(
            _enum_member(Code, value, "fail-on", where)
            for value in _strings(table, "fail-on", where)
        )
    return CheckConfig(
        root=root,
        source=pyproject,
        paths=paths,
        exclude=exclude,
        spec=spec,
        fail_tiers=fail_tiers,
        fail_on=fail_on,
        baseline=baseline,
    )


def _strings(table: dict[str, object], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: {key!r} must be a list of strings, got {type(value).__name__}")
    return [str(item) for item in value]


#: Paths that no useful ``exclude`` pattern matches all of: one that does leaves nothing to run
#: on, which a CI job would report as a clean pass.
_PROBES = ("module.py", "src/package/module.py", "tests/test_module.py")


def _validate_excludes(patterns: Sequence[str], where: str) -> None:
    import pathspec  # discovery imports it anyway; the config module stays light without it

    for pattern in patterns:
        try:
            spec = pathspec.PathSpec.from_lines("gitignore", [pattern])
        except (ValueError, re.error) as exc:  # GitIgnorePatternError is a ValueError
            raise ConfigError(
                f"{where}: 'exclude' pattern {pattern!r} is not a valid gitignore pattern: {exc}"
            ) from None
        if all(spec.match_file(probe) for probe in _PROBES):
            raise ConfigError(
                f"{where}: 'exclude' pattern {pattern!r} matches every Python file, "
                "which would leave nothing to check"
            )


def _optional_path(table: dict[str, object], key: str, where: str, root: Path) -> Path | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key!r} must be a non-empty string (a path)")
    return root / value


def _enum_member(enum: type[_E], value: str, key: str, where: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)
        raise ConfigError(f"{where}: {key!r} has {value!r}; allowed: {allowed}") from None
