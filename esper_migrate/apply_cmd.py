"""``esper-migrate apply``: rewrite the files, print a diff (``--diff``) or fail on pending
changes (``--check``); a summary at the end; exit 3 while unresolved sites remain."""

from __future__ import annotations

import io
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from esper_migrate.console import error, internal_error, paint, plural, use_color, write_report

if TYPE_CHECKING:
    from esper_migrate.engine import ApplyResult
    from esper_migrate.safe_write import SignalState

PROG = "esper-migrate"

#: Exit codes.
EXIT_OK = 0
EXIT_PENDING = 1
EXIT_USAGE = 2
EXIT_UNRESOLVED = 3
#: 128 + the signal number, as shells report a process ended by a signal.
EXIT_SIGNAL_BASE = 128


def _config(paths: list[str]) -> tuple[list[str], list[str], Path | None, Path]:
    """(paths, excludes, spec, root) from ``[tool.esper-migrate]`` in pyproject.toml."""
    from esper_migrate.config import load_config

    # Found from the first path given, as `check` does: `apply proj/` run from outside the
    # project still honours proj's excludes and spec.
    cfg = load_config(Path(paths[0]) if paths else Path.cwd(), paths=[Path(p) for p in paths])
    targets = paths or [str(p) for p in cfg.paths] or ["."]
    return targets, list(cfg.exclude), cfg.spec, cfg.root


def summary_text(
    result: ApplyResult,
    verb: str,
    skipped: dict[str, str] | None = None,
    *,
    quiet: bool = False,
    color: bool = False,
) -> str:
    """Unresolved sites, skipped entries and errors, one per line, then the counts (left out
    when ``quiet``); paths as the user names them (relative to the cwd when below it)."""
    from esper_migrate.formats import display_path

    skipped = skipped or {}
    lines = []
    for u in sorted(result.unresolved, key=lambda u: (u.path, u.line, u.col)):
        where = paint(f"{display_path(u.path)}:{u.line}:{u.col + 1}:", "bold", color)
        lines.append(
            f"{where} {paint('unresolved', 'yellow', color)} {u.code.value} ({u.tier.value}): "
            f"{u.message}: {u.reason}; suggested edit: {u.suggestion}"
        )
    for path, reason in sorted(skipped.items()):
        lines.append(f"{display_path(path)}: {paint('skipped', 'yellow', color)}: {reason}")
    for path, err in sorted(result.errors.items()):
        lines.append(
            f"{display_path(path)}: {paint('error', 'red', color)}: {err} (left unchanged)"
        )
    if quiet:
        return "\n".join(lines)
    kinds = result.sites_by_kind()
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
    lines.append(
        f"{plural(result.files_scanned, 'file')} scanned, {result.candidates} analysed, "
        f"{len(result.changed)} {verb}; sites changed: {sum(kinds.values())} ({by_kind}); "
        f"unresolved: {len(result.unresolved)}; errors: {len(result.errors)}; "
        f"skipped: {len(skipped)}"
    )
    return "\n".join(lines)


def apply(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Files or directories (default: .).")
    ] = None,
    diff: Annotated[
        bool, typer.Option("--diff", help="Print a unified diff (git style); write nothing.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 when changes are pending.")
    ] = False,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="A migration spec (TOML).")
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help="Processes for the rewrite.")
    ] = 1,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Leave out the closing counts; print the rest."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Also print the configuration used and each file changed."
        ),
    ] = False,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output-file",
            "-o",
            help="Write the report (the diff with --diff) to this file instead of stdout.",
        ),
    ] = None,
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout",
            min=0,
            help="Seconds to wait while another apply runs on the same project (then exit 2).",
        ),
    ] = 300,
) -> None:
    """Thread the spec's parameter through definitions, calls and storage, in place."""
    if quiet and verbose:
        raise typer.Exit(error(PROG, "--quiet and --verbose exclude each other"))
    options = _Options(
        paths or [], diff, check, spec_file, jobs, quiet, verbose, output_file, lock_timeout
    )
    progress = _Progress()
    try:
        code = _run(options, progress)
    except KeyboardInterrupt:
        code = _interrupted("SIGINT", signal.SIGINT, progress)
    except Exception as exc:
        if progress.signals is not None and progress.signals.received is not None:
            # The signal's exception came out wrapped (see safe_write.SignalState).
            received = progress.signals.received
            code = _interrupted(signal.Signals(received).name, received, progress)
        else:  # a bug: one line, never a traceback in the user's face
            code = internal_error(PROG, exc)
    except BaseException as exc:
        from esper_migrate.safe_write import Interrupted  # (lazy: check does not pay for it)

        if not isinstance(exc, Interrupted):
            raise
        code = _interrupted(exc.name, exc.signum, progress)
    raise typer.Exit(code)


@dataclass(frozen=True)
class _Options:
    paths: list[str]
    diff: bool
    check: bool
    spec_file: Path | None
    jobs: int
    quiet: bool
    verbose: bool
    output_file: Path | None
    lock_timeout: float


class _Progress:
    """How far the writing got, for the message of an interrupted run."""

    def __init__(self) -> None:
        self.written = 0
        self.to_write: int | None = None
        self.signals: SignalState | None = None


