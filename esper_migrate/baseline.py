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


def read_baseline(file: Path) -> Counter[Key]:
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(
            f"{file}: baseline not found (create it with --write-baseline)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{file}: cannot read baseline: {exc}") from None
    if (
        not isinstance(document, dict)
        or document.get("tool") != "esper-migrate"
        or document.get("version") != FORMAT_VERSION
        or not isinstance(document.get("findings"), list)
    ):
        raise BaselineError(f"{file}: not an esper-migrate baseline (format {FORMAT_VERSION})")
    counts: Counter[Key] = Counter()
    for index, entry in enumerate(document["findings"]):
        try:
            key = (str(entry["path"]), str(entry["code"]), str(entry["text"]))
            count = int(entry["count"])
        except (KeyError, TypeError, ValueError):
            raise BaselineError(f"{file}: findings[{index}] is malformed") from None
        counts[key] += count
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
