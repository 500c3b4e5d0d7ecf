"""``.esper_migrate_cache/``: per-file index summaries and findings, keyed on content.

Everything cached is a pure function of its key:
- a file's index summary: of (path, content hash), under a cache file named for the tool
  version (and the stamp of its modules) and the spec hash, so a new version, an edited
  engine or another spec never sees old entries;
- a file's findings: of (path, content hash) and the fingerprint of the whole index (the
  findings of one file depend on the definitions in all the others).

A warm run over an unchanged tree reads each file once to hash it, finds that every path has
the same hash as last time (so the index, hence its fingerprint, is the same) and returns
the cached findings: nothing is parsed and the summaries file is not even loaded.

A cache file is a user-writable file in the tree: one that is not JSON, or whose entries do
not have the shape this version writes (a hand edit, a merge, another tool), is discarded as
a whole when it is loaded, and the next save rewrites it; it never fails a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from esper_migrate import __version__
from esper_migrate.records import Code, Finding, Tier

DIRECTORY = ".esper_migrate_cache"
_LAYOUT = 1
#: How many (version, spec) keys keep their files (this run's included).
_KEEP_KEYS = 3


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def finding_to_json(finding: Finding) -> list[object]:
    return [
        finding.line,
        finding.col,
        str(finding.code),
        finding.message,
        str(finding.tier),
        finding.fix,
        finding.unfixable_reason,
    ]


def finding_from_json(path: str, row: list[Any]) -> Finding:
    line, col, code, message, tier, fix, reason = row
    return Finding(path, int(line), int(col), Code(code), str(message), Tier(tier), fix, reason)


class CheckCache:
    """The cache for one (tool version, spec) pair under ``root``; a no-op when disabled."""

    def __init__(self, root: Path, spec_hash: str, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.directory = root / DIRECTORY
        key = content_hash(f"{_LAYOUT}\0{__version__}\0{_code_stamp()}\0{spec_hash}".encode())
        self._findings_file = self.directory / f"findings-{key}.json"
        self._summaries_file = self.directory / f"summaries-{key}.json"
        # path -> [content hash, findings rows]; "fingerprint" of the index they were made with.
        self._findings: dict[str, list[Any]] = {}
        self._fingerprint: str | None = None
        self._errors: dict[str, str] = {}
        self._summaries: dict[str, list[Any]] | None = None  # loaded on the first miss only
        self._dirty_findings = False
        self._dirty_summaries = False
        if enabled:
            document = _load(self._findings_file)
            files = document.get("files")
            fingerprint = document.get("fingerprint")
            errors = document.get("errors", {})
            if (
                isinstance(fingerprint, str)
                and isinstance(files, dict)
                and _valid_findings(files)
                and isinstance(errors, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in errors.items())
            ):
                self._findings = files
                self._fingerprint = fingerprint
                self._errors = errors

    # -- the warm path ---------------------------------------------------------------------

    def unchanged_tree(
        self, hashes: dict[str, str], targets: set[str]
    ) -> tuple[dict[str, list[Finding]], dict[str, str]] | None:
        """The cached findings of ``targets`` (and the files that did not parse) if exactly
        these files (targets and index-only context) with exactly these contents were seen last
        time, so that the index is the same, and every target was checked then; else None."""
        if not self.enabled or self._fingerprint is None or len(hashes) != len(self._findings):
            return None
        result: dict[str, list[Finding]] = {}
        for path, digest in hashes.items():
            entry = self._findings.get(path)
            if entry is None or entry[0] != digest:
                return None
            if path in targets:
                if entry[1] is None:
                    return None  # it was index-only context last time
                result[path] = [finding_from_json(path, row) for row in entry[1]]
        return result, dict(self._errors)

    # -- per-file entries ------------------------------------------------------------------

    def summary(self, path: str, digest: str) -> object | None:
        if not self.enabled:
            return None
        if self._summaries is None:
            document = _load(self._summaries_file)
            files = document.get("files")
            self._summaries = files if isinstance(files, dict) and _valid_summaries(files) else {}
        entry = self._summaries.get(path)
        if entry is None or entry[0] != digest:
            return None
        summary: object = entry[1]
        return summary

    def store_summary(self, path: str, digest: str, summary: object) -> None:
        if not self.enabled:
            return
        if self._summaries is None:
            self.summary(path, digest)  # loads the file so that other entries are kept
        assert self._summaries is not None
        self._summaries[path] = [digest, summary]
        self._dirty_summaries = True

    def findings(self, path: str, digest: str, fingerprint: str) -> list[Finding] | None:
        if not self.enabled or fingerprint != self._fingerprint:
            return None
        entry = self._findings.get(path)
        if entry is None or entry[0] != digest or entry[1] is None:
            return None
        return [finding_from_json(path, row) for row in entry[1]]

    def replace_findings(
        self,
        fingerprint: str,
        per_file: dict[str, tuple[str, list[Finding] | None]],
        errors: dict[str, str] | None = None,
    ) -> None:
        """Record a whole run: path -> (content hash, findings, or None for a file that only
        fed the index), and the files that did not parse (path -> message). Findings of an
        index-only file that are still valid (same content, same index) are kept."""
        if not self.enabled:
            return
        old, old_fingerprint = self._findings, self._fingerprint
        self._fingerprint = fingerprint
        self._errors = dict(errors or {})
        self._findings = {}
        for path, (digest, found) in per_file.items():
            rows: list[object] | None = None
            if found is not None:
                rows = [finding_to_json(f) for f in found]
            elif fingerprint == old_fingerprint and path in old and old[path][0] == digest:
                rows = old[path][1]
            self._findings[path] = [digest, rows]
        self._dirty_findings = True

    def prune_summaries(self, live: set[str]) -> None:
        """Forget the summaries of files that are no longer part of the tree."""
        if self._summaries is None:
            return
        stale = set(self._summaries) - live
        for path in stale:
            del self._summaries[path]
        self._dirty_summaries = self._dirty_summaries or bool(stale)

    def save(self) -> None:
        """Write what changed; a cache that cannot be written is skipped, never fatal."""
        if not self.enabled or not (self._dirty_findings or self._dirty_summaries):
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            gitignore = self.directory / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# Created by esper-migrate\n*\n", encoding="utf-8")
            if self._dirty_summaries and self._summaries is not None:
                _dump(self._summaries_file, {"files": self._summaries})
            if self._dirty_findings:
                _dump(
                    self._findings_file,
                    {
                        "fingerprint": self._fingerprint,
                        "files": self._findings,
                        "errors": self._errors,
                    },
                )
            self._prune_other_keys()
        except OSError:
            return
        self._dirty_findings = self._dirty_summaries = False

    def _prune_other_keys(self) -> None:
        """Keep the entries of the few most recent (version, spec) keys; older ones are dead
        weight after an upgrade or a spec change."""
        others = sorted(
            (f for f in self.directory.glob("findings-*.json") if f != self._findings_file),
            key=lambda f: f.stat().st_mtime,
            reverse=True,
        )
        for stale in others[_KEEP_KEYS - 1 :]:
            key = stale.name.removeprefix("findings-")
            for file in (stale, self.directory / f"summaries-{key}"):
                with contextlib.suppress(FileNotFoundError):
                    file.unlink()


def _code_stamp() -> str:
    """Size and mtime of this package's modules: an edited engine (a development install
    whose version did not change) never reads entries an older engine wrote."""
    package = Path(__file__).resolve().parent
    parts = []
    for directory, _, files in os.walk(package):
        for name in sorted(files):
            if name.endswith((".py", ".toml")):
                st = os.stat(os.path.join(directory, name))
                parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return content_hash("\n".join(sorted(parts)).encode())


_CODES = frozenset(str(c) for c in Code)
_TIERS = frozenset(str(t) for t in Tier)


def _valid_row(row: object) -> bool:
    """A finding row as :func:`finding_to_json` writes it."""
    if not isinstance(row, list) or len(row) != 7:
        return False
    line, col, code, message, tier, fix, reason = row
    return (
        type(line) is int
        and type(col) is int
        and code in _CODES
        and isinstance(message, str)
        and tier in _TIERS
        and (fix is None or isinstance(fix, str))
        and (reason is None or isinstance(reason, str))
    )


def _valid_findings(files: dict[str, Any]) -> bool:
    """``{path: [content hash, rows or None]}``, every row well-formed."""
    for entry in files.values():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            return False
        rows = entry[1]
        if rows is not None and not (isinstance(rows, list) and all(map(_valid_row, rows))):
            return False
    return True


def _valid_summaries(files: dict[str, Any]) -> bool:
    """``{path: [content hash, summary]}`` with each summary a dict of exactly the keys of
    ``index.FileSummary`` (what lies inside is the index's to read; ``check`` discards the
    cache and runs again without it if that fails)."""
    from esper_migrate.index import FileSummary  # the cold path, which imports it anyway

    keys = set(FileSummary.__annotations__)
    for entry in files.values():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            return False
        if not isinstance(entry[1], dict) or set(entry[1]) != keys:
            return False
    return True


def discard(root: Path) -> None:
    """Delete the cache files under ``root`` (the directory and its lock stay)."""
    directory = root / DIRECTORY
    for pattern in ("findings-*.json", "summaries-*.json"):
        for file in directory.glob(pattern):
            with contextlib.suppress(OSError):
                file.unlink()


def _load(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            document = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return {}  # missing or corrupt: start empty, the next save repairs it
    return document if isinstance(document, dict) else {}


def _dump(file: Path, document: dict[str, Any]) -> None:
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        # One-shot dumps: json.dump() streams through the pure-Python encoder, ~10x slower.
        payload = json.dumps(document, separators=(",", ":"))
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(payload)
        os.replace(tmp, file)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
