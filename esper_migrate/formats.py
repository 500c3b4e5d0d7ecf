"""The findings of ``check`` as text, JSON, GitHub workflow annotations or SARIF 2.1.0.

Every format carries the same facts per finding: path, line, column (both 1-based), code,
message, confidence tier, whether it fails the build, and the edit ``apply`` would make or the
reason it cannot make one.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from esper_migrate import __version__
from esper_migrate.console import paint, plural
from esper_migrate.records import Code, Finding

INFORMATION_URI = "https://github.com/esper-phase4/esper-phase4#esper-migrate-check"


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    GITHUB = "github"
    SARIF = "sarif"


@dataclass(frozen=True, slots=True)
class RuleDoc:
    name: str
    summary: str
    explanation: str


def rule_docs() -> dict[Code, RuleDoc]:
    """Name and help text per code, from the rules themselves (imported on first use: a text
    report never pays for them)."""
    from esper_migrate.rule import all_rules

    return {r.CODE: RuleDoc(r.NAME, r.SUMMARY, r.doc()) for r in all_rules()}


@dataclass(frozen=True, slots=True)
class Reported:
    """A finding as reported: after suppression and baseline, with its build outcome."""

    finding: Finding
    fails: bool


def render(
    items: Sequence[Reported],
    fmt: OutputFormat,
    *,
    statistics: bool = False,
    quiet: bool = False,
    color: bool = False,
) -> str:
    """The whole report in one format (``statistics`` replaces the list in text/json).

    ``quiet`` and ``color`` concern the text format only: the closing count line is left out,
    and codes, paths and edits are coloured (for a terminal)."""
    if statistics and fmt in (OutputFormat.TEXT, OutputFormat.JSON):
        return render_statistics(items, as_json=fmt is OutputFormat.JSON)
    if fmt is OutputFormat.TEXT:
        return render_text(items, quiet=quiet, color=color)
    if fmt is OutputFormat.JSON:
        return render_json(items)
    if fmt is OutputFormat.GITHUB:
        return render_github(items)
    return render_sarif(items)


def _edit_text(finding: Finding) -> str:
    if finding.fix is not None:
        return f"fix: {finding.fix}"
    reason = finding.unfixable_reason or "apply cannot derive a value here"
    if reason.startswith(finding.message + "; "):  # the engine repeats the message: say it once
        reason = reason[len(finding.message) + 2 :]
    return f"cannot fix: {reason}"


def render_text(items: Sequence[Reported], *, quiet: bool = False, color: bool = False) -> str:
    lines: list[str] = []
    for item in items:
        f = item.finding
        marker = "" if item.fails else " (not failing)"
        where = paint(f"{f.path}:{f.line}:{f.col}:", "bold", color)
        code = paint(str(f.code), "red" if item.fails else "yellow", color)
        lines.append(f"{where} {code} {f.message} [{f.tier}]{marker}")
        edit = _edit_text(f)
        lines.append("    " + paint(edit, "green" if f.fix is not None else "yellow", color))
    failing = sum(item.fails for item in items)
    if quiet:
        return "".join(line + "\n" for line in lines)
    if not items:
        lines.append(paint("All checks passed.", "green", color))
    else:
        lines.append(f"Found {plural(len(items), 'finding')} ({failing} failing).")
    return "\n".join(lines) + "\n"


def display_path(path: str, cwd: str | None = None) -> str:
    """``path`` as a user at ``cwd`` names it: relative (posix) when below, else absolute."""
    cwd = cwd if cwd is not None else os.getcwd()
    absolute = os.path.normpath(os.path.join(cwd, path))
    relative = os.path.relpath(absolute, cwd)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return absolute.replace(os.sep, "/")
    return relative.replace(os.sep, "/")


def _lines(text: str) -> list[str]:
    # On "\n" alone, as git and patch do: str.splitlines also breaks at form feeds, "\r" and
    # other separators that a patch keeps inside its lines.
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


_NO_NEWLINE = "\\ No newline at end of file\n"


def unified_diff(path: str, before: str, after: str, *, color: bool = False) -> str:
    """A git-style unified diff of one file (``--- a/PATH``, ``+++ b/PATH``) that ``git apply``
    and ``patch -p1`` take when run where ``path`` is relative to; a last line without a
    newline is marked as git marks it, so the patch applies byte for byte."""
    import difflib

    name = path.lstrip("/")
    out: list[str] = []
    for line in difflib.unified_diff(
        _lines(before),
        _lines(after),
        fromfile=f"a/{name}",
        tofile=f"b/{name}",
    ):
        end = "\n" if line.endswith("\n") else "\n" + _NO_NEWLINE
        body = line.removesuffix("\n")
        if color:
            if line.startswith(("---", "+++")):
                body = paint(body, "bold", True)
            elif line.startswith("@@"):
                body = paint(body, "cyan", True)
            elif line.startswith("-"):
                body = paint(body, "red", True)
            elif line.startswith("+"):
                body = paint(body, "green", True)
        out.append(body + end)
    return "".join(out)


def _as_dict(item: Reported, docs: dict[Code, RuleDoc]) -> dict[str, object]:
    f = item.finding
    return {
        "path": f.path,
        "line": f.line,
        "col": f.col,
        "code": str(f.code),
        "name": docs[f.code].name,
        "message": f.message,
        "tier": str(f.tier),
        "fails": item.fails,
        "fix": f.fix,
        "unfixable_reason": f.unfixable_reason,
    }


def render_json(items: Sequence[Reported]) -> str:
    return json.dumps([_as_dict(item, rule_docs()) for item in items], indent=2) + "\n"


def render_statistics(items: Sequence[Reported], *, as_json: bool = False) -> str:
    """Counts per code (most frequent first), like ``ruff --statistics``."""
    docs = rule_docs()
    counts = Counter(item.finding.code for item in items)
    failing = Counter(item.finding.code for item in items if item.fails)
    ordered = sorted(counts, key=lambda code: (-counts[code], code))
    if as_json:
        rows = [
            {
                "code": str(code),
                "name": docs[code].name,
                "count": counts[code],
                "failing": failing[code],
            }
            for code in ordered
        ]
        return json.dumps(rows, indent=2) + "\n"
    lines = [
        f"{counts[code]:>5}  {code}  {docs[code].name:<26}  ({failing[code]} failing)"
        for code in ordered
    ]
    lines.append(f"{sum(counts.values()):>5}  total")
    return "\n".join(lines) + "\n"


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(items: Sequence[Reported]) -> str:
    """GitHub Actions workflow commands: one annotation per finding on the changed file."""
    lines = []
    docs = rule_docs()
    for item in items:
        f = item.finding
        level = "error" if item.fails else "warning"
        title = _gh_property(f"{f.code} {docs[f.code].name} [{f.tier}]")
        props = f"file={_gh_property(f.path)},line={f.line},col={f.col},title={title}"
        message = _gh_data(f"{f.message}\n{_edit_text(f)}")
        lines.append(f"::{level} {props}::{message}")
    return "".join(line + "\n" for line in lines)


def sarif_document(items: Sequence[Reported]) -> dict[str, object]:
    """A SARIF 2.1.0 log with one run, the full rule metadata and one result per finding."""
    docs = rule_docs()
    codes = list(Code)
    rules = [
        {
            "id": str(code),
            "name": docs[code].name,
            "shortDescription": {"text": docs[code].summary},
            "fullDescription": {"text": docs[code].explanation},
            "help": {"text": f"{docs[code].summary} {docs[code].explanation}"},
            "helpUri": f"{INFORMATION_URI}-{str(code).lower()}",
            "defaultConfiguration": {"level": "error"},
        }
        for code in codes
    ]
    results = []
    for item in items:
        f = item.finding
        results.append(
            {
                "ruleId": str(f.code),
                "ruleIndex": codes.index(f.code),
                "level": "error" if item.fails else "warning",
                "message": {"text": f"{f.message} ({_edit_text(f)})"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f.path.replace("\\", "/")},
                            "region": {"startLine": f.line, "startColumn": f.col},
                        }
                    }
                ],
                "properties": {
                    "tier": str(f.tier),
                    "fails": item.fails,
                    "fix": f.fix,
                    "unfixableReason": f.unfixable_reason,
                },
            }
        )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "esper-migrate",
                        "version": __version__,
                        "semanticVersion": __version__.split("+")[0],
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def render_sarif(items: Sequence[Reported]) -> str:
    return json.dumps(sarif_document(items), indent=2) + "\n"
