"""Which files a run looks at: Python files under the paths, minus ``.gitignore`` and excludes.

Only the cheap part happens here (walking and reading); the text prefilter is applied by the
engine so that callers that cache by content (``check``) see every file.

The walk is the run's boundary with a hostile tree. Nothing found here can block, escape or
crash a run: a FIFO, device or socket named ``*.py`` is never opened (a ``stat`` decides
first, and :func:`read_regular_file` opens with ``O_NONBLOCK`` in case the file changed kind
since), a symlink whose target leaves the project root is skipped (so it is never written),
symlink loops and dangling links are skipped, and an unreadable directory is reported instead
of silently contributing nothing. Every such entry comes back as a :class:`Skipped` that the
commands print.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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

#: The temporary files :mod:`esper_migrate.safe_write` creates beside a file it replaces:
#: ``.<name>.esper-migrate-<pid>-<random>.tmp``. The pid tells a later run whether the
#: writer is gone (killed with SIGKILL, say), so that its leftovers can be removed.
TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.esper-migrate-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")


@dataclass(frozen=True)
class Skipped:
    """An entry under the paths that the run did not read, and why."""

    path: Path
    reason: str
    #: Whether Python files may hide behind it (an unreadable directory): the run cannot vouch
    #: for what it did not see, so the commands count it as an error, not a note.
    hides_code: bool = False


@dataclass
class Discovery:
    """What a walk found."""

    #: Regular Python files to read, sorted, each once (a symlink to another file of the
    #: list is dropped in favour of the file itself).
    files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Python files left out by the configured ``exclude`` patterns (not by ``.gitignore``).
    excluded: int = 0
    #: esper-migrate temporary files seen on the way (see :data:`TEMP_FILE`).
    temp_files: list[Path] = field(default_factory=list)


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


def within(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or below it (both physical, normalised)."""
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


