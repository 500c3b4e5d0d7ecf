"""``esper-migrate apply``: rewrite the files, print a diff (``--diff``) or fail on pending
changes (``--check``); a summary at the end; exit 3 while unresolved sites remain."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

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


def summary_text(result: ApplyResult, verb: str) -> str:
    lines = []
    for u in sorted(result.unresolved, key=lambda u: (u.path, u.line, u.col)):
        lines.append(
            f"{u.path}:{u.line}:{u.col + 1}: unresolved {u.code.value} ({u.tier.value}): "
            f"{u.message}: {u.reason}; suggested edit: {u.suggestion}"
        )
    for path, err in sorted(result.errors.items()):
        lines.append(f"{path}: error: {err} (left unchanged)")
    kinds = result.sites_by_kind()
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
    lines.append(
        f"{result.files_scanned} files scanned, {result.candidates} analysed, "
        f"{len(result.changed)} {verb}; sites changed: {sum(kinds.values())} ({by_kind}); "
        f"unresolved: {len(result.unresolved)}; errors: {len(result.errors)}"
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
) -> None:
    """Thread the spec's parameter through definitions, calls and storage, in place."""
    # Imported here so that `esper-migrate check` (same app) does not pay for them at startup.
    from esper_migrate.config import ConfigError
    from esper_migrate.discover import strictly_inside
    from esper_migrate.engine import run_apply, unified_diff
    from esper_migrate.rewrite import write_atomic
    from esper_migrate.spec import SpecError, load_spec

    try:
        targets, excludes, configured_spec, root = _config(paths or [])
        spec = load_spec(spec_file or configured_spec)
        # The index is repository-wide: the project root informs it even for a single file.
        context = [root] if root is not None and strictly_inside(targets, root) else []
        result = run_apply(targets, spec, excludes, jobs, exclude_root=root, context=context)
    except (SpecError, ConfigError, FileNotFoundError) as exc:
        typer.echo(f"esper-migrate: error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    write = not (diff or check)
    for r in result.changed:
        if diff:
            sys.stdout.write(unified_diff(r))
        elif write:
            try:
                write_atomic(Path(r.path), r.new)
            except OSError as exc:  # reported with the rest; the other files are still written
                r.error = f"cannot write: {exc.strerror or exc}"
                result.errors[r.path] = r.error
    verb = "changed" if write else "would change"
    typer.echo(summary_text(result, verb), err=diff)
    if check and result.changed:
        raise typer.Exit(EXIT_PENDING)
    if result.unresolved or result.errors:
        raise typer.Exit(EXIT_UNRESOLVED)
    raise typer.Exit(EXIT_OK)
