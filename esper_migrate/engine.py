"""The engine both commands share: discover -> index -> plan (and, for ``apply``, rewrite).

``check`` uses :func:`plan_tree` and :func:`plan_findings` on its own parsed trees (with its
cache) and adds its rules; :func:`analyze` is the plain EM001/EM002 entry point.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import io
import re
import tokenize
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from esper_migrate.context import FileContext
from esper_migrate.discover import discover
from esper_migrate.index import FileSummary, Index, summarize_tree
from esper_migrate.records import PARSE_ERRORS, Code, Edit, EditKind, Finding, Tier, Unresolved
from esper_migrate.spec import MigrationSpec, load_spec


@dataclass(frozen=True)
class CallInfo:
    """A call that reaches a target method (plain data, for ``check``'s own rules)."""

    path: str
    line: int
    #: 1-based column.
    col: int
    cls: str | None
    method: str
    tier: Tier
    n_positional: int
    keywords: tuple[str, ...]
    #: Whether the call passes the new argument already (by keyword or in its slot).
    has_argument: bool
    #: The definition's parameter names (without self), as indexed.
    params: tuple[str, ...]


@dataclass
class FilePlan:
    """What the engine would do to one file."""

    path: str
    edits: list[Edit] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    calls: list[CallInfo] = field(default_factory=list)
    #: Set when the file cannot be read or parsed (then nothing is planned).
    error: str | None = None
    #: Disjoint (first, last) line ranges of the statements that carry edits: the rewriter
    #: parses only these with libcst.
    regions: list[tuple[int, int]] = field(default_factory=list)


def _children(stmt: ast.stmt) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for name in ("body", "orelse", "finalbody"):
        value = getattr(stmt, name, None)
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, ast.stmt))
    for handler in getattr(stmt, "handlers", []):
        out.extend(handler.body)
    for case in getattr(stmt, "cases", []):
        out.extend(case.body)
    return out


