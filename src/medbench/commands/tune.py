"""``medbench tune``: the documented performance settings of one framework, probed for one model, size and batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medbench.commands.app import app
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note
from medbench.commands.spread_columns import IQR_AND_RANGE, median_cells, median_columns


def tune_table(result) -> OutputTable:
    """One row per candidate: median img/s over the repeats with its IQR and range, the ratio to out of the
    box, and which is best (a :class:`~medbench.bench.tune.TuneResult`)."""
    best = result.best
    table = OutputTable(
        f"tune {result.framework}: {result.model} {result.size} px, batch {result.batch_size}, training img/s "
        f"(median of {result.repeats} fresh process(es), IQR, min-max)",
        [
            Column("setting"),
            *median_columns("img/s", "images_per_s", 0, IQR_AND_RANGE),
            Column("x out of the box", "float", 2, key="ratio_to_out_of_the_box"),
            Column("best", styles={"best": "green"}),
            Column("status", styles={"ok": "green", "failed": "red"}),
            Column("reason"),
            Column("overrides"),
        ],
        key="tune",
    )
    for row in result.rows:
        overrides = ", ".join(f"{k}={json.dumps(v)}" for k, v in row.candidate.overrides.items()) or None
        table.add_row(
            row.label,
            *median_cells(row.summary, IQR_AND_RANGE),
            result.ratio(row),
            "best" if row is best else None,
            row.status,
            row.reason,
            overrides,
        )
    return table


def _summary_line(result) -> str:
    best = result.best
    if best is None:
        return f"Every probe of {result.framework} failed; see the reasons above."
    ratio = result.ratio(best)
    times = f", {ratio:.2f}x out of the box" if ratio else ""
    return f"best: {best.label} ({best.summary.median:,.0f} img/s{times})"


@app.command("tune")
def tune_command(
    framework: Annotated[str, typer.Argument(help="torch, jax, keras, keras-jax or keras-torch.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="A model from `medbench models`.")
    ] = "simple_cnn",
    size: Annotated[int, typer.Option("--size", "-s", help="Image size: 28, 64, 128, 224.")] = 28,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Training batch size.")] = 128,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Sets classes and channels (inputs are random).")
    ] = "pathmnist",
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="Intra-op threads in every probe (default: the framework's)."),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", "-r", min=1, help="Fresh-process repeats per setting.")
    ] = 3,
    combine: Annotated[
        bool, typer.Option("--combine/--no-combine", help="Also probe the winners together.")
    ] = True,
    quick: Annotated[bool, typer.Option("--quick", help="A few steps per probe and one repeat.")] = False,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write", help="Write the best settings into this experiment's [per_framework.NAME.runtime]."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before a probe is killed.")] = 900.0,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Training img/s of each documented performance setting of a framework, each in a fresh process.

    Out of the box first, then each setting changed alone (compile, oneDNN, XLA flags ...: see
    medbench.frameworks.settings), in rounds over the settings, then the winners together. Probes train
    medbench's own trainer on random in-memory batches. --write puts the fastest into an experiment file.

    \b
    Examples:
      medbench tune torch --quick
      medbench tune jax -m resnet18 -s 64 --threads 2 --write my_study.toml
      medbench tune keras --format json
    """
    from medbench.bench.train_probe import PROBE_MEASUREMENT, QUICK_PROBE, probe_config
    from medbench.bench.tune import run_tune

    probe_config(framework, model, size=size, batch_size=batch_size, dataset=dataset)  # mistakes first
    result = run_tune(
        framework,
        model,
        size=size,
        batch_size=batch_size,
        dataset=dataset,
        threads=threads,
        repeats=1 if quick else repeats,
        measurement=QUICK_PROBE if quick else PROBE_MEASUREMENT,
        combine=combine,
        timeout_s=timeout,
        echo=lambda line: note(line, fmt, markup=False),
    )
    emit(tune_table(result), fmt)
    note(_summary_line(result), fmt, markup=False)
    if result.best is None:
        raise typer.Exit(1)
    if write is not None:
        _write(write, result, fmt)


def _write(path: Path, result, fmt: OutputFormat) -> None:
    from medbench.orchestration.experiment_runtime import new_experiment, write_framework_runtime

    best = result.best
    threads = f", threads={result.threads}" if result.threads else ""
    probed = f"{result.model} {result.size} px, batch {result.batch_size}{threads}"
    summary = f"{best.summary.median:,.0f} img/s"
    tables_note = f"{best.label} was fastest for {result.framework} ({probed}: {summary})"
    create = new_experiment(
        path.stem,
        framework=result.framework,
        model=result.model,
        size=result.size,
        dataset=result.dataset,
        batch_size=result.batch_size,
    )
    write_framework_runtime(path, result.framework, result.best_runtime(), note=tables_note, create=create)
    note(f"wrote [per_framework.{result.framework}.runtime] ({best.label}) to {path}", fmt, markup=False)
