"""``medbench bench`` and ``medbench bench-report``: the inference benchmark and its tables and plots."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medbench.commands.app import STORE_HELP, app
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note, text_table
from medbench.errors import ConfigError

StoreOption = Annotated[Path | None, typer.Option("--store", help=STORE_HELP)]
PlotOption = Annotated[Path | None, typer.Option("--plot", help="Write PNG figures into this folder.")]


def print_report(
    records: Sequence[Any],
    *,
    peak: dict[str, Any] | None = None,
    out: Console | None = None,
    fmt: OutputFormat = OutputFormat.table,
) -> None:
    """The summary table (engine x size) and the scaling table of a session's rows."""
    tables = report_tables(records, fmt)
    if not tables:
        note("No benchmark rows to show.", fmt)
        return
    emit(tables, fmt, out=out)
    from medbench.bench.peak import describe_peaks

    for line in describe_peaks(peak):
        note(line, fmt, markup=False)


def report_tables(records: Sequence[Any], fmt: OutputFormat = OutputFormat.table) -> list[OutputTable]:
    """The summary table (key ``inference``) and, where sizes allow a fit, the scaling table (``scaling``);
    none without benchmark rows."""
    from medbench.bench.scaling import scaling, scaling_rows
    from medbench.bench.summary import NUMERIC_COLUMNS, aggregate, table_rows

    cells = aggregate(records)
    if not cells:
        return []
    title = "inference: median over repeats (min-max); latency at batch 1"
    if fmt in (OutputFormat.csv, OutputFormat.json):  # scripts get numbers, not "2.1 (2.0-2.3)" text
        tables = [cell_table(title, cells)]
    else:
        tables = [text_table(title, table_rows(cells), right=set(NUMERIC_COLUMNS), key="inference")]
    fits = scaling_rows(scaling(cells))
    if fits:
        tables.append(
            text_table(
                "scaling with image size: least-squares slope (R²)",
                fits,
                right=set(NUMERIC_COLUMNS),
                key="scaling",
            )
        )
    return tables


def cell_table(title: str, cells) -> OutputTable:
    """The summary as numbers: each figure's median over repeats with its min and max."""
    spreads = [
        ("p50 ms", "latency_p50_ms", 1.0),
        ("p99 ms", "latency_p99_ms", 1.0),
        ("cold start s", "cold_start_s", 1.0),
        ("compile s", "compile_s", 1.0),
        ("peak RSS MiB", "peak_rss_bytes", 2**-20),
    ]
    columns = [Column("model"), Column("engine"), Column("size", "int")]
    for name, _, _ in spreads:
        key = name.replace(" ", "_").lower()  # p50_ms, cold_start_s, peak_rss_mib ...
        columns += [Column(name, "float", key=key), Column(f"{name} min", "float", key=f"{key}_min")]
        columns += [Column(f"{name} max", "float", key=f"{key}_max")]
    columns += [
        Column("best batch", "int"),
        Column("best img/s", "float", key="best_images_per_s"),
        Column("best img/s min", "float", key="best_images_per_s_min"),
        Column("best img/s max", "float", key="best_images_per_s_max"),
        Column("% of FMA peak", "percent", key="fraction_of_fma_peak_pct"),
        Column("% of best kernel", "percent", key="fraction_of_best_kernel_pct"),
        Column("max |diff|", "float", key="check_max_abs_diff"),
        Column("status"),
        Column("reason"),
    ]
    table = OutputTable(title, columns, key="inference")
    for c in cells:
        row = [c.model, c.engine, c.size]
        for _, attr, scale in spreads:
            summary = getattr(c, attr)
            row += (
                [None, None, None]
                if summary is None
                else [v * scale for v in (summary.median, summary.min, summary.max)]
            )
        best = c.best_throughput
        row += [best[0], best[1].median, best[1].min, best[1].max] if best else [None] * 4
        row += [c.fraction_of_fma_peak, c.fraction_of_best_kernel, c.check_max_abs_diff, c.status, c.reason]
        table.add_row(*row)
    return table


def _list_engines(fmt: OutputFormat) -> None:
    from medbench.bench.engines import iter_engines

    table = OutputTable(
        "inference engines (--engine NAME)",
        [
            Column("engine"),
            Column("framework"),
            Column("installed", styles={"yes": "green"}),
            Column("missing"),
            Column("measures"),
        ],
    )
    for spec in iter_engines():
        missing = spec.missing()
        table.add_row(
            spec.name, spec.framework, "no" if missing else "yes", ", ".join(missing) or None, spec.measures
        )
    emit(table, fmt)


def _write_plots(records: Sequence[Any], folder: Path, fmt: OutputFormat = OutputFormat.table) -> None:
    from medbench.bench.plots import write_plots

    for path in write_plots(records, folder):
        note(f"wrote {path}", fmt, markup=False)


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
    list_engines: Annotated[
        bool, typer.Option("--list-engines", help="List the engines (installed or not) and exit.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Inference latency, throughput, cold start and memory of every engine, each cell in a fresh process.

    \b
    Examples:
      medbench bench --list-engines
      medbench bench --quick                              # a short run: simple_cnn, 28 px, 1 repeat
      medbench bench -m simple_cnn -m resnet18 -s 28 -s 224 -e torch-eager -e jax-jit
    """
    if list_engines:
        _list_engines(fmt)
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
        echo=lambda line: note(line, fmt, markup=False),
    )
    print_report(result.records, peak=result.peak, fmt=fmt)
    note(f"session {result.session} in {result.store_path}", fmt, markup=False)
    if plot is not None:
        _write_plots(result.records, plot, fmt)
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
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Tables (and with --plot, PNG figures) of a benchmark session already in the store.

    \b
    Examples:
      medbench bench-report                    # the latest session
      medbench bench-report --session all --format csv
      medbench bench-report --plot figures/
    """
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
    print_report(rows, peak=peaks[-1].metrics if peaks else None, fmt=fmt)
    if plot is not None:
        _write_plots(rows, plot, fmt)
