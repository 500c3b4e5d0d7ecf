"""The engine both commands share: discover -> index -> plan (and, for ``apply``, rewrite).

Planning a file runs every planning rule (``esper_migrate.plan``) over it: the result is a list
of units, one per root cause, each with its edits or the reason it has none. ``apply`` writes
the edits and reports the unresolved units; ``check`` reports every unit as a finding (its fix
text rendered from its edits) plus the lint rules' findings. Suppression comments drop a unit
for both commands.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import tokenize
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent import futures
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from esper_migrate.context import FileContext
from esper_migrate.discover import discover, read_regular_file
from esper_migrate.index import FileSummary, Index, summarize_tree
from esper_migrate.records import PARSE_ERRORS, Edit, EditKind, Finding, Unit
from esper_migrate.spec import MigrationSpec, load_spec


@dataclass
class FilePlan:
    """What the engine would do to one file."""

    path: str
    units: list[Unit] = field(default_factory=list)
    #: Units a suppression comment dropped (neither applied nor reported; kept so that the
    #: unused-suppression rule knows the comment did something).
    suppressed: list[Unit] = field(default_factory=list)
    #: Set when the file cannot be read or parsed (then nothing is planned).
    error: str | None = None
    #: Disjoint (first, last) line ranges of the statements that carry edits: the rewriter
    #: parses only these with libcst.
    regions: list[tuple[int, int]] = field(default_factory=list)

    @property
    def edits(self) -> list[Edit]:
        return [e for u in self.units for e in u.edits]

    @property
    def unresolved(self) -> list[Unit]:
        return [u for u in self.units if not u.resolved]

    def findings(self) -> list[Finding]:
        return [u.finding() for u in self.units]


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
    from esper_migrate.plan import fold_pass_on
    from esper_migrate.rule import planning_rules
    from esper_migrate.suppress import is_suppressed, suppressions

    if not index.relevance.search(text):
        return FilePlan(path)
    ctx = FileContext(path, text.encode("utf-8"), tree, index, spec)
    for rule in planning_rules():
        rule.plan(ctx)
    fold_pass_on(ctx)
    table = suppressions(text)
    kept = [u for u in ctx.units if not is_suppressed(u.finding(), table)]
    dropped = [u for u in ctx.units if is_suppressed(u.finding(), table)]
    kept.sort(key=lambda u: (u.line, u.col, u.code))
    edits = [e for u in kept for e in u.edits]
    return FilePlan(path, kept, dropped, regions=edit_regions(tree, text, edits))


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
        #: Files that inform the index only (kept for the next parameter's session).
        self.context_sources: dict[str, bytes] = {}
        self._index: Index | None = None

    def add_file(self, path: str, source: bytes, summary: FileSummary | None = None) -> None:
        """Register a file; parse it only if its text can mention a spec name.

        ``summary`` (e.g. from a cache keyed on the content) skips the parse for the index;
        the tree is then parsed lazily if the file must be planned.
        """
        self.files.append(path)
        self.sources[path] = source
        if not self._prefilter.search(source):
            # Names nothing of the spec, but one that does not parse is still reported.
            try:
                ast.parse(decode(source), filename=path)
            except PARSE_ERRORS as exc:
                self.errors[path] = f"does not parse: {type(exc).__name__}: {exc}"
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
                path=path,
                version=0,
                classes=[],
                functions={},
                error=self.errors[path],
                top_functions=[],
                reexports={},
            )
            return None
        self.texts[path] = text
        self.trees[path] = tree
        self.summaries.setdefault(path, summarize_tree(path, tree))
        return tree

    def add_context_file(self, path: str, source: bytes) -> None:
        """A file that informs the index but is never planned (outside the paths given)."""
        self.context_sources[path] = source
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
            source = read_regular_file(path)  # never blocks on a FIFO put in its place
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
                session.add_context_file(str(path), read_regular_file(path))
    return session


def analyze(
    paths: Sequence[str | Path],
    spec: MigrationSpec | None = None,
    excludes: Iterable[str] = (),
) -> list[Finding]:
    """The planned units of the files under ``paths`` as findings: what ``apply`` would fix
    (``fix``) or why it cannot (``unfixable_reason``)."""
    spec = spec or load_spec()
    out: list[Finding] = []
    for thread in spec.threads():  # each parameter's findings on the tree as it is
        session = load_session(paths, thread, excludes)
        for plan in session.plans():
            out.extend(plan.findings())
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
    def unresolved(self) -> list[Unit]:
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


#: Seconds between two looks at pending signals while the main thread waits for a pool.
_SIGNAL_POLL_S = 0.05


def _rewrite_all(jobs: list[_Job]) -> list[tuple[str, bytes | None, str | None]]:
    return [_rewrite(job) for job in jobs]


def run_apply(
    paths: Sequence[str | Path],
    spec: MigrationSpec,
    excludes: Iterable[str] = (),
    jobs: int = 1,
    exclude_root: Path | None = None,
    context: Sequence[str | Path] = (),
) -> ApplyResult:
    """Plan and rewrite in memory (nothing is written here); ``context`` as in
    :func:`load_session`. A spec with several parameters threads them one after the other,
    each on the sources the previous one rewrote; the result is one migration."""
    threads = spec.threads()
    session = load_session(paths, threads[0], excludes, exclude_root, context)
    result = _apply_session(session, jobs)
    for thread in threads[1:]:
        session = _next_session(session, thread, result)
        result = _merged(result, _apply_session(session, jobs))
    return result


def _next_session(previous: Session, spec: MigrationSpec, result: ApplyResult) -> Session:
    """A session for the next parameter over what the previous one left: each file's rewritten
    source (or its original, where it was not rewritten)."""
    current = {r.path: r.new for r in result.results if r.error is None}
    session = Session(spec)
    for path in previous.files:
        if path not in previous.sources:
            session.files.append(path)  # unreadable: keep its error
            session.errors[path] = previous.errors[path]
            continue
        session.add_file(path, current.get(path, previous.sources[path]))
    for path, source in previous.context_sources.items():
        session.add_context_file(path, source)
    return session


def _merged(first: ApplyResult, second: ApplyResult) -> ApplyResult:
    """Two parameters' results as one: each file's original, its last source, all units."""
    by_path = {r.path: r for r in first.results}
    for r in second.results:
        before = by_path.get(r.path)
        if before is None:
            by_path[r.path] = r
            continue
        plan = FilePlan(
            r.path,
            units=before.plan.units + r.plan.units,
            suppressed=before.plan.suppressed + r.plan.suppressed,
            error=before.plan.error or r.plan.error,
        )
        error = before.error or r.error
        new = before.new if before.error is not None else r.new
        by_path[r.path] = FileResult(r.path, before.original, new, plan, error)
    errors = {**first.errors, **second.errors}
    candidates = max(first.candidates, second.candidates)
    return ApplyResult(first.files_scanned, candidates, list(by_path.values()), errors)


def _apply_session(session: Session, jobs: int) -> ApplyResult:
    plans = session.plans()
    todo = [(p.path, session.sources[p.path], p.edits, p.regions) for p in plans if p.edits]
    if jobs > 1 and len(todo) > 1:
        size = max(1, len(todo) // (4 * jobs))
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            batches = [
                pool.submit(_rewrite_all, todo[i : i + size]) for i in range(0, len(todo), size)
            ]
            # Waited for in short slices, not in one blocking wait: a signal the kernel hands
            # to one of the pool's threads only runs its Python handler when the main thread
            # next wakes, and an untimed wait would never wake once the signal has killed the
            # workers.
            while futures.wait(batches, timeout=_SIGNAL_POLL_S).not_done:
                pass
            rewritten = [r for batch in batches for r in batch.result()]
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


def migrate_sources(
    sources: dict[str, bytes], spec: MigrationSpec
) -> tuple[dict[str, bytes], list[Unit], dict[str, str]]:
    """In-memory apply over a set of files: (new sources, unresolved sites, errors); a spec with
    several parameters threads them one after the other."""
    threads = spec.threads()
    if len(threads) > 1:
        unresolved_all: list[Unit] = []
        errors_all: dict[str, str] = {}
        current = dict(sources)
        for thread in threads:
            current, left, errs = migrate_sources(current, thread)
            unresolved_all.extend(left)
            errors_all.update(errs)
        return current, unresolved_all, errors_all
    session = Session(spec)
    for path, source in sources.items():
        session.add_file(path, source)
    out = dict(sources)
    unresolved: list[Unit] = []
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