def _first_line(stmt: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(stmt, "decorator_list", [])
    return min([stmt.lineno, *(d.lineno for d in decorators)])


def edit_regions(tree: ast.Module, text: str, edits: list[Edit]) -> list[tuple[int, int]]:
    """The smallest whole-line statements that contain the edits (a parameter edit takes its
    whole def); nested regions merge into the outer one. libcst parses only these."""
    if not edits:
        return []
    lines = text.splitlines()

    def whole_lines(stmt: ast.stmt) -> bool:
        first = lines[stmt.lineno - 1].encode()
        last = lines[(stmt.end_lineno or stmt.lineno) - 1].encode()
        before = first[: stmt.col_offset].decode("utf-8", "replace")
        after = last[stmt.end_col_offset or 0 :].decode("utf-8", "replace").strip()
        return not before.strip() and (not after or after.startswith("#"))

    found: list[tuple[int, int]] = []
    for e in edits:
        line, end = e.anchor[0], e.anchor[2]
        body = tree.body
        best: ast.stmt | None = None
        while True:
            inner = next(
                (s for s in body if _first_line(s) <= line and end <= (s.end_lineno or s.lineno)),
                None,
            )
            if inner is None:
                break
            if best is None or whole_lines(inner) or not whole_lines(best):
                best = inner
            if (
                e.kind is EditKind.PARAMETER
                and isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef)
                and inner.lineno == line
            ):
                best = inner
                break
            body = _children(inner)
        if best is None or not whole_lines(best):
            return []  # no clean statement boundary: the whole file is one region
        found.append((_first_line(best), best.end_lineno or best.lineno))
    merged: list[tuple[int, int]] = []
    for first, last in sorted(found, key=lambda r: (r[0], -r[1])):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def decode(source: bytes) -> str:
    """The text of a Python source file (PEP 263 cookie and BOM honoured)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    except SyntaxError:
        encoding = "utf-8"
    text = source.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text


def prefilter_bytes(spec: MigrationSpec) -> re.Pattern[bytes]:
    return re.compile(spec.prefilter.pattern.encode())


def plan_tree(
    path: str, text: str, tree: ast.Module, index: Index, spec: MigrationSpec
) -> FilePlan:
    """Plan one parsed file against the repository index (pure: no I/O)."""
    from esper_migrate.rules import call_arguments, dict_entries, parameters, storage

    if not index.relevance.search(text):
        return FilePlan(path)
    ctx = FileContext(path, text.encode("utf-8"), tree, index, spec)
    parameters.run(ctx)
    storage.run(ctx)
    dict_entries.run(ctx)
    sites = call_arguments.run(ctx)
    calls = [
        CallInfo(
            path=path,
            line=s.node.lineno,
            col=ctx.char_col(s.node.lineno, s.node.col_offset) + 1,
            cls=s.cls,
            method=s.method,
            tier=s.tier,
            n_positional=len(s.node.args),
            keywords=tuple(k.arg for k in s.node.keywords if k.arg is not None),
            has_argument=call_arguments.has_argument(ctx, s, scope),
            params=tuple(p["name"] for p in s.definition["params"]),
        )
        for s, scope in sites
    ]
    return FilePlan(
        path, ctx.edits, ctx.unresolved, calls, regions=edit_regions(tree, text, ctx.edits)
    )


class Session:
    """One run: the files, their sources and trees, the index; each file parsed once."""

    def __init__(self, spec: MigrationSpec) -> None:
        self.spec = spec
        self._prefilter = prefilter_bytes(spec)
        self.files: list[str] = []
        self.sources: dict[str, bytes] = {}
        self.texts: dict[str, str] = {}
        self.trees: dict[str, ast.Module] = {}
        self.summaries: dict[str, FileSummary] = {}
        self.errors: dict[str, str] = {}
        self._index: Index | None = None

    def add_file(self, path: str, source: bytes, summary: FileSummary | None = None) -> None:
        """Register a file; parse it only if its text can mention a spec name.

        ``summary`` (e.g. from a cache keyed on the content) skips the parse for the index;
        the tree is then parsed lazily if the file must be planned.
        """
        self.files.append(path)
        self.sources[path] = source
        if not self._prefilter.search(source):
            return
        if summary is not None:
            self.summaries[path] = summary
            if summary["error"]:
                self.errors[path] = summary["error"]
            return
        self._parse(path)

    def _parse(self, path: str) -> ast.Module | None:
        if path in self.trees:
            return self.trees[path]
        try:
            text = decode(self.sources[path])
            tree = ast.parse(text, filename=path)
        except PARSE_ERRORS as exc:
            self.errors[path] = f"does not parse: {type(exc).__name__}: {exc}"
            self.summaries[path] = FileSummary(
                path=path, version=0, classes=[], functions={}, error=self.errors[path]
            )
            return None
        self.texts[path] = text
        self.trees[path] = tree
        self.summaries.setdefault(path, summarize_tree(path, tree))
        return tree

    def add_context_file(self, path: str, source: bytes) -> None:
        """A file that informs the index but is never planned (outside the paths given)."""
        if not self._prefilter.search(source):
            return
        try:
            tree = ast.parse(decode(source), filename=path)
        except PARSE_ERRORS:
            return  # not ours to report
        self.summaries[path] = summarize_tree(path, tree)

    @property
    def candidates(self) -> list[str]:
        return [p for p in self.files if p in self.summaries and p not in self.errors]

    @property
    def analysed(self) -> int:
        return len(self.candidates)

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = Index.build(self.summaries.values(), self.spec)
        return self._index

    def plan(self, path: str) -> FilePlan:
        if path in self.errors:
            return FilePlan(path, error=self.errors[path])
        tree = self._parse(path)
        if tree is None:
            return FilePlan(path, error=self.errors[path])
        return plan_tree(path, self.texts[path], tree, self.index, self.spec)

    def plans(self) -> list[FilePlan]:
        return [self.plan(p) for p in self.candidates]


def load_session(
    paths: Sequence[str | Path],
    spec: MigrationSpec,
    excludes: Iterable[str] = (),
    exclude_root: Path | None = None,
    context: Sequence[str | Path] = (),
) -> Session:
    """A session over the files under ``paths``; files under ``context`` (e.g. the project
    root) that are not among them feed the index only (never planned or rewritten), so that
    ``apply one_file.py`` still resolves types defined elsewhere in the repository."""
    session = Session(spec)
    targets = discover(paths, excludes, exclude_root)
    for path in targets:
        try:
            source = path.read_bytes()
        except OSError as exc:
            session.files.append(str(path))
            session.errors[str(path)] = f"cannot read: {exc.strerror}"
            continue
        session.add_file(str(path), source)
    if context:
        seen = {p.resolve() for p in targets}
        for path in discover(context, excludes, exclude_root):
            if path.resolve() in seen:
                continue
            with contextlib.suppress(OSError):
                session.add_context_file(str(path), path.read_bytes())
    return session


def finding_from_edit(edit: Edit, spec: MigrationSpec) -> Finding:
    new = spec.parameter.name
    if edit.kind is EditKind.ARGUMENT:
        value = edit.text if edit.positional else f"{new}={edit.text}"
        fix = f"pass `{value}` after the features argument ({edit.derivation})"
        message = edit.reason
    elif edit.kind is EditKind.PARAMETER:
        annotated = f"{new}: {edit.extra}" if edit.extra else new
        fix = f"insert parameter `{annotated}` after `{edit.after}`"
        message = edit.reason
    elif edit.kind is EditKind.RENAME:
        fix = f"rename to `{edit.text}` and pass it on"
        message = edit.reason
    else:
        fix = f"{edit.kind.value}: `{edit.text}`"
        message = edit.reason
    return Finding(edit.path, edit.line, edit.col + 1, edit.code, message, edit.tier, fix=fix)


#: Edit kinds that are findings in their own right (the rest support them).
FINDING_KINDS = frozenset({EditKind.PARAMETER, EditKind.ARGUMENT})


def plan_findings(plan: FilePlan, spec: MigrationSpec) -> list[Finding]:
    """EM001 (missing argument) and EM002 (missing parameter) findings of one plan."""
    out = [finding_from_edit(e, spec) for e in plan.edits if e.kind in FINDING_KINDS]
    out.extend(
        u.to_finding(u.reason)
        for u in plan.unresolved
        if u.code in (Code.MISSING_ARGUMENT, Code.MISSING_PARAMETER)
    )
    out.sort(key=lambda f: (f.path, f.line, f.col, f.code))
    return out


def analyze(
    paths: Sequence[str | Path],
    spec: MigrationSpec | None = None,
    excludes: Iterable[str] = (),
) -> list[Finding]:
    """EM001/EM002 findings for the files under ``paths``: what ``apply`` would fix (``fix``)
    or why it cannot (``unfixable_reason``)."""
    spec = spec or load_spec()
    session = load_session(paths, spec, excludes)
    out: list[Finding] = []
    for plan in session.plans():
        out.extend(plan_findings(plan, spec))
    return out


# -- apply -------------------------------------------------------------------------------


@dataclass
class FileResult:
    path: str
    original: bytes
    new: bytes
    plan: FilePlan
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.error is None and self.new != self.original


@dataclass
class ApplyResult:
    files_scanned: int
    candidates: int
    results: list[FileResult]
    errors: dict[str, str]

    @property
    def changed(self) -> list[FileResult]:
        return [r for r in self.results if r.changed]

    @property
    def unresolved(self) -> list[Unresolved]:
        return [u for r in self.results for u in r.plan.unresolved]

    def sites_by_kind(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for r in self.changed:
            for e in r.plan.edits:
                counts[e.kind.value] += 1
        return counts


_Job = tuple[str, bytes, list[Edit], list[tuple[int, int]]]


def _rewrite(job: _Job) -> tuple[str, bytes | None, str | None]:
    from esper_migrate.rewrite import RewriteError, apply_edits  # libcst: only apply pays

    path, source, edits, regions = job
    try:
        return path, apply_edits(source, edits, regions), None
    except RewriteError as exc:
        return path, None, str(exc)
    except Exception as exc:  # libcst failing on a file ast accepted: report, never crash
        return path, None, f"{type(exc).__name__}: {exc}"


def run_apply(
    paths: Sequence[str | Path],
    spec: MigrationSpec,
    excludes: Iterable[str] = (),
    jobs: int = 1,
    exclude_root: Path | None = None,
    context: Sequence[str | Path] = (),
) -> ApplyResult:
    """Plan and rewrite in memory (nothing is written here); ``context`` as in
    :func:`load_session`."""
    session = load_session(paths, spec, excludes, exclude_root, context)
    plans = session.plans()
    todo = [(p.path, session.sources[p.path], p.edits, p.regions) for p in plans if p.edits]
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            rewritten = list(pool.map(_rewrite, todo, chunksize=max(1, len(todo) // (4 * jobs))))
    else:
        rewritten = [_rewrite(job) for job in todo]
    by_path = {path: (new, err) for path, new, err in rewritten}
    results: list[FileResult] = []
    errors = dict(session.errors)
    for plan in plans:
        source = session.sources[plan.path]
        new, err = by_path.get(plan.path, (source, None))
        if err is not None:
            errors[plan.path] = f"not rewritten: {err}"
        results.append(FileResult(plan.path, source, new if new is not None else source, plan, err))
    return ApplyResult(len(session.files), len(session.candidates), results, errors)


def unified_diff(result: FileResult) -> str:
    def lines(data: bytes) -> list[str]:
        return decode(data).splitlines(keepends=True)

    return "".join(
        difflib.unified_diff(
            lines(result.original),
            lines(result.new),
            fromfile=f"a/{result.path}",
            tofile=f"b/{result.path}",
        )
    )


def migrate_sources(
    sources: dict[str, bytes], spec: MigrationSpec
) -> tuple[dict[str, bytes], list[Unresolved], dict[str, str]]:
    """In-memory apply over a set of files: (new sources, unresolved sites, errors)."""
    session = Session(spec)
    for path, source in sources.items():
        session.add_file(path, source)
    out = dict(sources)
    unresolved: list[Unresolved] = []
    errors = dict(session.errors)
    for plan in session.plans():
        unresolved.extend(plan.unresolved)
        if plan.edits:
            _, new, err = _rewrite((plan.path, sources[plan.path], plan.edits, plan.regions))
            if err is not None:
                errors[plan.path] = err
            elif new is not None:
                out[plan.path] = new
    return out, unresolved, errors
