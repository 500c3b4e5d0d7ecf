"""``esper-migrate check``: the CI lint. What ``apply`` would change, plus what it cannot fix.

The run, in order: configuration, discovery, hashing, then either the cache's answer for an
unchanged tree (nothing parsed) or the engine: per-file index summaries (cached by content),
one repository index, per-file findings (the engine's planned units and the lint rules'
findings, cached by content and index fingerprint), suppression comments, the baseline, and
the report. Exit codes: 0 clean, 1 failing findings, 2 usage or internal error.

The engine (and pydantic, for the spec) is imported on the cold path only: a warm check pays for
the interpreter, typer, discovery and hashing the files. A cold run spreads the parsing and
planning over forked workers (``--jobs``). Never imports torch; libcst is apply's alone.
"""

from __future__ import annotations

import ast
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import typer

from esper_migrate.console import plural
from esper_migrate.formats import OutputFormat
from esper_migrate.records import PARSE_ERRORS, Finding

if TYPE_CHECKING:
    from esper_migrate.cache import CheckCache
    from esper_migrate.config import CheckConfig
    from esper_migrate.discover import Discovery, Skipped
    from esper_migrate.index import FileSummary, Index
    from esper_migrate.spec import MigrationSpec

_R = TypeVar("_R")

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

PROG = "esper-migrate"


class UsageError(Exception):
    """Bad input from the user: reported on stderr, exit 2."""


@dataclass(frozen=True)
class CheckOptions:
    paths: tuple[Path, ...] = ()
    fmt: OutputFormat = OutputFormat.TEXT
    statistics: bool = False
    baseline: Path | None = None
    write_baseline: bool = False
    use_cache: bool = True
    spec: Path | None = None
    config: Path | None = None
    #: Processes for a cold run; 0: one per available CPU.
    jobs: int = 0
    #: Text report without its closing count line.
    quiet: bool = False
    #: Also say on stderr which configuration, files and cache the run used.
    verbose: bool = False
    #: Colour the text report (the command decides: a terminal, NO_COLOR unset).
    color: bool = False


@dataclass
class _Source:
    key: str  # cache key: posix path relative to the project root (or absolute)
    display: str  # what the report shows: relative to the cwd when below it
    data: bytes
    digest: str
    #: Outside the paths given: feeds the index, never checked or reported.
    context: bool = False


