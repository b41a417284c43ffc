"""The ``medbench`` console command: imports every command module, then runs the app.

User mistakes (:class:`medbench.errors.MedbenchError`) become one readable line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from medbench.commands import data  # noqa: F401  (registers commands)
from medbench.commands.app import app as _typer_app
from medbench.commands.app import err_console
from medbench.errors import MedbenchError

# Further command modules register here as they are added.
for _module in ("models", "train", "evaluate", "results", "bench", "run", "report", "weights", "compare"):
    try:
        __import__(f"medbench.commands.{_module}")
    except ModuleNotFoundError as _err:  # a command group not written yet
        if _err.name != f"medbench.commands.{_module}":
            raise


def app() -> None:
    """Entry point of the console script."""
    try:
        # Outside standalone mode click returns a command's exit code (typer.Exit) instead of exiting.
        code = _typer_app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MedbenchError as err:
        message = f"[bold red]error:[/] {err.problem}"
        if err.fix:
            message += f" {err.fix}"
        err_console.print(message, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as err:  # click's own usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    app()