def _interrupted_line(name: str, progress: _Progress) -> str:
    if progress.to_write is None:
        done = "before writing anything"
    else:
        done = f"after writing {progress.written} of {plural(progress.to_write, 'file')}"
    return (
        f"{PROG}: interrupted by {name} {done}; every file is either as it was or "
        "completely migrated, run again to finish"
    )


def _interrupted(name: str, signum: int, progress: _Progress) -> int:
    sys.stderr.write(_interrupted_line(name, progress) + "\n")
    return EXIT_SIGNAL_BASE + signum


def _say(line: str) -> None:
    sys.stderr.write(f"{PROG}: {line}\n")


def _run(options: _Options, progress: _Progress) -> int:
    # Imported here so that `esper-migrate check` (same app) does not pay for them at startup.
    from contextlib import nullcontext

    from esper_migrate.config import ConfigError
    from esper_migrate.discover import strictly_inside, walk
    from esper_migrate.engine import decode, run_apply
    from esper_migrate.formats import display_path, unified_diff
    from esper_migrate.safe_write import (
        LockTimeout,
        WriteRefused,
        exit_now,
        project_lock,
        raise_on_signals,
        remove_stale,
        signal_name,
        write_if_unchanged,
    )
    from esper_migrate.spec import SpecError, load_spec

    diff, check, verbose = options.diff, options.check, options.verbose
    write = not (diff or check)
    verb = "changed" if write else "would change"
    # The report goes to --output-file (written whole at the end) or stdout; the summary of a
    # diff goes to stderr, so that the diff alone can be piped or saved for `git apply`.
    buffer = io.StringIO()
    report = buffer if options.output_file is not None else sys.stdout
    color = options.output_file is None and use_color(sys.stdout)
    try:
        targets, excludes, configured_spec, root = _config(options.paths)
        spec = load_spec(options.spec_file or configured_spec)
        if verbose:
            sys.stderr.write(
                f"{PROG}: root {root}; paths {', '.join(map(str, targets))}; "
                f"spec {options.spec_file or configured_spec or 'built-in (phase4)'}\n"
            )
        # Writing holds the project's lock from the first read to the last write: a second
        # run plans from this one's output, never from the same originals.
        lock = (
            project_lock(
                root,
                timeout=options.lock_timeout,
                on_wait=_say,
            )
            if write
            else nullcontext()
        )
        with lock, raise_on_signals() as signals:
            progress.signals = signals
            # Until the first write there is nothing to clean up: a signal ends the run at
            # once (unwinding through the rewrite's process pool can hang). From the first
            # write on it raises, so that the temporary file and the lock are let go.
            signals.on_signal = exit_now(
                lambda signum: _interrupted_line(signal_name(signum), progress)
            )
            found = walk(targets, excludes, root, boundary=root)
            if not found.files and found.excluded:
                raise ConfigError(
                    f"every Python file under {' '.join(targets)} ({found.excluded}) is "
                    "excluded by `exclude` in [tool.esper-migrate]; nothing to migrate"
                )
            if write:
                remove_stale(found.temp_files)
            # The index is repository-wide: the project root informs it even for one file.
            context = [root] if strictly_inside(targets, root) else []
            result = run_apply(
                found.files, spec, excludes, options.jobs, exclude_root=root, context=context
            )
            signals.check()  # one that a file's error report swallowed
            skipped: dict[str, str] = {}
            for s in found.skipped:
                if s.hides_code:
                    result.errors[str(s.path)] = f"{s.reason}; its files were not migrated"
                else:
                    skipped[str(s.path)] = s.reason
            changed = result.changed
            progress.to_write = len(changed) if write else None
            if write:
                signals.on_signal = None
            for r in changed:
                signals.check()
                if diff:
                    report.write(
                        unified_diff(
                            display_path(r.path), decode(r.original), decode(r.new), color=color
                        )
                    )
                elif write:
                    try:
                        write_if_unchanged(Path(r.path), r.original, r.new, root=root)
                    except WriteRefused as exc:
                        r.error = str(exc)
                    except OSError as exc:  # reported with the rest; the others are written
                        r.error = f"cannot write: {exc.strerror or exc}"
                    else:
                        progress.written += 1
                    if r.error is not None:
                        result.errors[r.path] = r.error
                        continue
                if verbose:
                    sys.stderr.write(f"{PROG}: {verb} {display_path(r.path)}\n")
    except (SpecError, ConfigError, FileNotFoundError, LockTimeout) as exc:
        return error(PROG, str(exc))
    stream = sys.stderr if diff else report
    summary = summary_text(
        result,
        verb,
        skipped,
        quiet=options.quiet,
        color=stream is not buffer and use_color(stream),
    )
    if summary:
        stream.write(summary + "\n")
    if options.output_file is not None:
        try:
            write_report(options.output_file, buffer.getvalue())
        except OSError as exc:
            return error(PROG, f"{options.output_file}: cannot write: {exc.strerror}")
    if check and result.changed:
        return EXIT_PENDING
    if result.unresolved or result.errors:
        return EXIT_UNRESOLVED
    return EXIT_OK
