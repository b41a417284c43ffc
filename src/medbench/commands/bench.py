"""``medbench bench`` and ``medbench bench-report``: the inference benchmark and its tables and plots."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medbench.commands.app import app, console
from medbench.errors import ConfigError

StoreOption = Annotated[Path | None, typer.Option("--store", help="Results database (default ~/.medbench).")]
PlotOption = Annotated[Path | None, typer.Option("--plot", help="Write PNG figures into this folder.")]

_NUMERIC = {
    "size",
    "p50 ms (range)",
    "p99 ms",
    "best img/s (batch)",
    "cold start s",
    "compile s",
    "peak RSS MiB",
    "% of peak",
    "max |diff|",
}


def _table(title: str, rows: Sequence[dict[str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in rows[0] if rows else ():
        table.add_column(column, justify="right" if column in _NUMERIC else "left", overflow="fold")
    for row in rows:
        table.add_row(*row.values())
    return table


def print_report(
    records: Sequence[Any], *, peak: dict[str, Any] | None = None, out: Console | None = None
) -> None:
    """The summary table (engine x size) and the scaling table of a session's rows."""
    from medbench.bench.scaling import scaling, scaling_rows
    from medbench.bench.summary import aggregate, table_rows

    out = out or console
    cells = aggregate(records)
    if not cells:
        out.print("No benchmark rows to show.")
        return
    out.print(_table("inference: median over repeats (min-max); latency at batch 1", table_rows(cells)))
    fits = scaling_rows(scaling(cells))
    if fits:
        out.print(_table("scaling with image size: least-squares slope (R²)", fits))
    if peak:
        out.print(
            f"matmul peak {peak['peak_flops_per_s'] / 1e9:.1f} GFLOP/s ({peak.get('peak_source')}, float32, "
            f"{peak.get('threads')} threads)",
            highlight=False,
        )


def _list_engines() -> None:
    from medbench.bench.engines import iter_engines

    table = Table(title="inference engines", title_justify="left")
    for column in ("engine", "framework", "installed", "measures"):
        table.add_column(column, overflow="fold")
    for spec in iter_engines():
        missing = spec.missing()
        table.add_row(
            spec.name, spec.framework, "yes" if not missing else f"no ({', '.join(missing)})", spec.measures
        )
    console.print(table)


def _write_plots(records: Sequence[Any], folder: Path) -> None:
    from medbench.bench.plots import write_plots

    for path in write_plots(records, folder):
        console.print(f"wrote {path}", highlight=False, markup=False)


@app.command("bench")
def bench_command(
    models: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model(s); default simple_cnn, resnet18.")
    ] = None,
    sizes: Annotated[
        list[int] | None, typer.Option("--size", "-s", help="Image size(s): 28, 64, 128, 224.")
    ] = None,
    engines: Annotated[
        list[str] | None,
        typer.Option("--engine", "-e", help="Engine(s), see --list-engines; default all installed."),
    ] = None,
    frameworks: Annotated[
        list[str] | None,
        typer.Option("--framework", "-f", help="Only the engines of these frameworks (e.g. keras-jax)."),
    ] = None,
    batch_sizes: Annotated[
        list[int] | None,
        typer.Option("--batch-size", "-b", help="Batch size(s); 1 is always measured. Default 1, 64."),
    ] = None,
    repeats: Annotated[
        int | None, typer.Option("--repeats", "-r", help="Fresh-process repeats per cell (default 3).")
    ] = None,
    min_count: Annotated[
        int | None, typer.Option("--min-count", help="Timed calls at batch 1 at least (default 50).")
    ] = None,
    min_duration: Annotated[
        float | None, typer.Option("--min-duration", help="Seconds per batch size at least (default 2).")
    ] = None,
    max_duration: Annotated[
        float | None, typer.Option("--max-duration", help="Seconds per batch size at most (default 60).")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="Intra-op threads, fixed in every engine (default all cores)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or gpu.")] = "auto",
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Sets classes and channels (inputs are random).")
    ] = "bloodmnist",
    atol: Annotated[
        float,
        typer.Option(
            "--atol", help="Absolute tolerance of the same-answers check (TF32 on a GPU may need 1e-2)."
        ),
    ] = 1e-3,
    rtol: Annotated[
        float, typer.Option("--rtol", help="Relative tolerance of the same-answers check.")
    ] = 1e-3,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before a cell process is killed.")
    ] = 1800.0,
    quick: Annotated[
        bool, typer.Option("--quick", help="A short run: simple_cnn, 28 px, batch 1 and 8, 1 repeat.")
    ] = False,
    store: StoreOption = None,
    plot: PlotOption = None,
    work_dir: Annotated[
        Path | None,
        typer.Option("--work-dir", help="Keep weights, inputs and ONNX files here (default: a temp folder)."),
    ] = None,
    list_engines: Annotated[bool, typer.Option("--list-engines", help="List the engines and exit.")] = False,
) -> None:
    """Inference latency, throughput, cold start and memory of every engine, each cell in a fresh process."""
    if list_engines:
        _list_engines()
        return
    from medbench.bench.plan import QUICK_MEASUREMENT, Measurement, make_config
    from medbench.bench.session import run_session

    base = QUICK_MEASUREMENT if quick else Measurement()
    overrides = {"min_count": min_count, "min_duration_s": min_duration, "max_duration_s": max_duration}
    measurement = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    config = make_config(
        models=models,
        sizes=sizes,
        engines=engines,
        frameworks=frameworks,
        batch_sizes=batch_sizes,
        repeats=repeats,
        measurement=measurement,
        threads=threads,
        device=device,
        dataset=dataset,
        atol=atol,
        rtol=rtol,
        timeout_s=timeout,
        quick=quick,
    )
    result = run_session(
        config,
        store_path=store,
        work_dir=work_dir,
        echo=lambda line: console.print(line, highlight=False, markup=False),
    )
    print_report(result.records, peak=result.peak)
    console.print(f"session {result.session} in {result.store_path}", highlight=False, markup=False)
    if plot is not None:
        _write_plots(result.records, plot)
    if not any(r.status == "completed" for r in result.records):
        raise typer.Exit(1)  # a grid in which nothing ran is a set-up problem, not a result


@app.command("bench-report")
def bench_report_command(
    store: StoreOption = None,
    session: Annotated[
        str | None,
        typer.Option("--session", help="A session id (default: the latest); 'all' for every one."),
    ] = None,
    plot: PlotOption = None,
) -> None:
    """Tables (and with --plot, PNG figures) of a benchmark session already in the store."""
    from medbench.bench.session import PEAK_KIND
    from medbench.preflight import open_existing_store

    results = open_existing_store(store)
    if results is None:
        raise ConfigError("No benchmark rows yet (no results store).", "Run `medbench bench` first.")
    rows = results.list_runs(kind="bench")
    if not rows:
        raise ConfigError(
            f"No benchmark rows in {results.path}.", "Run `medbench bench` first, or pass --store."
        )
    if session != "all":
        session = session or rows[-1].experiment
        rows = [r for r in rows if r.experiment == session]
        if not rows:
            raise ConfigError(
                f"No benchmark session {session!r} in {results.path}.",
                "Omit --session for the latest one, or list them with `medbench results --kind bench`.",
            )
    peaks = [
        r for r in results.list_runs(kind=PEAK_KIND, status="completed") if session in ("all", r.experiment)
    ]
    print_report(rows, peak=peaks[-1].metrics if peaks else None)
    if plot is not None:
        _write_plots(rows, plot)
