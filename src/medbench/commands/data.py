"""Data commands: ``datasets``, ``info``, ``download``, ``verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medbench.commands.app import app, console, file_legend, file_status, file_status_column
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note, plain
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
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Check the MD5 of every cached file.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List every MedMNIST 2D dataset: task, classes, splits, license and which sizes are on disk.

    \b
    Examples:
      medbench datasets
      medbench datasets --verify              # also check the MD5 of every file on disk
      medbench datasets --format csv > datasets.csv
    """
    from medbench.data.download import verify_dataset_file

    root = _existing_root(root)

    table = OutputTable(
        f"MedMNIST 2D datasets (data root: {registry.data_root(root)})",
        [
            Column("dataset"),
            Column("task"),
            Column("classes", "int"),
            Column("ch", "int", key="channels"),
            Column("train", "count"),
            Column("val", "count"),
            Column("test", "count"),
            Column("license"),
            *(file_status_column(f"{size}", key=f"file_{size}") for size in registry.SIZES),
        ],
        caption=file_legend(where="on disk", checksum="MD5", verified=verify),
    )
    for flag in registry.list_datasets():
        info = registry.get_dataset(flag)
        cells = []
        for size in registry.SIZES:
            if size not in info.sizes:  # a variant published at fewer sizes
                cells.append(None)
                continue
            path = registry.local_path(flag, size, root)
            verified = verify_dataset_file(flag, size, root=root).ok if verify and path.exists() else None
            cells.append(file_status(path, verified))
        n = info.n_samples
        table.add_row(
            flag,
            _SHORT_TASK.get(info.task.value, info.task.value),
            info.n_classes,
            info.n_channels,
            n["train"],
            n["val"],
            n["test"],
            info.license,
            *cells,
        )
    emit(table, fmt)


@app.command("info")
def info_command(
    name: Annotated[str, typer.Argument(help="A dataset flag, e.g. dermamnist (see `medbench datasets`).")],
    root: RootOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Show one dataset's metadata, class names and official files.

    \b
    Examples:
      medbench info dermamnist
      medbench info bloodmnist --format json
    """
    info = registry.get_dataset(name)
    root = _existing_root(root)
    note(
        f"[bold]{plain(info.title)}[/] ({info.flag}) - {info.task.value}, {info.n_channels} channel(s), "
        f"{info.license}",
        fmt,
    )
    note(plain(info.description), fmt)
    note("splits: " + ", ".join(f"{k} {v:,}" for k, v in info.n_samples.items()), fmt)
    classes = OutputTable("classes", [Column("index", "int"), Column("name")], key="classes")
    for i, label in enumerate(info.labels):
        classes.add_row(i, label)
    files = OutputTable(
        "files",
        [Column("size", "int"), Column("file"), Column("MD5"), Column("on disk"), Column("URL")],
        key="files",
    )
    for size in info.sizes:
        path = registry.local_path(info.flag, size, root)
        remote = info.remote(size)
        files.add_row(size, info.filename(size), remote.md5, "yes" if path.exists() else "no", remote.url)
    emit([classes, files], fmt)


@app.command("download")
def download_command(
    names: Annotated[list[str], typer.Argument(help="Dataset flag(s), e.g. bloodmnist, or 'all'.")],
    size: SizeOption = None,
    root: RootOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if a verified copy exists.")
    ] = False,
) -> None:
    """Download official MedMNIST files (resumable, MD5-checked) into the data root. Default size: 28.

    \b
    Examples:
      medbench download bloodmnist
      medbench download bloodmnist pathmnist -s 28 -s 64
      MEDBENCH_MIRROR=file:///data/medmnist medbench download all
    """
    from medbench.data.download import download_dataset

    flags = registry.list_datasets() if names == ["all"] else [registry.get_dataset(n).flag for n in names]
    for flag in flags:
        for s in _sizes(size, (28,)):
            path = download_dataset(flag, s, root=root, force=force)
            console.print(f"[green]ok[/] {flag} {s}px -> {plain(str(path))}")


@app.command("verify")
def verify_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Dataset flag(s); default: every cached file.")
    ] = None,
    size: SizeOption = None,
    root: RootOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Check the MD5 of downloaded files against the official ones; exit 1 if any is corrupt or missing.

    \b
    Examples:
      medbench verify                         # every file on disk
      medbench verify bloodmnist -s 28 -s 64  # these files; a missing one counts as a failure
      medbench verify --format json
    """
    from medbench.data.download import verify_dataset_file

    flags = [registry.get_dataset(n).flag for n in names] if names else registry.list_datasets()
    sizes = _sizes(size, registry.SIZES)
    root = _existing_root(root)
    table = OutputTable(
        f"verification (data root: {registry.data_root(root)})",
        [
            Column("dataset"),
            Column("size", "int"),
            Column("status", styles={"ok": "green", "missing": "red", "MD5 mismatch": "red"}),
            Column("MD5"),
            Column("path"),
        ],
    )
    bad = checked = 0
    for flag in flags:
        for s in sizes:
            if s not in registry.get_dataset(flag).sizes:
                continue
            result = verify_dataset_file(flag, s, root=root)
            if not result.exists and not names:
                continue  # without names, only what is on disk is checked
            checked += 1
            status = "missing" if not result.exists else "ok" if result.ok else "MD5 mismatch"
            bad += not result.ok
            table.add_row(flag, s, status, result.md5_actual, str(result.path))
    if checked == 0:
        console.print(
            f"No MedMNIST files found under {registry.data_root(root)}. Try `medbench download NAME`.",
            markup=False,
        )
        raise typer.Exit(1)
    emit(table, fmt)
    if bad:
        note(
            f"[red]{bad} file(s) missing or corrupt.[/] Re-download with `medbench download NAME --size S --force`.",
            fmt,
        )
        raise typer.Exit(1)