def check_command(
    paths: list[Path] | None = typer.Argument(  # noqa: B008 - typer's declaration style
        None, help="Files or directories to check (default: config `paths`, else the cwd)."
    ),
    output_format: OutputFormat = typer.Option(  # noqa: B008
        OutputFormat.TEXT, "--format", help="Report format.", case_sensitive=False
    ),
    statistics: bool = typer.Option(False, "--statistics", help="Print counts per code."),
    baseline: Path | None = typer.Option(  # noqa: B008
        None, "--baseline", help="Report only findings that this baseline file does not hold."
    ),
    write_baseline: bool = typer.Option(
        False, "--write-baseline", help="Write the current findings to --baseline and exit 0."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    spec: Path | None = typer.Option(  # noqa: B008
        None, "--spec", help="Migration spec (TOML); default: config `spec`, else Phase 4."
    ),
    config: Path | None = typer.Option(  # noqa: B008
        None, "--config", help="pyproject.toml whose tool.esper-migrate table to use."
    ),
    jobs: int = typer.Option(
        0, "--jobs", "-j", min=0, help="Processes for a cold run (0: one per CPU)."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Leave out the closing count line; print the findings."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also print the configuration, files and cache used."
    ),
    output_file: Path | None = typer.Option(  # noqa: B008
        None, "--output-file", "-o", help="Write the report to this file instead of stdout."
    ),
) -> None:
    """Lint for sites that break under the migration; exit 1 when a failing one is found."""
    from esper_migrate.console import error, use_color, write_report

    if quiet and verbose:
        raise typer.Exit(error(PROG, "--quiet and --verbose exclude each other"))
    options = CheckOptions(
        paths=tuple(paths or ()),
        fmt=output_format,
        statistics=statistics,
        baseline=baseline,
        write_baseline=write_baseline,
        use_cache=not no_cache,
        spec=spec,
        config=config,
        jobs=jobs,
        quiet=quiet,
        verbose=verbose,
        color=output_file is None and use_color(sys.stdout),
    )
    if output_file is None:
        raise typer.Exit(run_check(options))
    # The report is written whole once the run is done, and not at all when it fails.
    report = io.StringIO()
    code = run_check(options, out=report)
    if code in (EXIT_CLEAN, EXIT_FINDINGS):
        try:
            write_report(output_file, report.getvalue())
        except OSError as exc:
            code = error(PROG, f"{output_file}: cannot write: {exc.strerror}")
    raise typer.Exit(code)


def run_check(options: CheckOptions, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The whole command; returns the exit code. Never raises."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        return _guarded(options, out, err)
    except KeyboardInterrupt:  # Ctrl-C before the handler below is in place
        err.write(f"{PROG}: interrupted by SIGINT\n")
        return 130


def _guarded(options: CheckOptions, out: TextIO, err: TextIO) -> int:
    from esper_migrate.baseline import BaselineError
    from esper_migrate.config import ConfigError
    from esper_migrate.safe_write import exit_now, raise_on_signals, signal_name

    try:
        with raise_on_signals() as signals:
            # Nothing to clean up (the cache is written atomically): a signal ends the run
            # at once with one line, and the forked workers of a cold run leave quietly
            # instead of printing tracebacks.
            signals.on_signal = exit_now(
                lambda signum: f"{PROG}: interrupted by {signal_name(signum)}"
            )
            return _run(options, out, err)
    except (UsageError, ConfigError, BaselineError) as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return EXIT_ERROR
    except Exception as exc:
        if type(exc).__name__ == "SpecError":  # imported lazily, so matched by name
            err.write(f"{PROG}: error: {exc}\n")
            return EXIT_ERROR
        from esper_migrate.console import internal_error

        return internal_error(PROG, exc, err)


def _run(options: CheckOptions, out: TextIO, err: TextIO) -> int:
    from esper_migrate.cache import CheckCache, content_hash
    from esper_migrate.config import load_config
    from esper_migrate.discover import strictly_inside
    from esper_migrate.formats import Reported, render

    started = time.perf_counter()
    cwd = Path(os.getcwd())
    for path in options.paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
    start = options.paths[0] if options.paths else cwd
    config = load_config(start, options.config, paths=options.paths)
    roots = list(options.paths) or list(config.paths) or [cwd]
    for path in roots:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory (from `paths` in config)")
    baseline_file = options.baseline or config.baseline
    if options.write_baseline and baseline_file is None:
        raise UsageError("--write-baseline needs --baseline FILE (or `baseline` in the config)")
    spec_path = options.spec or config.spec
    spec_bytes = _spec_bytes(spec_path)

    found = _discover(roots, config)
    if not found.files and found.excluded:
        raise UsageError(
            f"every Python file under {' '.join(map(str, roots))} ({found.excluded}) is "
            "excluded by `exclude` in [tool.esper-migrate]; nothing to check"
        )
    # What the walk or the reading could not take: a note, or a failure when files may hide
    # behind it (an unreadable directory or file), as for a file that does not parse.
    _report_skipped(found.skipped, err)
    # A file named explicitly is checked only if it is Python (ruff's rule too).
    targets = [t for t in found.files if t.suffix in (".py", ".pyi")]
    if not targets and not any(item.hides_code for item in found.skipped):
        shown = " ".join(str(p) for p in roots)
        raise UsageError(f"nothing to check: no Python file under {shown}")
    unreadable: list[Skipped] = []
    sources = _read_sources(targets, config.root, cwd, unreadable)
    _report_skipped(unreadable, err)
    unseen = any(item.hides_code for item in [*found.skipped, *unreadable])
    if strictly_inside(roots, config.root):
        # The rest of the project feeds the index (never reported), as for apply: checking
        # one file still resolves the classes defined elsewhere.
        known = {s.key for s in sources}
        context = _read_sources(_discover([config.root], config).files, config.root, cwd, [])
        sources.extend(replace(s, context=True) for s in context if s.key not in known)
    # Read from the TOML only: a warm run validates nothing (and imports no pydantic).
    threads = _parameter_count(spec_bytes)
    cache = CheckCache(
        config.root,
        content_hash(spec_bytes),
        # The cache holds one parameter's findings per file: a spec with several is checked
        # without it (each parameter's findings on the tree as it is, then merged).
        enabled=options.use_cache and threads == 1,
    )
    warm = cache.unchanged_tree(
        {s.key: s.digest for s in sources}, {s.key for s in sources if not s.context}
    )
    if warm is None:
        jobs = options.jobs or _cpus()
        try:
            per_file, errors = _analyze_all(sources, spec_path, cache, jobs, threads)
        except Exception as exc:
            if not cache.enabled or type(exc).__name__ == "SpecError":
                raise
            # Entries of the right outer shape can still hold what the engine cannot read
            # (a hand-edited cache): discard the cache and analyse from the sources alone.
            from esper_migrate.cache import discard

            err.write(
                f"{PROG}: warning: discarded the cache in {config.root} "
                f"({type(exc).__name__}: {exc}); analysing without it\n"
            )
            discard(config.root)
            cache = CheckCache(config.root, content_hash(spec_bytes), enabled=True)
            per_file, errors = _analyze_all(sources, spec_path, cache, jobs, threads)
        cache.save()
    else:
        per_file, errors = warm
    if options.verbose:
        checked = sum(not s.context for s in sources)
        state = "off" if not options.use_cache else "warm" if warm is not None else "cold"
        err.write(
            f"{PROG}: config {config.source or 'none (defaults)'}; "
            f"spec {spec_path or 'built-in (phase4)'}\n"
            f"{PROG}: {plural(checked, 'file')} checked, "
            f"{plural(len(sources) - checked, 'other file')} indexed; cache {state}; "
            f"{time.perf_counter() - started:.2f} s\n"
        )
    by_key = {s.key: s for s in sources}
    # A checked file that does not parse hides every site in it, so it fails the run (as in
    # ruff); one that only feeds the index (outside the given paths) is a warning.
    unchecked = [k for k in errors if not by_key[k].context]
    for key in sorted(errors, key=lambda k: by_key[k].display):
        level = "warning" if by_key[key].context else "error"
        err.write(f"{PROG}: {level}: {by_key[key].display}: {errors[key]}\n")
    findings = [
        _with_path(f, by_key[key].display)
        for key in sorted(per_file, key=lambda k: by_key[k].display)
        for f in per_file[key]
    ]
    findings.sort(key=lambda f: (f.path, f.line, f.col, f.code))
    lines = _LineReader({s.display: s for s in sources})

    if options.write_baseline:
        from esper_migrate.baseline import write_baseline

        assert baseline_file is not None
        write_baseline(baseline_file, findings, lines)
        err.write(f"{PROG}: wrote {plural(len(findings), 'finding')} to {baseline_file}\n")
        return EXIT_CLEAN
    if baseline_file is not None:
        from esper_migrate.baseline import new_findings

        findings = new_findings(baseline_file, findings, lines)

    items = [Reported(f, config.fails(f.code, f.tier)) for f in findings]
    out.write(
        render(
            items,
            options.fmt,
            statistics=options.statistics,
            quiet=options.quiet,
            color=options.color,
        )
    )
    failing = unchecked or unseen or any(item.fails for item in items)
    return EXIT_FINDINGS if failing else EXIT_CLEAN


def _report_skipped(items: list[Skipped], err: TextIO) -> None:
    from esper_migrate.formats import display_path

    for item in items:
        level = "error" if item.hides_code else "warning"
        err.write(f"{PROG}: {level}: {display_path(str(item.path))}: skipped: {item.reason}\n")


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _parameter_count(data: bytes) -> int:
    """How many parameters a spec file threads, from its TOML alone (1 for a file that does
    not read as a format-2 spec: the full load reports its errors, a format-1 spec has 1)."""
    import tomllib

    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return 1
    params = table.get("parameters")
    return len(params) if isinstance(params, list) and params else 1


def _spec_bytes(spec_path: Path | None) -> bytes:
    if spec_path is None:
        return (Path(__file__).parent / "specs" / "phase4.toml").read_bytes()
    from esper_migrate.discover import read_regular_file  # never blocks on a FIFO

    try:
        return read_regular_file(spec_path)
    except OSError as exc:
        raise UsageError(f"{spec_path}: cannot read spec: {exc.strerror or exc}") from None


def _discover(roots: list[Path], config: CheckConfig) -> Discovery:
    from esper_migrate.discover import walk

    # Excludes are relative to the project root (the pyproject.toml), as for apply.
    return walk(
        roots,
        config.exclude,
        config.root if config.source is not None else None,
        boundary=config.root,
    )


def _under(path: str, directory: str) -> str | None:
    """``path`` relative to ``directory`` (posix), or None when it is not below it."""
    prefix = directory.rstrip(os.sep) + os.sep
    if path.startswith(prefix):
        return path[len(prefix) :].replace(os.sep, "/")
    return None


def _read_sources(
    files: list[Path], root: Path, cwd: Path, skipped: list[Skipped]
) -> list[_Source]:
    """The files' contents; one that cannot be read is added to ``skipped``."""
    # String arithmetic, not Path.resolve(): a warm run over a big tree is mostly this loop.
    from esper_migrate.cache import content_hash
    from esper_migrate.discover import Skipped, read_regular_file

    # (os.getcwd() and the config root are physical paths already.)
    root_str, cwd_str = str(root), str(cwd)
    sources: list[_Source] = []
    seen: set[str] = set()
    for file in files:
        absolute = os.path.normpath(os.path.join(cwd_str, file))
        key = _under(absolute, root_str) or absolute
        if key in seen:
            continue
        seen.add(key)
        try:
            data = read_regular_file(absolute)
        except OSError as exc:
            skipped.append(Skipped(file, f"cannot read: {exc.strerror}", hides_code=True))
            continue
        digest = content_hash(data)
        display = _under(absolute, cwd_str) or str(file)
        sources.append(_Source(key, display, data, digest))
    return sources


def _with_path(finding: Finding, path: str) -> Finding:
    if finding.path == path:
        return finding
    return Finding(
        path,
        finding.line,
        finding.col,
        finding.code,
        finding.message,
        finding.tier,
        finding.fix,
        finding.unfixable_reason,
    )


class _LineReader:
    """Source line text by (display path, 1-based line), decoded on first use."""

    def __init__(self, sources: dict[str, _Source]) -> None:
        self._sources = sources
        self._lines: dict[str, list[str]] = {}

    def __call__(self, path: str, line: int) -> str:
        if path not in self._lines:
            source = self._sources.get(path)
            text = source.data.decode("utf-8", "replace") if source is not None else ""
            self._lines[path] = text.splitlines()
        lines = self._lines[path]
        return lines[line - 1] if 0 < line <= len(lines) else ""


# -- the cold path -----------------------------------------------------------------------------


#: What forked workers read: set by the parent right before it forks (never pickled).
_SHARED: dict[str, Any] = {}

#: Below this many files to analyse, a process pool costs more than it saves.
_MIN_PARALLEL = 48


#: Seconds between two looks at pending signals while the main thread waits for a pool.
_SIGNAL_POLL_S = 0.05


def _map(job: Callable[[int], _R], count: int, jobs: int) -> list[_R]:
    """``[job(i) for i in range(count)]``, over forked workers when it pays off.

    Workers inherit ``_SHARED`` (sources, spec, index) through fork instead of pickling it;
    where fork is unavailable (Windows, macOS spawn) the work runs in this process.
    """
    import multiprocessing

    sequential = (
        jobs <= 1 or count < _MIN_PARALLEL or "fork" not in multiprocessing.get_all_start_methods()
    )
    _SHARED["in_process"] = sequential
    if sequential:
        return [job(i) for i in range(count)]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        pending = pool.map_async(job, range(count), chunksize=max(1, count // (jobs * 8)))
        # Waited for in short slices, not in one blocking wait: a signal the kernel hands to
        # one of the pool's threads only runs its Python handler when the main thread next
        # wakes, and an untimed wait would never wake once the signal has killed the workers.
        while not pending.ready():
            pending.wait(_SIGNAL_POLL_S)
        return pending.get()


def _parse(source: _Source) -> tuple[str, ast.Module]:
    from esper_migrate.engine import decode

    text = decode(source.data)
    return text, ast.parse(text, filename=source.key)


def _summary_job(i: int) -> FileSummary:
    from esper_migrate.index import FileSummary, summarize_tree

    source: _Source = _SHARED["todo"][i]
    empty = FileSummary(
        path=source.key,
        version=0,
        classes=[],
        functions={},
        error=None,
        top_functions=[],
        reexports={},
    )
    try:
        text, tree = _parse(source)
    except PARSE_ERRORS as exc:
        empty["error"] = f"does not parse: {type(exc).__name__}: {exc}"
        return empty
    if source.key in _SHARED["syntax_only"]:
        return empty  # names nothing of the spec: parsed only to know that it parses
    if _SHARED["in_process"]:  # keep the tree for the findings stage (a worker's is lost)
        _SHARED.setdefault("trees", {})[source.key] = (text, tree)
    return summarize_tree(source.key, tree)


def _findings_job(i: int) -> list[Finding]:
    from esper_migrate.engine import decode
    from esper_migrate.lint import classes_in

    source: _Source = _SHARED["todo"][i]
    index: Index = _SHARED["index"]
    parsed: tuple[str, ast.Module] | None = _SHARED.get("trees", {}).pop(source.key, None)
    text = parsed[0] if parsed is not None else decode(source.data)
    if not index.relevance.search(text) and not classes_in(index, source.key):
        # The engine plans nothing here and no check rule has a class to look at: skip the
        # parse (a third of the candidate files of a typical tree).
        return []
    tree = parsed[1] if parsed is not None else ast.parse(text, filename=source.key)
    return file_findings(source.key, text, tree, index, _SHARED["spec"])


def _analyze_all(
    sources: list[_Source], spec_path: Path | None, cache: CheckCache, jobs: int, threads: int
) -> tuple[dict[str, list[Finding]], dict[str, str]]:
    """Every parameter's findings on the tree as it is, merged per file (parse errors once)."""
    per_file, errors = _analyze(sources, spec_path, cache, jobs)
    for thread in range(1, threads):
        more, _ = _analyze(sources, spec_path, cache, jobs, thread)
        for key, found in more.items():
            per_file[key] = [*per_file.get(key, []), *found]
    return per_file, errors


def _analyze(
    sources: list[_Source], spec_path: Path | None, cache: CheckCache, jobs: int, thread: int = 0
) -> tuple[dict[str, list[Finding]], dict[str, str]]:
    """(findings per file key, parse errors per file key): summaries (cached), the index,
    then per-file findings (cached), each stage over ``jobs`` processes."""
    from esper_migrate.engine import prefilter_bytes
    from esper_migrate.index import Index
    from esper_migrate.spec import load_spec

    spec = load_spec(spec_path).threads()[thread]
    from esper_migrate.cache import content_hash

    prefilter = prefilter_bytes(spec)
    candidates = [s for s in sources if prefilter.search(s.data)]
    # A checked file that names nothing of the spec is still parsed once (then cached): one
    # that does not parse fails the run whatever it names.
    syntax_only = {s.key for s in sources if not s.context} - {s.key for s in candidates}

    summaries: dict[str, FileSummary] = {}
    todo: list[_Source] = []
    for source in [*candidates, *(s for s in sources if s.key in syntax_only)]:
        cached = cache.summary(source.key, source.digest)
        if cached is None:
            todo.append(source)
        else:
            summaries[source.key] = cached  # type: ignore[assignment]
    _SHARED.clear()
    _SHARED["todo"] = todo
    _SHARED["syntax_only"] = syntax_only
    for source, summary in zip(todo, _map(_summary_job, len(todo), jobs), strict=True):
        cache.store_summary(source.key, source.digest, summary)
        summaries[source.key] = summary
    cache.prune_summaries(set(summaries))
    checked = {s.key for s in sources if not s.context}
    errors = {k: str(s["error"]) for k, s in summaries.items() if s["error"] and k in checked}
    ordered = {key: summaries[key] for key in sorted(summaries) if key not in syntax_only}
    fingerprint = content_hash(json.dumps(ordered, sort_keys=True, separators=(",", ":")).encode())
    index = Index.build(ordered.values(), spec)

    result: dict[str, list[Finding]] = {s.key: [] for s in sources if not s.context}
    todo = []
    for source in candidates:
        if source.context or source.key in errors:
            continue
        cached_findings = cache.findings(source.key, source.digest, fingerprint)
        if cached_findings is None:
            todo.append(source)
        else:
            result[source.key] = cached_findings
    _SHARED.update(todo=todo, index=index, spec=spec)
    try:
        for source, found in zip(todo, _map(_findings_job, len(todo), jobs), strict=True):
            result[source.key] = found
    finally:
        _SHARED.clear()
    cache.replace_findings(
        fingerprint, {s.key: (s.digest, result.get(s.key)) for s in sources}, errors
    )
    return result, errors


def file_findings(
    path: str, text: str, tree: ast.Module, index: Index, spec: MigrationSpec
) -> list[Finding]:
    """Every finding of one parsed file: the plan's units (suppressed ones dropped by the
    engine) and the lint rules', suppression comments applied (pure: no I/O)."""
    from esper_migrate.engine import plan_tree
    from esper_migrate.lint import CheckContext, run_rules
    from esper_migrate.suppress import filter_suppressed

    plan = plan_tree(path, text, tree, index, spec)
    planned = plan.findings()
    silenced = [u.finding() for u in plan.suppressed]
    ctx = CheckContext(path, text, tree, spec, index, plan, (*planned, *silenced))
    return [*planned, *filter_suppressed(run_rules(ctx), text)]
