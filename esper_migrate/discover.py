"""Which files a run looks at: Python files under the paths, minus ``.gitignore`` and excludes.

Only the cheap part happens here (walking and reading); the text prefilter is applied by the
engine so that callers that cache by content (``check``) see every file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pathspec

#: Directories never worth walking into.
ALWAYS_SKIPPED = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".tox",
        ".nox",
        ".eggs",
        "node_modules",
        ".esper_migrate_cache",
    }
)


def _gitignore(root: Path) -> pathspec.PathSpec[Any] | None:
    lines: list[str] = []
    for directory in [root, *root.parents]:
        gi = directory / ".gitignore"
        if gi.is_file() and directory == root:
            lines.extend(gi.read_text("utf-8", "replace").splitlines())
        if (directory / ".git").exists():
            if directory != root and gi.is_file():
                lines.extend(gi.read_text("utf-8", "replace").splitlines())
            break
    if not lines:
        return None
    return pathspec.PathSpec.from_lines("gitignore", lines)


def discover(
    paths: Sequence[str | Path], excludes: Iterable[str] = (), exclude_root: Path | None = None
) -> list[Path]:
    """Python files under ``paths`` (files named explicitly are always kept), sorted.

    ``excludes`` are gitignore-style patterns relative to ``exclude_root`` (the configuration's
    project root), or to each walked directory when there is no root.
    """
    patterns = pathspec.PathSpec.from_lines("gitignore", list(excludes))
    root = exclude_root.resolve() if exclude_root is not None else None

    def excluded(full: Path, rel: str, is_dir: bool) -> bool:
        if root is not None:
            with contextlib.suppress(ValueError):  # outside the root: relative to the walk
                rel = full.resolve().relative_to(root).as_posix() + ("/" if is_dir else "")
        return patterns.match_file(rel)

    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.add(path)
            continue
        if not path.is_dir():
            raise FileNotFoundError(f"no such file or directory: {path}")
        ignore = _gitignore(path.resolve())
        for dirpath, dirnames, filenames in os.walk(path):
            rel_dir = Path(dirpath).relative_to(path)
            keep = []
            for d in sorted(dirnames):
                rel = (rel_dir / d).as_posix() + "/"
                if d in ALWAYS_SKIPPED or excluded(Path(dirpath) / d, rel, True):
                    continue
                if ignore is not None and ignore.match_file(rel):
                    continue
                keep.append(d)
            dirnames[:] = keep
            for f in filenames:
                if not f.endswith(".py"):
                    continue
                rel = (rel_dir / f).as_posix()
                if excluded(Path(dirpath) / f, rel, False) or (
                    ignore is not None and ignore.match_file(rel)
                ):
                    continue
                found.add(Path(dirpath) / f)
    return sorted(found)


def strictly_inside(paths: Iterable[str | os.PathLike[str]], root: Path) -> bool:
    """Whether every path lies below the project ``root`` and none is the root itself.

    Then the rest of the project must be read as index context: checking or migrating one
    file still resolves the classes defined elsewhere. Paths compare physically (symlinks
    resolved) as strings, which is cheap enough for check's warm path.
    """
    top = os.path.realpath(root)
    prefix = top.rstrip(os.sep) + os.sep
    resolved = [os.path.realpath(p) for p in paths]
    return top not in resolved and all(r.startswith(prefix) for r in resolved)
