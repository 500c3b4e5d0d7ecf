"""What ``esper-migrate`` and ``esper-ref`` share at the terminal: one wording for errors
(``<prog>: error: ...`` on stderr, exit 2), ``-h``/``-V``, plurals, colour only on a terminal.

Imported at start-up by both commands, so it imports nothing that typer has not loaded already.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import typer

if TYPE_CHECKING:  # a Protocol class costs start-up time; only the type checker needs it
    from typing import Protocol

    class _ClickError(Protocol):
        ctx: Any

        def format_message(self) -> str: ...


#: Exit code of every usage, configuration or internal error, in both commands.
EXIT_USAGE = 2

#: Passed to ``typer.Typer(context_settings=...)``: subcommands inherit it.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 file``, ``2 files``, ``0 files`` (``nouns`` for an irregular plural)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def use_color(stream: TextIO) -> bool:
    """Colour on a terminal only; ``NO_COLOR`` (https://no-color.org) turns it off and
    ``FORCE_COLOR`` on, as for most command-line tools (each when set and not empty)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


_STYLES = {"bold": "1", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def paint(text: str, style: str, color: bool) -> str:
    """``text`` in an ANSI ``style`` (bold, red, green, yellow, cyan) when ``color`` is on."""
    if not color or not text:
        return text
    return f"\033[{_STYLES[style]}m{text}\033[0m"


def write_report(path: Path, text: str) -> None:
    """Write a report file whole or not at all (a temporary file renamed over it), with the
    permissions a plain ``open(path, "w")`` would give it. Raises OSError."""
    import tempfile

    target = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def error(prog: str, message: str, hint: str | None = None) -> int:
    """Write ``<prog>: error: <message>`` (and a hint line) to stderr; returns the exit code."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    if hint:
        sys.stderr.write(f"{hint}\n")
    return EXIT_USAGE


def debug_variable(prog: str) -> str:
    """The environment variable that asks ``prog`` for an internal error's traceback."""
    return prog.upper().replace("-", "_") + "_DEBUG"


def internal_error(prog: str, exc: BaseException, stream: TextIO | None = None) -> int:
    """Report a bug in one line, ``<prog>: error: internal error: <type>: <message>``, naming
    the variable that adds the traceback (a user sees one line, a bug report gets the rest);
    call it from an ``except`` block. Returns the exit code."""
    stream = stream if stream is not None else sys.stderr
    variable = debug_variable(prog)
    stream.write(
        f"{prog}: error: internal error: {type(exc).__name__}: {exc} "
        f"(set {variable}=1 for the traceback)\n"
    )
    if os.environ.get(variable):
        import traceback

        stream.write(traceback.format_exc())
    return EXIT_USAGE


def _click_classes() -> dict[str, type[BaseException]]:
    # typer runs on its own copy of click from 0.2x on and on the click package before; its
    # public BadParameter derives from the UsageError and ClickException of whichever it uses.
    return {cls.__name__: cls for cls in typer.BadParameter.__mro__}


def run(app: typer.Typer, prog: str, argv: Sequence[str] | None = None) -> int:
    """Run ``app`` as ``prog`` and return its exit code, with click's errors in our wording
    (``<prog>: error: ...`` and a ``Try '<prog> <command> -h'`` hint) instead of its usage
    block or typer's boxed panel."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    classes = _click_classes()
    usage_error, click_exception = classes["UsageError"], classes["ClickException"]
    try:
        code = command.main(args, prog_name=prog, standalone_mode=False)
    except usage_error as exc:
        usage = cast("_ClickError", exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `prog`: the help, exit 2
            # (typer's rich help prints itself while the error is made, leaving it empty)
            if usage.format_message():
                sys.stdout.write(usage.format_message() + "\n")
            return EXIT_USAGE
        ctx = getattr(exc, "ctx", None)
        hint = f"Try '{ctx.command_path} -h' for help." if ctx is not None else None
        return error(prog, usage.format_message(), hint)
    except click_exception as exc:  # e.g. a file option that cannot be opened
        return error(prog, cast("_ClickError", exc).format_message())
    except typer.Abort:
        return error(prog, "aborted")
    except Exception as exc:  # a bug: one line; the traceback when the user asks for it
        return internal_error(prog, exc)
    return code if isinstance(code, int) else 0
