"""``esper-migrate apply``: rewrite the files, print a diff (``--diff``) or fail on pending
changes (``--check``); a summary at the end; exit 3 while unresolved sites remain."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from esper_migrate.console import error, paint, plural, use_color, write_report

if TYPE_CHECKING:
    from esper_migrate.engine import ApplyResult

#: Exit codes.
EXIT_OK = 0
EXIT_PENDING = 1
EXIT_USAGE = 2
EXIT_UNRESOLVED = 3


def _config(paths: list[str]) -> tuple[list[str], list[str], Path | None, Path | None]:
    """(paths, excludes, spec, root) from ``[tool.esper-migrate]`` in pyproject.toml."""
    from esper_migrate.config import load_config

    # Found from the first path given, as `check` does: `apply proj/` run from outside the
    # project still honours proj's excludes and spec.
    cfg = load_config(Path(paths[0]) if paths else Path.cwd())
    targets = paths or [str(p) for p in cfg.paths] or ["."]
    return targets, list(cfg.exclude), cfg.spec, cfg.root


def summary_text(
    result: ApplyResult, verb: str, *, quiet: bool = False, color: bool = False
) -> str:
    """Unresolved sites and errors, one per line, then the counts (left out when ``quiet``);
    paths as the user names them (relative to the cwd when below it)."""
    from esper_migrate.formats import display_path

    lines = []
    for u in sorted(result.unresolved, key=lambda u: (u.path, u.line, u.col)):
        where = paint(f"{display_path(u.path)}:{u.line}:{u.col + 1}:", "bold", color)
        lines.append(
            f"{where} {paint('unresolved', 'yellow', color)} {u.code.value} ({u.tier.value}): "
            f"{u.message}: {u.reason}; suggested edit: {u.suggestion}"
        )
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
        f"unresolved: {len(result.unresolved)}; errors: {len(result.errors)}"
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
) -> None:
    """Thread the spec's parameter through definitions, calls and storage, in place."""
    # Imported here so that `esper-migrate check` (same app) does not pay for them at startup.
    from esper_migrate.config import ConfigError
    from esper_migrate.discover import strictly_inside
    from esper_migrate.engine import decode, run_apply
    from esper_migrate.formats import display_path, unified_diff
    from esper_migrate.rewrite import write_atomic
    from esper_migrate.spec import SpecError, load_spec

    prog = "esper-migrate"
    if quiet and verbose:
        raise typer.Exit(error(prog, "--quiet and --verbose exclude each other"))
    try:
        targets, excludes, configured_spec, root = _config(paths or [])
        spec = load_spec(spec_file or configured_spec)
        # The index is repository-wide: the project root informs it even for a single file.
        context = [root] if root is not None and strictly_inside(targets, root) else []
        if verbose:
            sys.stderr.write(
                f"{prog}: root {root}; paths {', '.join(map(str, targets))}; "
                f"spec {spec_file or configured_spec or 'built-in (phase4)'}\n"
            )
        result = run_apply(targets, spec, excludes, jobs, exclude_root=root, context=context)
    except (SpecError, ConfigError, FileNotFoundError) as exc:
        raise typer.Exit(error(prog, str(exc))) from None
    # The report goes to --output-file (written whole at the end) or stdout; the summary of a
    # diff goes to stderr, so that the diff alone can be piped or saved for `git apply`.
    buffer = io.StringIO()
    report = buffer if output_file is not None else sys.stdout
    color = output_file is None and use_color(sys.stdout)
    write = not (diff or check)
    verb = "changed" if write else "would change"
    for r in result.changed:
        if diff:
            report.write(
                unified_diff(display_path(r.path), decode(r.original), decode(r.new), color=color)
            )
        elif write:
            try:
                write_atomic(Path(r.path), r.new)
            except OSError as exc:  # reported with the rest; the other files are still written
                r.error = f"cannot write: {exc.strerror or exc}"
                result.errors[r.path] = r.error
                continue
        if verbose:
            sys.stderr.write(f"{prog}: {verb} {display_path(r.path)}\n")
    stream = sys.stderr if diff else report
    summary = summary_text(
        result, verb, quiet=quiet, color=stream is not buffer and use_color(stream)
    )
    if summary:
        stream.write(summary + "\n")
    if output_file is not None:
        try:
            write_report(output_file, buffer.getvalue())
        except OSError as exc:
            raise typer.Exit(error(prog, f"{output_file}: cannot write: {exc.strerror}")) from None
    if check and result.changed:
        raise typer.Exit(EXIT_PENDING)
    if result.unresolved or result.errors:
        raise typer.Exit(EXIT_UNRESOLVED)
    raise typer.Exit(EXIT_OK)
