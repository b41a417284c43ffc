"""Data commands: ``datasets``, ``info``, ``download``, ``verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medbench.commands.app import app, console, file_status_cell, file_table
from medbench.data import registry

RootOption = Annotated[
    Path | None,
    typer.Option("--root", help=f"Data folder (default: ${registry.ROOT_ENV_VAR}, else ~/.medmnist)."),
]
SizeOption = Annotated[
    list[int] | None, typer.Option("--size", "-s", help="Image size(s): 28, 64, 128, 224 (repeatable).")
]


def _sizes(sizes: list[int] | None, default: tuple[int, ...]) -> tuple[int, ...]:
    chosen = tuple(sizes) if sizes else default
    for size in chosen:
        registry.check_size(size)
    return chosen


def _existing_root(root: Path | None) -> Path | None:
    """A data folder named for reading must exist: a typo would otherwise list every file as missing."""
    if root is None:
        return None
    from medbench.errors import ConfigError

    folder = root.expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ConfigError(
            f"The data folder --root {folder} {what}.",
            f"Pass the folder holding the .npz files, or leave --root out for ${registry.ROOT_ENV_VAR} "
            f"(else {registry.DEFAULT_ROOT}).",
        )
    return root


_SHORT_TASK = {
    "multi-label, binary-class": "multi-label",
    "ordinal-regression": "ordinal",
    "binary-class": "binary",
}


@app.command("datasets")
def datasets_command(
    root: RootOption = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check the MD5 of every cached file.")] = False,
) -> None:
    """List every MedMNIST 2D dataset: task, classes, splits, license and which sizes are on disk."""
    from medbench.data.download import verify_dataset_file

    root = _existing_root(root)

    table = file_table(
        f"MedMNIST 2D datasets (data root: {escape(str(registry.data_root(root)))})",
        where="on disk",
        checksum="MD5",
        verified=verify,
    )
    table.add_column("dataset", no_wrap=True)
    table.add_column("task", no_wrap=True)
    for column in ("classes", "ch", "train", "val", "test"):  # counts never wrap
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("license", no_wrap=True)
    for size in registry.SIZES:
        table.add_column(str(size), justify="center", no_wrap=True)
    for flag in registry.list_datasets():
        info = registry.get_dataset(flag)
        cells = []
        for size in registry.SIZES:
            if size not in info.sizes:  # a variant published at fewer sizes
                cells.append("")
                continue
            path = registry.local_path(flag, size, root)
            verified = verify_dataset_file(flag, size, root=root).ok if verify and path.exists() else None
            cells.append(file_status_cell(path, verified))
        n = info.n_samples
        table.add_row(
            flag,
            _SHORT_TASK.get(info.task.value, info.task.value),
            str(info.n_classes),
            str(info.n_channels),
            f"{n['train']:,}",
            f"{n['val']:,}",
            f"{n['test']:,}",
            info.license,
            *cells,
        )
    console.print(table)


@app.command("info")
def info_command(name: str, root: RootOption = None) -> None:
    """Show one dataset's metadata, class names and official files."""
    info = registry.get_dataset(name)
    root = _existing_root(root)
    console.print(
        f"[bold]{info.title}[/] ({info.flag}) - {info.task.value}, {info.n_channels} channel(s), {info.license}"
    )
    console.print(info.description, highlight=False)
    classes = Table(title="classes")
    classes.add_column("index", justify="right")
    classes.add_column("name")
    for i, label in enumerate(info.labels):
        classes.add_row(str(i), label)
    console.print(classes)
    files = Table(title="files")
    for column in ("size", "file", "MD5", "on disk", "URL"):
        files.add_column(column)
    for size in info.sizes:
        path = registry.local_path(info.flag, size, root)
        remote = info.remote(size)
        files.add_row(
            str(size), info.filename(size), remote.md5, "yes" if path.exists() else "no", remote.url
        )
    console.print(files)
    console.print("splits: " + ", ".join(f"{k} {v:,}" for k, v in info.n_samples.items()))


@app.command("download")
def download_command(
    names: Annotated[list[str], typer.Argument(help="Dataset flag(s), e.g. bloodmnist, or 'all'.")],
    size: SizeOption = None,
    root: RootOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if a verified copy exists.")
    ] = False,
) -> None:
    """Download official MedMNIST files (resumable, MD5-checked) into the data root."""
    from medbench.data.download import download_dataset

    flags = registry.list_datasets() if names == ["all"] else [registry.get_dataset(n).flag for n in names]
    for flag in flags:
        for s in _sizes(size, (28,)):
            path = download_dataset(flag, s, root=root, force=force)
            console.print(f"[green]ok[/] {flag} {s}px -> {escape(str(path))}")


@app.command("verify")
def verify_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Dataset flag(s); default: every cached file.")
    ] = None,
    size: SizeOption = None,
    root: RootOption = None,
) -> None:
    """Check the MD5 of downloaded files against the official ones; exit 1 if any is corrupt or missing."""
    from medbench.data.download import verify_dataset_file

    flags = [registry.get_dataset(n).flag for n in names] if names else registry.list_datasets()
    sizes = _sizes(size, registry.SIZES)
    root = _existing_root(root)
    table = Table(title=f"verification (data root: {escape(str(registry.data_root(root)))})")
    for column in ("dataset", "size", "status", "MD5", "path"):
        table.add_column(column)
    bad = checked = 0
    for flag in flags:
        for s in sizes:
            if s not in registry.get_dataset(flag).sizes:
                continue
            result = verify_dataset_file(flag, s, root=root)
            if not result.exists and not names:
                continue  # without names, only what is on disk is checked
            checked += 1
            if not result.exists:
                status = "[red]missing[/]"
            elif result.ok:
                status = "[green]ok[/]"
            else:
                status = "[red]MD5 mismatch[/]"
            bad += not result.ok
            table.add_row(flag, str(s), status, result.md5_actual or "-", escape(str(result.path)))
    if checked == 0:
        console.print(
            f"No MedMNIST files found under {registry.data_root(root)}. Try `medbench download NAME`.",
            markup=False,
        )
        raise typer.Exit(1)
    console.print(table)
    if bad:
        console.print(
            f"[red]{bad} file(s) missing or corrupt.[/] Re-download with `medbench download NAME --size S --force`."
        )
        raise typer.Exit(1)
