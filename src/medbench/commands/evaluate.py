"""``medbench evaluate`` and ``medbench predict``: use a trained run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medbench.commands.app import app, console, err_console

CheckpointArg = Annotated[Path, typer.Argument(help="A run folder printed by `medbench train`.")]


@app.command("evaluate")
def evaluate_command(
    checkpoint: CheckpointArg,
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    data_file: Annotated[
        Path | None, typer.Option("--data-file", help="Evaluate on another npz file.")
    ] = None,
    root: Annotated[Path | None, typer.Option("--root")] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Resamples for confidence intervals (0: off).")
    ] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Official ACC/AUC, confidence intervals and per-class metrics of a checkpoint on one split."""
    from medbench.checkpoint import evaluate_checkpoint, load_checkpoint
    from medbench.config import parse_config
    from medbench.errors import ConfigError
    from medbench.preflight import check_data_file, read_run_meta

    if split not in ("train", "val", "test"):
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
    metrics = evaluate_checkpoint(loaded, split, data_file=data_file, root=root, bootstrap=bootstrap)
    if as_json:
        console.print_json(json.dumps(metrics))
        return
    ci = metrics.get("acc_ci") or {}
    auc_ci = metrics.get("auc_ci") or {}
    console.print(
        f"[bold]{loaded.config.model}[/] ({loaded.meta['framework']}) on {loaded.config.data.dataset} {split}: "
        f"ACC {metrics['acc']:.4f}"
        + (f" [{ci['low']:.4f}, {ci['high']:.4f}]" if ci else "")
        + f"  AUC {metrics['auc']:.4f}"
        + (f" [{auc_ci['low']:.4f}, {auc_ci['high']:.4f}]" if auc_ci else "")
        + f"  balanced ACC {metrics.get('balanced_accuracy', float('nan')):.4f}"
        + f"  macro-F1 {metrics.get('macro_f1', float('nan')):.4f}",
        highlight=False,
    )
    per_class = metrics.get("per_class") or {}
    if per_class:
        table = Table(title="per class")
        for column in ("class", "precision", "recall", "F1", "support"):
            table.add_column(column, justify="left" if column == "class" else "right")
        names = loaded.meta["class_names"]
        for i, name in enumerate(names):
            table.add_row(
                escape(name),
                *(f"{per_class[k][i]:.3f}" for k in ("precision", "recall", "f1")),
                str(per_class["support"][i]),
            )
        console.print(table)


@app.command("predict")
def predict_command(
    checkpoint: CheckpointArg,
    images: Annotated[list[Path], typer.Argument(help="PNG or JPEG files, any size, grey or colour.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    top: Annotated[int, typer.Option("--top", help="Classes to show per image.")] = 3,
) -> None:
    """Class probabilities for image files, preprocessed exactly as in training."""
    from medbench.checkpoint import load_checkpoint, predict_images, read_images
    from medbench.errors import ConfigError
    from medbench.preflight import read_run_meta

    if top < 1:
        raise ConfigError(f"--top {top} shows no classes.", "Give 1 or more, e.g. --top 3.")
    # Images are decoded before the model is loaded: unreadable ones are reported, the others still run.
    decoded, kept, errors = read_images(read_run_meta(checkpoint), images)
    for error in errors:
        err_console.print(f"[red]error:[/] {escape(error)}", highlight=False, soft_wrap=True)
    if not decoded:
        raise typer.Exit(1)
    loaded = load_checkpoint(checkpoint)
    rows = predict_images(loaded, decoded, kept)
    if as_json:
        print(json.dumps(rows, indent=1))
    elif rows:
        table = Table(
            title=f"{loaded.config.model} ({loaded.meta['framework']}) on {loaded.config.data.dataset}"
        )
        table.add_column("image")
        table.add_column("prediction")
        table.add_column("p", justify="right")
        table.add_column(f"top {top}")
        for row in rows:
            ranked = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:top]
            table.add_row(  # paths and class names are the user's text, never markup
                escape(row["image"]),
                escape(row["prediction"]),
                f"{row['probability']:.3f}",
                escape(", ".join(f"{name} {p:.3f}" for name, p in ranked)),
            )
        console.print(table)
    if errors:
        raise typer.Exit(1)
