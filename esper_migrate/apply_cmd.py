"""``esper-migrate apply``: rewrite the files, print a diff (``--diff``) or fail on pending
changes (``--check``); a summary at the end; exit 3 while unresolved sites remain."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from esper_migrate.engine import ApplyResult
    from esper_migrate.safe_write import SignalState

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


def summary_text(result: ApplyResult, verb: str, skipped: dict[str, str] | None = None) -> str:
    skipped = skipped or {}
    lines = []
    for u in sorted(result.unresolved, key=lambda u: (u.path, u.line, u.col)):
        lines.append(
            f"{u.path}:{u.line}:{u.col + 1}: unresolved {u.code.value} ({u.tier.value}): "
            f"{u.reason}; suggested edit: {u.suggestion}"
        )
    for path, reason in sorted(skipped.items()):
        lines.append(f"{path}: skipped: {reason}")
    for path, err in sorted(result.errors.items()):
        lines.append(f"{path}: error: {err} (left unchanged)")
    kinds = result.sites_by_kind()
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
    lines.append(
        f"{result.files_scanned} files scanned, {result.candidates} analysed, "
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
        bool, typer.Option("--diff", help="Print a unified diff; write nothing.")
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
    progress = _Progress()
    try:
        code = _run(paths or [], diff, check, spec_file, jobs, lock_timeout, progress)
    except KeyboardInterrupt:
        code = _interrupted("SIGINT", signal.SIGINT, progress)
    except Exception as exc:
        if progress.signals is not None and progress.signals.received is not None:
            # The signal's exception came out wrapped (see safe_write.SignalState).
            received = progress.signals.received
            code = _interrupted(signal.Signals(received).name, received, progress)
        else:  # a bug: one line, never a traceback in the user's face
            code = _internal_error(exc)
    except BaseException as exc:
        from esper_migrate.safe_write import Interrupted  # (lazy: check does not pay for it)

        if not isinstance(exc, Interrupted):
            raise
        code = _interrupted(exc.name, exc.signum, progress)
    raise typer.Exit(code)


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
        done = f"after writing {progress.written} of {progress.to_write} files"
    return (
        f"esper-migrate: interrupted by {name} {done}; every file is either as it was or "
        "completely migrated, run again to finish"
    )


def _interrupted(name: str, signum: int, progress: _Progress) -> int:
    typer.echo(_interrupted_line(name, progress), err=True)
    return EXIT_SIGNAL_BASE + signum


def _internal_error(exc: Exception) -> int:
    import os
    import traceback

    # One line for the user; the traceback for a bug report, on request.
    if os.environ.get("ESPER_MIGRATE_DEBUG"):
        traceback.print_exc()
    typer.echo(
        f"esper-migrate: internal error: {type(exc).__name__}: {exc} "
        "(set ESPER_MIGRATE_DEBUG=1 for the traceback)",
        err=True,
    )
    return EXIT_USAGE


def _run(
    paths: list[str],
    diff: bool,
    check: bool,
    spec_file: Path | None,
    jobs: int,
    lock_timeout: float,
    progress: _Progress,
) -> int:
    # Imported here so that `esper-migrate check` (same app) does not pay for them at startup.
    from contextlib import nullcontext

    from esper_migrate.config import ConfigError
    from esper_migrate.discover import strictly_inside, walk
    from esper_migrate.engine import run_apply, unified_diff
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

    write = not (diff or check)
    try:
        targets, excludes, configured_spec, root = _config(paths)
        spec = load_spec(spec_file or configured_spec)
        # Writing holds the project's lock from the first read to the last write: a second
        # run plans from this one's output, never from the same originals.
        lock = (
            project_lock(
                root,
                timeout=lock_timeout,
                on_wait=lambda line: typer.echo(f"esper-migrate: {line}", err=True),
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
                found.files, spec, excludes, jobs, exclude_root=root, context=context
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
                    sys.stdout.write(unified_diff(r))
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
    except (SpecError, ConfigError, FileNotFoundError, LockTimeout) as exc:
        typer.echo(f"esper-migrate: error: {exc}", err=True)
        return EXIT_USAGE
    verb = "changed" if write else "would change"
    typer.echo(summary_text(result, verb, skipped), err=diff)
    if check and result.changed:
        return EXIT_PENDING
    if result.unresolved or result.errors:
        return EXIT_UNRESOLVED
    return EXIT_OK
