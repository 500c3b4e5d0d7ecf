"""``--baseline FILE``: accept the findings of today, fail only on new ones.

A finding is identified without its line number, so that edits above it do not make it
"new": by (path, code, its source line with whitespace normalised, occurrence). The baseline
stores how many findings each (path, code, text) key had; a run matches its findings in line
order against those counts, so a second identical call added later is still caught.

Paths are stored relative to the baseline file's directory (posix style): the file can be
committed and used from any working directory.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from esper_migrate import __version__
from esper_migrate.records import Finding

FORMAT_VERSION = 1

Key = tuple[str, str, str]


class BaselineError(ValueError):
    """The baseline file cannot be read; the message names it."""


def normalise(text: str) -> str:
    return " ".join(text.split())


def _relative(path: str, base: Path) -> str:
    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return Path(os.path.relpath(absolute, base)).as_posix()


def keys_of(
    findings: Sequence[Finding], line_text: Callable[[str, int], str], base: Path
) -> list[Key]:
    """The identity key of each finding (same order)."""
    return [
        (_relative(f.path, base), str(f.code), normalise(line_text(f.path, f.line)))
        for f in findings
    ]


def write_baseline(
    file: Path, findings: Sequence[Finding], line_text: Callable[[str, int], str]
) -> None:
    """Record ``findings`` in ``file`` (atomically)."""
    base = file.resolve().parent
    counts = Counter(keys_of(findings, line_text, base))
    entries = [
        {"path": path, "code": code, "text": text, "count": count}
        for (path, code, text), count in sorted(counts.items())
    ]
    document: dict[str, object] = {
        "tool": "esper-migrate",
        "version": FORMAT_VERSION,
        "written_by": __version__,
        "findings": entries,
    }
    payload = json.dumps(document, indent=2) + "\n"
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(payload, encoding="utf-8")
        os.replace(tmp, file)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BaselineError(f"{file}: cannot write baseline: {exc.strerror}") from None


def _document(file: Path) -> object:
    from esper_migrate.discover import read_regular_file

    try:
        raw = read_regular_file(file)
    except FileNotFoundError:
        raise BaselineError(
            f"{file}: baseline not found (create it with --write-baseline)"
        ) from None
    except OSError as exc:
        raise BaselineError(f"{file}: cannot read baseline: {exc.strerror or exc}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BaselineError(f"{file}: cannot read baseline: not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{file}: cannot read baseline: invalid JSON: {exc}") from None
    except RecursionError:
        raise BaselineError(f"{file}: cannot read baseline: JSON nested too deeply") from None


def read_baseline(file: Path) -> Counter[Key]:
    """The counts per key in ``file``; :class:`BaselineError` names what is wrong with it."""
    document = _document(file)
    if not isinstance(document, dict) or document.get("tool") != "esper-migrate":
        raise BaselineError(
            f"{file}: not an esper-migrate baseline (a JSON object with "
            '"tool": "esper-migrate", as --write-baseline writes)'
        )
    version = document.get("version")
    if type(version) is not int:
        raise BaselineError(
            f"{file}: 'version' must be an integer format version, got {type(version).__name__}"
        )
    if version != FORMAT_VERSION:
        writer = document.get("written_by")
        by = f" by esper-migrate {writer}" if isinstance(writer, str) else ""
        remedy = "upgrade esper-migrate or rewrite it" if version > FORMAT_VERSION else "rewrite it"
        raise BaselineError(
            f"{file}: baseline format {version} (written{by}); esper-migrate {__version__} "
            f"reads format {FORMAT_VERSION}: {remedy} with --write-baseline"
        )
    entries = document.get("findings")
    if not isinstance(entries, list):
        raise BaselineError(f"{file}: 'findings' must be a list, got {type(entries).__name__}")
    counts: Counter[Key] = Counter()
    for index, entry in enumerate(entries):
        where = f"{file}: findings[{index}]"
        if not isinstance(entry, dict):
            raise BaselineError(f"{where} must be an object, got {type(entry).__name__}")
        for name in ("path", "code", "text"):
            if not isinstance(entry.get(name), str):
                got = type(entry[name]).__name__ if name in entry else "nothing"
                raise BaselineError(f"{where}: {name!r} must be a string, got {got}")
        count = entry.get("count")
        # JSON numbers such as 1e400 or 2.5 are floats (inf, 2.5): never a count.
        if type(count) is not int or count < 1:
            got = repr(count) if type(count) is int else type(count).__name__
            raise BaselineError(f"{where}: 'count' must be a positive integer, got {got}")
        counts[(entry["path"], entry["code"], entry["text"])] += count
    return counts


def new_findings(
    file: Path, findings: Sequence[Finding], line_text: Callable[[str, int], str]
) -> list[Finding]:
    """The findings that the baseline in ``file`` does not account for (order kept)."""
    remaining = read_baseline(file)
    base = file.resolve().parent
    keys = keys_of(findings, line_text, base)
    order = sorted(range(len(findings)), key=lambda i: (findings[i].line, findings[i].col))
    accepted: set[int] = set()
    for i in order:
        if remaining[keys[i]] > 0:
            remaining[keys[i]] -= 1
            accepted.add(i)
    return [f for i, f in enumerate(findings) if i not in accepted]
