"""The ``medbench`` console command: imports every command module, then runs the app.

Every way a command can end is decided here, so a user never sees a traceback for something they can fix:

- a usage error (unknown command or option, a value of the wrong type, a missing argument): one line, exit 2;
- a :class:`medbench.errors.MedbenchError` (a bad value, a missing file): one line with the fix, exit 2;
- a fault of the environment (disk full, permission denied, a read-only folder): one line, exit 1;
- Ctrl-C, also during start-up: one line, exit 130;
- anything else is a bug in medbench: its traceback, then a line asking to report it, exit 1.

The imports happen inside :func:`app`, so that a Ctrl-C while they run is handled like any other.
"""

from __future__ import annotations

import importlib
import sys

ISSUES_URL = "https://github.com/medbench/medbench/issues"
COMMAND_MODULES = (
    "data",
    "models",
    "train",
    "evaluate",
    "results",
    "bench",
    "run",
    "report",
    "weights",
    "compare",
    "experiments",
    "tune",
)


def _load_app():
    """The Typer app with every command module registered."""
    for module in COMMAND_MODULES:  # each registers its commands on the app as it is imported
        importlib.import_module(f"medbench.commands.{module}")
    from medbench.commands.app import app as typer_app

    return typer_app


def _say(message: str) -> None:
    """One line (Rich markup) on stderr; plain print when Rich is not (fully) imported yet, as after a Ctrl-C
    in the middle of the start-up."""
    try:
        if "medbench.commands.app" in sys.modules:
            from medbench.commands.app import err_console

            err_console.print(message, highlight=False, soft_wrap=True)
            return
        from rich.markup import render

        message = render(message).plain
    except Exception:  # a half-imported module: strip the markup by hand
        import re

        message = re.sub(r"(?<!\\)\[/?[a-z ]*\]", "", message).replace("\\[", "[")
    print(message, file=sys.stderr)


def _escape(text: object) -> str:
    from rich.markup import escape

    return escape(str(text))


def app() -> None:
    """Entry point of the console script."""
    try:
        code = _run(sys.argv[1:])
    except KeyboardInterrupt:
        code = _interrupted()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    sys.exit(code)


def _run(argv: list[str]) -> int:
    typer_app = _load_app()
    import click  # typer may be built on the standalone click instead of its bundled copy: handle both
    from typer import _click as bundled_click

    from medbench.errors import MedbenchError, describe_os_error

    try:
        # Outside standalone mode click returns a command's exit code (typer.Exit) instead of exiting,
        # and hands every exception to us instead of printing it its own way.
        code = typer_app(args=argv, prog_name="medbench", standalone_mode=False)
        if code == 130:  # typer turns a KeyboardInterrupt inside a command into exit code 130
            return _interrupted()
        return code if isinstance(code, int) else 0
    except MedbenchError as err:
        _say(f"[bold red]error:[/] {_escape(err.problem)}" + (f" {_escape(err.fix)}" if err.fix else ""))
        return err.exit_code
    except KeyboardInterrupt:
        return _interrupted()
    except (bundled_click.exceptions.NoArgsIsHelpError, click.exceptions.NoArgsIsHelpError) as err:
        # Bare `medbench` (or a bare group): the help, as asked for, is not an error.
        print(err.format_message())
        return 0
    except (bundled_click.exceptions.UsageError, click.exceptions.UsageError) as err:
        _say(f"[bold red]error:[/] {_escape(_usage_message(err, argv))}")
        return 2
    except (bundled_click.exceptions.ClickException, click.exceptions.ClickException) as err:
        _say(f"[bold red]error:[/] {_escape(err.format_message())}")
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    except click.exceptions.Abort:
        return _interrupted()
    except Exception as err:
        import typer

        if isinstance(err, typer.Exit):
            return err.exit_code
        if isinstance(err, typer.Abort):
            return _interrupted()
        environmental = describe_os_error(err)
        if environmental is not None:
            _say(f"[bold red]error:[/] {_escape(environmental)}")
            return 1
        raise_bug()
        return 1


def _usage_message(err, argv: list[str]) -> str:
    """click's message, with the value that was refused and where to find help."""
    message = err.format_message().rstrip()
    param = getattr(err, "param", None)
    value = _given_value(param, argv) if param is not None else None
    if value is not None and repr(value) not in message and type(err).__name__ == "BadParameter":
        message = f"{message.rstrip('.')} (got {value!r})."
    ctx = getattr(err, "ctx", None)
    path = ctx.command_path if ctx is not None else "medbench"
    if not message.endswith((".", "?", ")")):
        message += "."
    return f"{message} See `{path} --help`."


def _given_value(param, argv: list[str]) -> str | None:
    """The text the user gave for an option (``--epochs two`` or ``--epochs=two``), if it can be found."""
    opts = [*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())]
    for i, token in enumerate(argv):
        for opt in opts:
            if token == opt and i + 1 < len(argv):
                return argv[i + 1]
            if token.startswith(opt + "=") and opt.startswith("--"):
                return token[len(opt) + 1 :]
    return None


def _interrupted() -> int:
    """Exit code 130 after one line saying what was kept and how to go on (see :mod:`medbench.interrupt`)."""
    try:
        from medbench import interrupt

        message = interrupt.message()
    except Exception:  # interrupted while importing what would say more
        message = "[yellow]interrupted[/] (Ctrl-C)."
    _say(message)
    return 130


def raise_bug() -> None:
    """Prints the traceback of the exception being handled and asks to report it: a bug, not a user error."""
    import traceback

    traceback.print_exc()
    _say(
        "[bold red]This is a bug in medbench[/], not something you did wrong. Please report it with the "
        f"command you ran and the traceback above: {ISSUES_URL}"
    )


if __name__ == "__main__":
    app()
