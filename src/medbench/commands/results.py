"""``medbench results``: list, filter and export the runs in the results store."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from medbench.commands.app import STORE_HELP, app, err_console
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note

StoreOption = Annotated[Path | None, typer.Option("--store", help=STORE_HELP)]
STATUS_STYLES = {"completed": "green", "running": "yellow", "failed": "red", "interrupted": "red"}


def _filters(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _check_filters(*, framework: str | None, size: int | None, status: str | None, limit: int | None) -> None:
    """A filter no run can match is a typo: refused with the values that exist, not an empty table."""
    from medbench.data.registry import SIZES
    from medbench.errors import ConfigError
    from medbench.frameworks import FRAMEWORKS
    from medbench.results import STATUSES

    if status is not None and status not in STATUSES:
        raise ConfigError(f"Unknown --status {status!r}.", f"Choose one of {', '.join(STATUSES)}.")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit} would show no runs.", "Give 1 or more, or leave it out for all.")
    if size is not None and size not in SIZES:
        raise ConfigError(
            f"--size {size} is not a MedMNIST size.", f"Choose one of {', '.join(map(str, SIZES))}."
        )
    if framework is not None and framework not in FRAMEWORKS:
        raise ConfigError(f"Unknown --framework {framework!r}.", f"Choose one of {', '.join(FRAMEWORKS)}.")


@app.command("results")
def results_command(
    store: StoreOption = None,
    framework: Annotated[
        str | None, typer.Option("--framework", "-f", help="Only this framework (torch, jax, keras).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only this model, e.g. resnet18.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Only this dataset, e.g. bloodmnist.")
    ] = None,
    size: Annotated[int | None, typer.Option("--size", "-s", help="Only this input size in px.")] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs in this state: running, completed, failed, interrupted."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only this kind of row: train, bench, bench-peak.")
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-x", help="Only this experiment's (or benchmark session's) runs."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", "-n", help="Only the first N runs (in the order they started). Default: all."
        ),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Write the full runs (config, environment, metrics, timings) to a .csv, .json or .parquet "
            "file; '-' writes CSV to stdout (JSON with --format json).",
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List runs in the order they started, filtered; optionally export them as CSV, JSON or Parquet.

    ACC and AUC are percent, as in the report.

    \b
    Examples:
      medbench results --experiment quick
      medbench results --status failed --format json
      medbench results --framework jax --export - > jax_runs.csv
    """
    from medbench.preflight import open_existing_store

    _check_filters(framework=framework, size=size, status=status, limit=limit)
    results = open_existing_store(store)
    if results is None:
        note("No runs yet: nothing has been trained or benchmarked with this results store.", fmt)
        if fmt is not OutputFormat.table:  # a script still gets its (empty) table: [] or a header
            emit(runs_table([], title="0 run(s)"), fmt)
        return
    runs = results.list_runs(
        limit=limit,
        **_filters(
            framework=framework,
            model=model,
            dataset=dataset,
            size=size,
            status=status,
            kind=kind,
            experiment=experiment,
        ),
    )
    if export is not None:
        _export(runs, export, fmt)
        return
    emit(runs_table(runs, title=f"{len(runs)} run(s) in {results.path}"), fmt)


def _export(runs, target: Path, fmt: OutputFormat) -> None:
    from medbench.results import export as export_runs

    if str(target) != "-":
        path = export_runs(runs, target)
        err_console.print(f"wrote {len(runs)} run(s) to {path}", highlight=False, markup=False)
        return
    chosen = "json" if fmt is OutputFormat.json else "csv"
    # The store's own writers (atomic, one file) into a scratch folder, then the bytes to stdout.
    with tempfile.TemporaryDirectory(prefix="medbench-export-") as tmp:
        path = export_runs(runs, Path(tmp) / f"runs.{chosen}")
        sys.stdout.write(path.read_text(encoding="utf-8"))
    sys.stdout.flush()


def runs_table(runs, *, title: str) -> OutputTable:
    """One row per run: what it was, how it ended, its headline numbers (percent) and why it failed."""
    table = OutputTable(
        title,
        [
            Column("run"),
            Column("created"),
            Column("kind"),
            Column("status", styles=STATUS_STYLES),
            Column("experiment"),
            Column("framework"),
            Column("model"),
            Column("dataset"),
            Column("size", "int"),
            Column("seed", "int"),
            Column("test ACC", "percent"),
            Column("test AUC", "percent"),
            Column("s/epoch", "float", 2, key="s_per_epoch"),
            Column("reason"),
        ],
        caption="" if runs else "no runs match",
    )
    for r in runs:
        m, t = r.metrics or {}, r.timings or {}
        table.add_row(
            r.run_id[:8],
            (r.created_at or "")[:19],
            r.kind,
            r.status,
            r.experiment,
            r.framework,
            r.model,
            r.dataset,
            r.size,
            r.seed,
            m.get("test_acc"),
            m.get("test_auc"),
            t.get("train_s_per_epoch"),
            r.failure_reason,
        )
    return table
