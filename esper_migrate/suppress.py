"""Per-line suppression: ``# esper-migrate: ignore[EM001]`` or a bare ``# esper-migrate: ignore``.

The comment silences findings on its own line, or, when it stands alone on a line, on the line
directly below it (so a long call can carry it above). Codes are comma-separated; a bare
comment silences every code. A trailing comment never reaches the next line: a comment meant
for one statement must not silence its neighbour.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from esper_migrate.records import Finding

_DIRECTIVE = re.compile(r"#\s*esper-migrate:\s*ignore\b(?:\[(?P<codes>[^\]]*)\])?")

#: For one line: None = all codes, else the set of codes it suppresses.
Suppression = frozenset[str] | None


@dataclass(frozen=True)
class Directive:
    """One suppression comment: where it is, what it silences, and the lines it covers."""

    line: int
    #: 0-based column of the ``#``.
    col: int
    codes: Suppression
    lines: tuple[int, ...]


def directives(source: str) -> list[Directive]:
    """The suppression comments of a file's text."""
    if "esper-migrate:" not in source:  # almost every file: no scan at all
        return []
    found: list[Directive] = []
    for number, text in enumerate(source.splitlines(), start=1):
        if "esper-migrate:" not in text:
            continue
        match = _DIRECTIVE.search(text)
        if match is None:
            continue
        raw = match.group("codes")
        codes: Suppression = None
        if raw is not None:
            codes = frozenset(c.strip().upper() for c in raw.split(",") if c.strip())
        # A comment-only line covers the next line.
        alone = text[: match.start()].strip() == ""
        lines = (number, number + 1) if alone else (number,)
        found.append(Directive(number, match.start(), codes, lines))
    return found


def suppressions(source: str) -> dict[int, Suppression]:
    """Map 1-based line number -> what is suppressed there, for a file's text."""
    result: dict[int, Suppression] = {}
    for directive in directives(source):
        for line in directive.lines:
            _merge(result, line, directive.codes)
    return result


def _merge(table: dict[int, Suppression], line: int, codes: Suppression) -> None:
    if line in table:
        existing = table[line]
        table[line] = None if existing is None or codes is None else existing | codes
    else:
        table[line] = codes


def is_suppressed(finding: Finding, table: dict[int, Suppression]) -> bool:
    if finding.line not in table:
        return False
    codes = table[finding.line]
    return codes is None or str(finding.code) in codes


def filter_suppressed(findings: Iterable[Finding], source: str) -> list[Finding]:
    """The findings of one file that no comment in ``source`` suppresses."""
    findings = list(findings)
    if not findings:
        return findings
    table = suppressions(source)
    return [f for f in findings if not is_suppressed(f, table)]
