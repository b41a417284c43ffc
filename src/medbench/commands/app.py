"""The one Typer application every command module registers on, and the console used to print."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="medbench",
    help="Compare PyTorch, JAX and Keras on MedMNIST: the same model, batches and recipe, measured the same way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
