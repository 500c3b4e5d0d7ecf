"""The ``esper-migrate`` command line."""

from __future__ import annotations

import typer

from esper_migrate import __version__

app = typer.Typer(
    name="esper-migrate",
    help="Thread blueprint_indices through a recurrent PPO codebase (apply) and lint it (check).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"esper-migrate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
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
    typer.echo(f"esper-migrate rule: error: unknown code {code!r} (known: {known})", err=True)
    raise typer.Exit(2)


def main() -> None:
    app()
