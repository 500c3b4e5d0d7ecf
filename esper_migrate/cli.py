"""The ``esper-migrate`` command line."""

from __future__ import annotations

from collections.abc import Sequence

import typer

from esper_migrate import __version__
from esper_migrate.console import CONTEXT_SETTINGS, error, run

PROG = "esper-migrate"

app = typer.Typer(
    name=PROG,
    help="Thread blueprint_indices through a recurrent PPO codebase (apply) and lint it (check).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Thread blueprint_indices through a recurrent PPO codebase (apply) and lint it (check)."""


from esper_migrate.apply_cmd import apply as _apply  # noqa: E402

app.command(name="apply")(_apply)

from esper_migrate.check import check_command as _check  # noqa: E402

app.command(name="check")(_check)


@app.command(name="rule")
def _rule(code: str = typer.Argument(..., help="A finding code, e.g. EM004.")) -> None:
    """Print a rule's documentation (what it does, why, example, fix, fix safety)."""
    from esper_migrate.rule import all_rules

    for rule in all_rules():
        if code.upper() == rule.CODE:
            typer.echo(rule.doc(), nl=False)
            return
    known = ", ".join(str(r.CODE) for r in all_rules())
    raise typer.Exit(error(PROG, f"unknown code {code!r} (known: {known})"))


spec_app = typer.Typer(
    help="Work with spec files.", no_args_is_help=True, context_settings=CONTEXT_SETTINGS
)
app.add_typer(spec_app, name="spec")


@spec_app.command(name="upgrade")
def _spec_upgrade(
    file: str = typer.Argument(..., help="A format-1 spec file (a single [parameter] table)."),
) -> None:
    """Print a format-1 spec in format 2 (validated; redirect it to a file to keep it)."""
    from esper_migrate.spec import SpecError, read_spec_text, upgrade_text

    try:
        typer.echo(upgrade_text(read_spec_text(file), file), nl=False)
    except SpecError as exc:
        raise typer.Exit(error(PROG, str(exc))) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    return run(app, PROG, argv)