class _Walk:
    """One walk: the patterns, the boundary and what has been found so far."""

    def __init__(
        self, excludes: Iterable[str], exclude_root: Path | None, boundary: Path | None
    ) -> None:
        self.patterns = pathspec.PathSpec.from_lines("gitignore", list(excludes))
        self.root = os.path.realpath(exclude_root) if exclude_root is not None else None
        self.boundary = os.path.realpath(boundary) if boundary is not None else None
        self.found = Discovery()
        self.by_real: dict[str, Path] = {}

    def excluded(self, rel_to_root: str | None, rel_to_walk: str) -> bool:
        # Patterns are relative to the project root; outside it, to the walked directory.
        return self.patterns.match_file(rel_to_root if rel_to_root is not None else rel_to_walk)

    def skip(self, path: Path, reason: str, hides_code: bool = False) -> None:
        self.found.skipped.append(Skipped(path, reason, hides_code))

    def consider(self, path: Path, real_parent: str, bound: str | None) -> None:
        """Keep ``path`` if it is a regular file whose real location stays inside ``bound``.

        ``real_parent`` is the physical directory the entry sits in: only the entry itself
        can be a link (the walk never follows directory links), so a plain file costs one
        ``lstat`` and no ``realpath``.
        """
        try:
            st = os.lstat(path)
        except OSError as exc:
            self.skip(path, f"cannot stat: {exc.strerror}", hides_code=True)
            return
        real = os.path.join(real_parent, path.name)
        if stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    self.skip(path, "symlink loop")
                elif exc.errno == errno.ENOENT:
                    self.skip(path, f"dangling symlink (to {os.readlink(path)})")
                else:
                    self.skip(path, f"cannot follow symlink: {exc.strerror}", hides_code=True)
                return
            real = os.path.realpath(path)
            if bound is not None and not within(real, bound):
                self.skip(path, f"symlink to {real}, outside the project root {bound}")
                return
        if not stat.S_ISREG(st.st_mode):
            self.skip(path, f"{_kind(st.st_mode)}, not a regular file; never opened")
            return
        other = self.by_real.get(real)
        if other is not None:
            # Two names for one file: keep the file's own name, never plan it twice.
            if os.path.islink(other) and not os.path.islink(path):
                self.by_real[real] = path
            return
        self.by_real[real] = path

    def directory(self, top: Path) -> None:
        real_top = os.path.realpath(top)
        bound = self.boundary
        if bound is not None and not within(os.path.abspath(top), bound):
            bound = real_top  # a path given outside the project root bounds itself
        root_prefix: str | None = None
        if self.root is not None and within(real_top, self.root):
            rel_top = os.path.relpath(real_top, self.root).replace(os.sep, "/")
            root_prefix = "" if rel_top == "." else rel_top + "/"
        ignore = _gitignore(Path(real_top))

        def unreadable(exc: OSError) -> None:
            where = Path(exc.filename) if exc.filename else top
            self.skip(where, f"unreadable directory: {exc.strerror}", hides_code=True)

        for dirpath, dirnames, filenames in os.walk(top, onerror=unreadable):
            rel_dir = os.path.relpath(dirpath, top).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            real_dir = os.path.normpath(os.path.join(real_top, rel_dir))
            keep = []
            for d in sorted(dirnames):
                rel = f"{rel_dir}{d}/"
                if d in ALWAYS_SKIPPED or self.excluded(
                    None if root_prefix is None else root_prefix + rel, rel
                ):
                    continue
                if ignore is not None and ignore.match_file(rel):
                    continue
                if os.path.islink(os.path.join(dirpath, d)):
                    # Never followed: a link can lead out of the tree or back into it.
                    self.skip(Path(dirpath) / d, "symlink to a directory, not followed")
                    continue
                keep.append(d)
            dirnames[:] = keep
            for f in filenames:
                if TEMP_FILE.match(f):
                    self.found.temp_files.append(Path(dirpath) / f)
                    continue
                if not f.endswith(".py"):
                    continue
                rel = rel_dir + f
                if ignore is not None and ignore.match_file(rel):
                    continue
                if self.excluded(None if root_prefix is None else root_prefix + rel, rel):
                    self.found.excluded += 1
                    continue
                self.consider(Path(dirpath) / f, real_dir, bound)

    def named_file(self, path: Path) -> None:
        """A path named on the command line that is not a directory: kept even if excluded."""
        bound = self.boundary
        if bound is not None and not within(os.path.abspath(path), bound):
            bound = None  # named outside the project root: the user chose it
        self.consider(path, os.path.realpath(path.parent), bound)


def walk(
    paths: Sequence[str | Path],
    excludes: Iterable[str] = (),
    exclude_root: Path | None = None,
    boundary: Path | None = None,
) -> Discovery:
    """Python files under ``paths`` (files named explicitly are always kept), and what was
    skipped on the way.

    ``excludes`` are gitignore-style patterns relative to ``exclude_root`` (the configuration's
    project root), or to each walked directory when there is no root. ``boundary`` (the project
    root) is the tree's edge: a file reached through a symlink whose target lies outside it is
    skipped. A path given outside the boundary is bounded by itself.
    """
    state = _Walk(excludes, exclude_root, boundary)
    for raw in paths:
        path = Path(raw)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if os.path.islink(path):
                state.skip(path, f"dangling symlink (to {os.readlink(path)})")
                continue
            raise FileNotFoundError(f"no such file or directory: {path}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                state.skip(path, "symlink loop")
                continue
            raise
        if stat.S_ISDIR(st.st_mode):
            state.directory(path)
        else:
            state.named_file(path)
    found = state.found
    found.files = sorted(state.by_real.values())
    return found


def discover(
    paths: Sequence[str | Path],
    excludes: Iterable[str] = (),
    exclude_root: Path | None = None,
    boundary: Path | None = None,
) -> list[Path]:
    """The regular Python files of :func:`walk` (what was skipped is dropped: callers that
    report it use :func:`walk`)."""
    return walk(paths, excludes, exclude_root, boundary).files


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path``, which must be a regular file.

    Opened with ``O_NONBLOCK``, then checked with ``fstat``: a FIFO put in the file's place
    after the walk looked at it makes this raise instead of waiting forever for a writer.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"{_kind(mode)}, not a regular file", str(path))
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


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
