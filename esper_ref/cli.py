"""The ``esper-ref`` command line."""

from __future__ import annotations

import typer

from esper_ref import __version__

app = typer.Typer(
    name="esper-ref",
    help="Train and evaluate the reference op-conditioned Phase 4 policy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"esper-ref {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Train and evaluate the reference op-conditioned Phase 4 policy."""


def main() -> None:
    app()
