"""``medbench evaluate`` and ``medbench predict``: use a trained run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medbench.commands.app import app, console, err_console
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, plain

CheckpointArg = Annotated[Path, typer.Argument(help="A run folder printed by `medbench train`.")]


@app.command("evaluate")
def evaluate_command(
    checkpoint: CheckpointArg,
    split: Annotated[str, typer.Option("--split", help="train, val or test.", show_default=True)] = "test",
    data_file: Annotated[
        Path | None,
        typer.Option("--data-file", help="Evaluate on another npz file. Default: the run's own data."),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Data folder. Default: $MEDBENCH_DATA_ROOT, else ~/.medmnist."),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Resamples for confidence intervals (0: off).")
    ] = 1000,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Every metric as JSON (fractions, as stored), instead of the tables."),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Official ACC/AUC, confidence intervals and per-class metrics of a checkpoint on one split.

    \b
    Examples:
      medbench evaluate ~/.medbench/runs/RUN_FOLDER
      medbench evaluate RUN_FOLDER --split val --bootstrap 0 --json
      medbench evaluate RUN_FOLDER --data-file other_hospital.npz
    """
    from medbench import api
    from medbench.checkpoint import load_checkpoint
    from medbench.config import parse_config
    from medbench.errors import ConfigError
    from medbench.preflight import check_data_file, read_run_meta

    if split not in ("train", "val", "test"):  # before the checkpoint (and its framework) is loaded
        raise ConfigError(f"Unknown split {split!r}.", "Use train, val or test.")
    if bootstrap < 0:
        raise ConfigError(
            f"--bootstrap {bootstrap} is negative.", "Give 0 (no intervals) or more, e.g. 1000."
        )
    # Everything that can be checked without the model is checked before its framework is imported.
    run = parse_config(read_run_meta(checkpoint)["config"])
    if data_file is not None:
        check_data_file(run.data.dataset, run.data.size, data_file, purpose="evaluate")
    loaded = load_checkpoint(checkpoint)
    metrics = api.evaluate(loaded, split, data_file=data_file, root=root, bootstrap=bootstrap)
    if as_json:
        console.print_json(json.dumps(metrics))
        return
    title = f"{loaded.config.model} ({loaded.meta['framework']}) on {loaded.config.data.dataset} {split}"
    emit(evaluation_tables(metrics, loaded.meta["class_names"], title), fmt)


def evaluation_tables(metrics: dict, class_names: list[str], title: str) -> list[OutputTable]:
    """The headline metrics with their bootstrap intervals (percent), then precision/recall/F1 per class."""
    overall = OutputTable(
        title,
        [
            Column("metric"),
            Column("value", "percent"),
            Column("CI low", "percent", key="ci_low_pct"),
            Column("CI high", "percent", key="ci_high_pct"),
        ],
        caption="95% bootstrap intervals" if metrics.get("acc_ci") else "",
        key="overall",
    )
    for name, key in (
        ("ACC", "acc"),
        ("AUC", "auc"),
        ("balanced ACC", "balanced_accuracy"),
        ("macro F1", "macro_f1"),
    ):
        if metrics.get(key) is None:
            continue
        ci = metrics.get(f"{key}_ci") or {}
        overall.add_row(name, metrics[key], ci.get("low"), ci.get("high"))
    tables = [overall]
    per_class = metrics.get("per_class") or {}
    if per_class:
        table = OutputTable(
            "per class",
            [
                Column("class"),
                Column("precision", "percent", 1),
                Column("recall", "percent", 1),
                Column("F1", "percent", 1),
                Column("support", "count"),
            ],
            key="per_class",
        )
        for i, name in enumerate(class_names):
            table.add_row(name, *(per_class[k][i] for k in ("precision", "recall", "f1", "support")))
        tables.append(table)
    return tables


@app.command("predict")
def predict_command(
    checkpoint: CheckpointArg,
    images: Annotated[list[Path], typer.Argument(help="PNG or JPEG files, any size, grey or colour.")],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Every image's probabilities as JSON (fractions), instead of the table."),
    ] = False,
    top: Annotated[int, typer.Option("--top", help="Classes to show per image.")] = 3,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Class probabilities for image files, preprocessed exactly as in training.

    \b
    Examples:
      medbench predict RUN_FOLDER cell1.png cell2.jpg
      medbench predict RUN_FOLDER scans/*.png --top 1 --json
    """
    from medbench.checkpoint import load_checkpoint, predict_images, read_images
    from medbench.errors import ConfigError
    from medbench.preflight import read_run_meta

    if top < 1:
        raise ConfigError(f"--top {top} shows no classes.", "Give 1 or more, e.g. --top 3.")
    # Images are decoded before the model is loaded: unreadable ones are reported, the others still run.
    decoded, kept, errors = read_images(read_run_meta(checkpoint), images)
    for error in errors:
        err_console.print(f"[red]error:[/] {plain(error)}", highlight=False, soft_wrap=True)
    if not decoded:
        raise typer.Exit(1)
    loaded = load_checkpoint(checkpoint)
    rows = predict_images(loaded, decoded, kept)
    if as_json:
        print(json.dumps(rows, indent=1))
    elif rows:
        table = OutputTable(
            f"{loaded.config.model} ({loaded.meta['framework']}) on {loaded.config.data.dataset}",
            [
                Column("image"),
                Column("prediction"),
                Column("p", "percent", 1),
                Column(f"top {top}", key="top"),
            ],
        )
        for row in rows:
            ranked = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:top]
            top_text = ", ".join(f"{name} {p * 100:.1f}%" for name, p in ranked)
            table.add_row(row["image"], row["prediction"], row["probability"], top_text)
        emit(table, fmt)  # cells are plain text to Rich: paths and class names are never read as markup
    if errors:
        raise typer.Exit(1)
