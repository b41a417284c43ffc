"""The one Typer application every command module registers on, and the console used to print."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import typer
from rich.console import Console


class _App(typer.Typer):
    """The Typer app, with on/off switches shown as ``--verify/--no-verify`` rather than ``--verify <bool>``."""

    def __call__(self, *args, **kwargs):
        from typer import rich_utils

        if rich_utils.MAX_WIDTH is None and not sys.stdout.isatty():
            rich_utils.MAX_WIDTH = 120  # help read through a pipe or in a file: not squeezed to 80 columns
        command = typer.main.get_command(self)
        _tidy_help(command)
        return command(*args, **kwargs)


def _tidy_help(command) -> None:
    """Typer gives every flag the metavar ``<bool>``: a switch takes no value, so it shows none. Typer keeps
    the line breaks of a docstring's later paragraphs: joined here, except in ``\\b`` blocks (examples)."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    make_help_option = command.get_help_option

    def get_help_option(ctx, _make=make_help_option):  # --help is made per call: the same treatment
        option = _make(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    if command.help:
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(
            p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines()) for p in paragraphs
        )
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


app = _App(
    name="medbench",
    help="Compare PyTorch, JAX and Keras on MedMNIST: the same model, batches and recipe, measured the same way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)
# Off a terminal (a pipe, a log file) Rich would assume 80 columns and cut or fold table cells; such output
# is read whole by a person later or by a script, so it gets lines as long as the content needs.
_WIDE = 10_000


def _console(*, stderr: bool = False) -> Console:
    out = Console(stderr=stderr)
    if not out.is_terminal:
        out = Console(stderr=stderr, width=_WIDE)
    return out


console = _console()
err_console = _console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from medbench import __version__

        console.print(f"medbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print medbench's version and exit."
    ),
) -> None:
    """Compare PyTorch, JAX and Keras on MedMNIST: the same model, batches and recipe, measured the same way.

    Every command has --help with its defaults and examples; `medbench experiments` lists the shipped
    experiment grids. Results live in $MEDBENCH_HOME (default ~/.medbench).
    """


# The results database, for every command that reads or writes it.
STORE_HELP = (
    "Results database (an SQLite file). Default: $MEDBENCH_RESULTS if set, else "
    "$MEDBENCH_HOME/results.sqlite (MEDBENCH_HOME defaults to ~/.medbench)."
)


def file_status(path: Path, verified: bool | None) -> str:
    """missing, present (not checked), verified (checksum matches) or corrupt: see :func:`file_status_column`."""
    if not path.exists():
        return "missing"
    if verified is None:
        return "present"
    return "verified" if verified else "corrupt"


def file_status_column(name: str, *, key: str = ""):
    """A column of :func:`file_status` words, shown to people as · ● ✓ ✗ (scripts get the words)."""
    from medbench.commands.output import Column

    return Column(
        name,
        key=key,
        symbols={"missing": "·", "present": "●", "verified": "✓", "corrupt": "✗"},
        styles={"missing": "dim", "present": "yellow", "verified": "green", "corrupt": "red"},
    )


def file_legend(*, where: str, checksum: str, verified: bool) -> str:
    """The caption explaining :func:`file_status_column`'s symbols."""
    return f"· not {where}  ● {where}  ✓ {checksum} verified  ✗ corrupt" + (
        "" if verified else f"  (add --verify to check {checksum}s)"
    )
