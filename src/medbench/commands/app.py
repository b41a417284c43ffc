"""The one Typer application every command module registers on, and the console used to print."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="medbench",
    help="Compare PyTorch, JAX and Keras on MedMNIST: the same model, batches and recipe, measured the same way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)
console = Console()
err_console = Console(stderr=True)


def file_status_cell(path: Path, verified: bool | None) -> str:
    """· missing, ● present (unchecked), ✓ checksum verified, ✗ corrupt: the legend of :func:`file_table`."""
    if not path.exists():
        return "[dim]·[/]"
    if verified is None:
        return "[yellow]●[/]"
    return "[green]✓[/]" if verified else "[red]✗[/]"


def file_table(title: str, *, where: str, checksum: str, verified: bool) -> Table:
    """The table of downloadable files (datasets, weights), with the legend of :func:`file_status_cell`."""
    return Table(
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
        title=title,
        caption=f"· not {where}  [yellow]●[/] {where}  [green]✓[/] {checksum} verified  [red]✗[/] corrupt"
        + ("" if verified else f"  (add --verify to check {checksum}s)"),
    )
