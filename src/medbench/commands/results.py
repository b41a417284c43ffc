"""``medbench results``: list, filter and export the runs in the results store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from medbench.commands.app import app, console

StoreOption = Annotated[Path | None, typer.Option("--store", help="Results database (default ~/.medbench).")]


def _filters(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _metric(record, key: str, digits: int = 4) -> str:
    value = (record.metrics or {}).get(key)
    return "-" if value is None else f"{value:.{digits}f}"


def _timing(record, key: str, digits: int = 2) -> str:
    value = (record.timings or {}).get(key)
    return "-" if value is None else f"{value:,.{digits}f}"


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
    framework: Annotated[str | None, typer.Option("--framework", "-f")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    size: Annotated[int | None, typer.Option("--size", "-s")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="running, completed, failed, interrupted.")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="train, bench, ...")] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", "-x")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n")] = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write the runs to a .csv, .json or .parquet file.")
    ] = None,
) -> None:
    """List runs in the order they started, filtered; optionally export them as CSV, JSON or Parquet."""
    from medbench.preflight import open_existing_store
    from medbench.results import export as export_runs

    _check_filters(framework=framework, size=size, status=status, limit=limit)
    results = open_existing_store(store)
    if results is None:
        console.print("No runs yet: nothing has been trained or benchmarked with this results store.")
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
        path = export_runs(runs, export)
        console.print(f"wrote {len(runs)} run(s) to {path}", markup=False)
        return
    if not runs:
        console.print(f"No runs match in {results.path}.", markup=False)
        return
    table = Table(title=escape(f"{len(runs)} run(s) in {results.path}"))
    for column in (
        "run",
        "created",
        "kind",
        "status",
        "framework",
        "model",
        "dataset",
        "seed",
        "test ACC",
        "test AUC",
        "s/epoch",
        "reason",
    ):
        table.add_column(column, overflow="fold")
    for r in runs:
        table.add_row(
            r.run_id[:8],
            (r.created_at or "")[:19],
            r.kind,
            r.status,
            r.framework or "-",
            r.model or "-",
            f"{r.dataset} {r.size}px" if r.dataset else "-",
            "-" if r.seed is None else str(r.seed),
            _metric(r, "test_acc"),
            _metric(r, "test_auc"),
            _timing(r, "train_s_per_epoch"),
            escape((r.failure_reason or "")[:80]),
        )
    console.print(table)
