"""Pretrained-weight commands: ``weights list``, ``weights download``, ``weights verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medbench import pretrained
from medbench.commands.app import app, console, file_legend, file_status, file_status_column
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note, plain

weights_app = typer.Typer(
    name="weights",
    help="torchvision's ImageNet weights in the torch hub cache: list, download, verify.",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def list_command(
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Check the SHA-256 of every cached file.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List the models with ImageNet weights: file, whether it is cached, ImageNet accuracy, input size.

    \b
    Examples:
      medbench weights list
      medbench weights list --verify --format json
    """
    table = OutputTable(
        f"torchvision ImageNet weights (cache: {pretrained.cache_dir()})",
        [
            Column("model"),
            Column("file"),
            file_status_column("cached"),
            Column("acc@1", "percent", 3, key="imagenet_acc1_pct"),
            Column("acc@5", "percent", 3, key="imagenet_acc5_pct"),
            Column("params", "count"),
            Column("MB", "float", 0),
            Column("resize/crop"),
            Column("normalize"),
        ],
        caption=file_legend(where="cached", checksum="SHA-256", verified=verify),
    )
    for model in pretrained.list_pretrained():
        entry = pretrained.get_pretrained(model)
        path = pretrained.cache_dir() / entry.filename
        verified = pretrained.verify_checkpoint(path).ok if verify and path.exists() else None
        table.add_row(
            model,
            entry.filename,
            file_status(path, verified),
            entry.acc1 / 100,  # torchvision's figures are percent already
            entry.acc5 / 100,
            entry.num_params,
            entry.file_mb,
            f"{entry.resize_size}/{entry.crop_size} {entry.interpolation}",
            entry.normalize,
        )
    emit(table, fmt)


@weights_app.command("download")
def download_command(
    models: Annotated[list[str], typer.Argument(help="Model name(s), e.g. resnet18, or 'all'.")],
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if a verified copy is cached.")
    ] = False,
) -> None:
    """Download ImageNet weights into the torch hub cache (resumable, SHA-256-checked).

    \b
    Examples:
      medbench weights download resnet18
      medbench weights download all
    """
    names = pretrained.list_pretrained() if models == ["all"] else models
    entries = [pretrained.get_pretrained(name) for name in names]  # every name checked before any download
    for entry in entries:
        path = pretrained.download_pretrained(entry.model, force=force)
        console.print(f"[green]ok[/] {entry.model} -> {plain(str(path))}")


@weights_app.command("verify")
def verify_command(
    paths: Annotated[list[Path], typer.Argument(help="Checkpoint file(s), e.g. a cached .pth.")],
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Check checkpoint files: the SHA-256 their name promises (torch hub's rule) and that they hold tensors.

    Exits 1 if any file fails its hash.

    \b
    Examples:
      medbench weights verify ~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth
      medbench weights verify ./my_backbone.safetensors --format json
    """
    unnamed = "readable (no hash in the name)"
    table = OutputTable(
        "checkpoint verification",
        [
            Column("file"),
            Column("status", styles={"ok": "green", unnamed: "yellow"}),
            Column("model"),
            Column("tensors", "int"),
            Column("SHA-256", key="sha256"),
        ],
    )
    bad = 0
    for path in paths:
        check = pretrained.verify_checkpoint(path)
        if not check.ok:
            status = f"SHA-256 does not start with {check.expected_prefix}"
        elif check.expected_prefix is None:
            status = unnamed
        else:
            status = "ok"
        bad += not check.ok
        table.add_row(str(path), status, check.model, check.n_tensors, check.sha256)
        if not check.ok:
            table.highlight.add((len(table.rows) - 1, 1))
    emit(table, fmt)
    if bad:
        note(
            f"[red]{bad} file(s) corrupt.[/] Download them again with `medbench weights download MODEL`, "
            "which moves each corrupt file aside (to NAME.corrupt-<date>) first.",
            fmt,
        )
        raise typer.Exit(1)
