"""Pretrained-weight commands: ``weights list``, ``weights download``, ``weights verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medbench import pretrained
from medbench.commands.app import app, console, file_status_cell, file_table

weights_app = typer.Typer(
    name="weights",
    help="torchvision's ImageNet weights in the torch hub cache: list, download, verify.",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def list_command(
    verify: Annotated[bool, typer.Option("--verify", help="Check the SHA-256 of every cached file.")] = False,
) -> None:
    """List the models with ImageNet weights: file, whether it is cached, ImageNet accuracy, input size."""
    table = file_table(
        f"torchvision ImageNet weights (cache: {escape(str(pretrained.cache_dir()))})",
        where="cached",
        checksum="SHA-256",
        verified=verify,
    )
    table.add_column("model", no_wrap=True)
    table.add_column("file", no_wrap=True)
    table.add_column("cached", justify="center", no_wrap=True)
    for column in ("acc@1", "acc@5", "params", "MB", "resize/crop"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("normalize", no_wrap=True)
    for model in pretrained.list_pretrained():
        entry = pretrained.get_pretrained(model)
        path = pretrained.cache_dir() / entry.filename
        verified = pretrained.verify_checkpoint(path).ok if verify and path.exists() else None
        table.add_row(
            model,
            entry.filename,
            file_status_cell(path, verified),
            f"{entry.acc1:.3f}",
            f"{entry.acc5:.3f}",
            f"{entry.num_params / 1e6:.1f}M",
            f"{entry.file_mb:.0f}",
            f"{entry.resize_size}/{entry.crop_size} {entry.interpolation}",
            entry.normalize,
        )
    console.print(table)


@weights_app.command("download")
def download_command(
    models: Annotated[list[str], typer.Argument(help="Model name(s), e.g. resnet18, or 'all'.")],
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if a verified copy is cached.")
    ] = False,
) -> None:
    """Download ImageNet weights into the torch hub cache (resumable, SHA-256-checked)."""
    names = pretrained.list_pretrained() if models == ["all"] else models
    entries = [pretrained.get_pretrained(name) for name in names]  # every name checked before any download
    for entry in entries:
        path = pretrained.download_pretrained(entry.model, force=force)
        console.print(f"[green]ok[/] {entry.model} -> {escape(str(path))}")


@weights_app.command("verify")
def verify_command(
    paths: Annotated[list[Path], typer.Argument(help="Checkpoint file(s), e.g. a cached .pth.")],
) -> None:
    """Check checkpoint files: the SHA-256 their name promises (torch hub's rule) and that they hold tensors.

    Exits 1 if any file fails its hash.
    """
    table = Table(title="checkpoint verification")
    for column in ("file", "status", "model", "tensors", "SHA-256"):
        table.add_column(column)
    bad = 0
    for path in paths:
        check = pretrained.verify_checkpoint(path)
        if not check.ok:
            status = f"[red]SHA-256 does not start with {check.expected_prefix}[/]"
        elif check.expected_prefix is None:
            status = "[yellow]readable (no hash in the name)[/]"
        else:
            status = "[green]ok[/]"
        bad += not check.ok
        tensors = "-" if check.n_tensors is None else str(check.n_tensors)
        table.add_row(escape(str(path)), status, check.model or "-", tensors, check.sha256)
    console.print(table)
    if bad:
        console.print(
            f"[red]{bad} file(s) corrupt.[/] Download them again with `medbench weights download MODEL`, "
            "which moves each corrupt file aside (to NAME.corrupt-<date>) first."
        )
        raise typer.Exit(1)
