"""``medbench run EXPERIMENT``: a whole comparison grid, resumable, locally or on Ray, then the report."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from medbench import interrupt
from medbench.commands.app import STORE_HELP, app, console
from medbench.commands.config_input import parse_override
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note, plain
from medbench.commands.train import PROFILE_HELP
from medbench.errors import ConfigError


class GridDisplay:
    """The view of a grid: live (every trial with its state, counts and ETA on top) on a terminal; off a
    terminal, one line per finished trial (what, result, elapsed, ETA), so a log shows progress."""

    def __init__(self, keys: list[str], skipped: dict[str, Any], parallel: int, *, log=None):
        self.state = {k: ("skipped", skipped[k]) if k in skipped else ("pending", None) for k in keys}
        self.notes: dict[str, str] = {}  # for trials without a row of their own here (see on_event)
        self.started: dict[str, float] = {}
        self.durations: list[float] = []
        self.parallel = max(1, parallel)
        self.t0 = time.monotonic()
        self.log = log  # a function printing one line, or None under the live display
        self.to_run = sum(1 for s, _ in self.state.values() if s == "pending")

    def on_event(self, kind: str, key: str, record) -> None:
        if kind == "start":
            self.state[key] = ("running", None)
            self.started[key] = time.monotonic()
            return
        if kind == "skip":  # completed by another process since this one looked
            self.state[key] = ("skipped", record)
            self._log(f"{key}  skipped: completed by another process")
            return
        if kind == "elsewhere":  # another live process holds the trial's lease: record is the Lease
            self.state[key] = ("running elsewhere", None)
            self.notes[key] = record.describe()
            self._log(f"{key}  running elsewhere: {self.notes[key]}")
            return
        if kind == "reclaimed":  # record is (old run id, why its lease was stale)
            self.notes[key] = f"reclaimed from run {record[0][:8]}: {record[1]}"
            self._log(f"{key}  {self.notes[key]}")
            return
        took = time.monotonic() - self.started.get(key, self.t0)
        self.durations.append(took)
        self.state[key] = ("done" if record.status == "completed" else record.status, record)
        self._log(self.line(key, record, took))

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def line(self, key: str, record, took: float) -> str:
        m, t = record.metrics or {}, record.timings or {}
        result = (
            f"test ACC {_pct(m.get('test_acc'))}  test AUC {_pct(m.get('test_auc'))}  "
            f"{_f(t.get('train_s_per_epoch'), 2)} s/epoch"
            if record.status == "completed"
            else (record.failure_reason or "")[:200]
        )
        return (
            f"[{len(self.durations)}/{self.to_run}] {key}  {record.status}  {result}  "
            f"took {took / 60:.1f} min  elapsed {(time.monotonic() - self.t0) / 60:.1f} min  ETA {self._eta()}"
        )

    def _eta(self) -> str:
        left = sum(1 for s, _ in self.state.values() if s in ("pending", "running"))
        if not left:
            return "0 min"
        if not self.durations:
            return "-"
        seconds = sum(self.durations) / len(self.durations) * left / self.parallel
        return f"{seconds / 60:.1f} min"

    def __rich__(self) -> Table:
        counts: dict[str, int] = {}
        for s, _ in self.state.values():
            counts[s] = counts.get(s, 0) + 1
        summary = "  ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        table = Table(
            title=f"{summary}  |  elapsed {(time.monotonic() - self.t0) / 60:.1f} min  ETA {self._eta()}"
        )
        for column in ("trial", "state", "test ACC %", "test AUC %", "s/epoch", "note"):
            table.add_column(
                column, justify="right" if column in ("test ACC %", "test AUC %", "s/epoch") else "left"
            )
        style = {
            "done": "green",
            "skipped": "dim",
            "running": "yellow",
            "running elsewhere": "cyan",
            "failed": "red",
            "interrupted": "red",
        }
        for key, (state, record) in self.state.items():
            m = (record.metrics or {}) if record else {}
            t = (record.timings or {}) if record else {}
            table.add_row(
                escape(key),
                f"[{style.get(state, 'white')}]{state}[/]",
                _pct(m.get("test_acc"), sign=False),
                _pct(m.get("test_auc"), sign=False),
                _f(t.get("train_s_per_epoch"), 2),
                escape(((record.failure_reason if record else None) or self.notes.get(key, ""))[:70]),
            )
        return table


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value, *, sign: bool = True) -> str:
    return "-" if value is None else f"{value * 100:.2f}" + ("%" if sign else "")


def summary_table(store, experiment: str) -> OutputTable:
    """The comparison ``medbench run`` prints: mean ± std over seeds, percent; balanced ACC and macro F1
    columns appear when some run has them."""
    from medbench.orchestration.runs import comparison_rows

    rows = comparison_rows(store, experiment)
    imbalance = any(row["test_balanced_acc"] is not None or row["test_macro_f1"] is not None for row in rows)
    metrics = [("test ACC", "test_acc"), ("test AUC", "test_auc")]
    if imbalance:
        metrics += [("balanced ACC", "test_balanced_acc"), ("macro F1", "test_macro_f1")]
    table = OutputTable(
        f"{experiment}: mean ± std over seeds (test split)",
        [
            Column("dataset"),
            Column("size", "int"),
            Column("data"),
            Column("model"),
            Column("variant"),
            Column("framework"),
            Column("n", "int"),
            *(Column(name, "percent", key=f"{key}_pct") for name, key in metrics),
            Column("s/epoch", "float", 2, key="s_per_epoch"),
            Column("img/s", "float", 0, key="images_per_s"),
        ],
        caption="" if rows else "no completed runs: see `medbench results --status failed`",
        key="summary",
    )
    for row in rows:
        table.add_row(
            row["dataset"],
            row["size"],
            "official" if row["official_data"] else "custom file",
            row["model"],
            row["variant"],
            row["framework"],
            row["n"],
            *((row[key], row[f"{key}_std"]) for _, key in metrics),
            (row["s_per_epoch"], row["s_per_epoch_std"]),
            (row["images_per_s"], row["images_per_s_std"]),
        )
    return table


def _data_file_overrides(items: list[str]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(
                f"--data-file {item!r} is not FLAG=PATH.", "Write e.g. --data-file bloodmnist=./blood.npz."
            )
        flag, path = item.split("=", 1)
        if not Path(path).expanduser().exists():
            raise ConfigError(f"--data-file {flag}: {path} does not exist.", "Check the path.")
        out.append((f"data_files.{flag.strip().lower()}", str(Path(path).expanduser().resolve())))
    return out


@app.command("run")
def run_command(
    experiment: Annotated[
        str,
        typer.Argument(
            help="An experiment file (TOML/JSON), or a shipped one by name: see `medbench experiments`."
        ),
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a field of the experiment file by its dotted path (repeatable): "
            "--set grid.seeds=[0,1,2], --set base.recipe.epochs=2 (see `medbench experiments show`).",
        ),
    ] = None,
    data_files: Annotated[
        list[str] | None,
        typer.Option("--data-file", help="FLAG=PATH: use a local npz for a dataset (repeatable)."),
    ] = None,
    executor: Annotated[
        str, typer.Option("--executor", help="local (one trial at a time) or ray.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="An existing Ray cluster. Default: start a local one.")
    ] = None,
    ray_cpus: Annotated[
        int | None, typer.Option("--ray-cpus", help="CPUs of a local Ray cluster. Default: 2.")
    ] = None,
    store: Annotated[Path | None, typer.Option("--store", help=STORE_HELP)] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for checkpoints. Default: $MEDBENCH_HOME/runs."),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option("--report", help="Where to write the report. Default: $MEDBENCH_HOME/reports/NAME."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the trials and exit.")] = False,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Run trials again even if already completed.")
    ] = False,
    lease_timeout: Annotated[
        float | None,
        typer.Option(
            "--lease-timeout",
            help="Seconds without a heartbeat after which another host's claim on a trial is reclaimed "
            "(default $MEDBENCH_LEASE_TIMEOUT or 120).",
        ),
    ] = None,
    margin: Annotated[
        float, typer.Option("--margin", help="Equivalence margin of the verdicts, in percentage points.")
    ] = 1.0,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help=PROFILE_HELP + " Finished trials are skipped as always (add --rerun to profile them).",
        ),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Run an experiment grid (each trial in a fresh process; finished trials are skipped) and report.

    Off a terminal (a log file, a pipe) progress is one line per finished trial. --format applies to the
    trial list of --dry-run and to the summary table.

    \b
    Examples:
      medbench run quick
      medbench run bloodmnist_sizes --dry-run
      medbench run quick --set base.recipe.epochs=1 --data-file bloodmnist=./bloodmnist.npz > quick.log
      medbench run quick --format csv > summary.csv   # progress lines on stderr, the summary as CSV
    """
    from medbench.api import plan_experiment, run_experiment
    from medbench.leases import TrialLeases, stale_after
    from medbench.paths import medbench_home, runs_dir
    from medbench.preflight import check_report_folder
    from medbench.results import ResultsStore

    stale_after_s = stale_after(
        lease_timeout
    )  # a bad --lease-timeout or $MEDBENCH_LEASE_TIMEOUT: refused now
    if report_dir is not None:  # refused before the grid runs, not after hours
        check_report_folder(report_dir, option="--report")
    parsed = [parse_override(o) for o in overrides or []] + _data_file_overrides(data_files or [])
    # Reads and expands the grid and checks its local data files before anything runs; with --rerun it
    # notes the time: what completed before it runs again, and only once even with several processes at it.
    plan = plan_experiment(experiment, overrides=parsed, store=store, rerun=rerun)
    spec, trials, done = plan.spec, plan.trials, plan.skipped
    results = ResultsStore(store)
    held = TrialLeases(results, stale_after_s=stale_after_s).held()
    elsewhere = [t.key for t in trials if t.key not in done and (t.config_hash, "train") in held]
    if dry_run:
        table = OutputTable(
            f"{spec.name}: {len(trials)} trial(s), {len(done)} already done",
            [Column("trial"), Column("status"), Column("config hash")],
        )
        for t in trials:
            status = (
                "done (skip)" if t.key in done else "running elsewhere" if t.key in elsewhere else "to run"
            )
            table.add_row(t.key, status, t.config_hash[:12])
        emit(table, fmt)
        return
    exe_parallel = (ray_cpus or 2) // max(1, int(spec.resources.cpus)) if executor == "ray" else 1
    live = console.is_terminal and fmt is OutputFormat.table
    display = GridDisplay(
        [t.key for t in trials],
        done,
        exe_parallel,
        log=None if live else (lambda line: note(line, fmt, markup=False)),
    )
    busy = f", {len(elsewhere)} running elsewhere" if elsewhere else ""
    note(
        f"[bold]{plain(spec.name)}[/]: {len(trials)} trial(s), {len(done)} already done{busy}, "
        f"executor {executor}",
        fmt,
    )
    interrupt.keep(
        f"Finished trials are kept in {results.path}; run `medbench run {experiment}` again to skip them "
        "and go on with the rest."
    )
    with Live(display, console=console, refresh_per_second=2, transient=False) if live else nullcontext():
        run_experiment(
            plan,
            store=results.path,
            executor=executor,
            address=address,
            ray_cpus=ray_cpus,
            runs_dir=output or runs_dir(),
            rerun=rerun,
            bench=False,
            on_event=display.on_event,
            lease_timeout=stale_after_s,
            profile=profile,
        )
    if not live:
        note("", fmt)
    if spec.measure.bench is not None:
        from medbench.orchestration.runs import run_bench

        note("[bold]inference benchmark[/] (each cell in a fresh process)", fmt)
        run_bench(spec, results, rerun=rerun, echo=lambda line: note(f"  {line}", fmt, markup=False))
    emit(final_tables(spec, results, margin=margin, fmt=fmt), fmt)
    report = report_dir or medbench_home() / "reports" / spec.name
    path = _write_report(results, spec.name, report, margin)
    if path:
        note(f"report: {path}", fmt, markup=False)
    elsewhere = [k for k, (s, _) in display.state.items() if s == "running elsewhere"]
    if elsewhere:
        note(
            f"{len(elsewhere)} trial(s) running elsewhere (another process holds them); "
            f"run `medbench run {plain(spec.name)}` again once they finish to see them in the summary.",
            fmt,
        )
    failed = [k for k, (s, _) in display.state.items() if s in ("failed", "interrupted")]
    if failed:
        note(
            f"[red]{len(failed)} trial(s) failed[/]; see the table above and `medbench results --status failed`.",
            fmt,
        )
        raise typer.Exit(1)


def final_tables(spec, results, *, margin: float, fmt: OutputFormat) -> list[OutputTable]:
    """Every table a grid ends with, printed at once (one JSON object, one CSV) so a script can parse it:
    the benchmark's (``inference``, ``scaling``) if the experiment has one, the summary (``summary``) and the
    framework verdicts (``pairs``, ``speed``; in csv/json also when empty, so the keys are always there)."""
    from medbench.commands.bench import report_tables
    from medbench.commands.compare import verdict_tables

    tables = []
    if spec.measure.bench is not None:
        tables += report_tables(results.list_runs(kind="bench", experiment=spec.name), fmt)
    tables.append(summary_table(results, spec.name))
    machine = fmt in (OutputFormat.csv, OutputFormat.json)
    tables += verdict_tables(
        results.list_runs(experiment=spec.name), margin=margin, alpha=0.05, n_boot=1000, keep_empty=machine
    )
    return tables


def _write_report(results, experiment: str, folder: Path, margin: float = 1.0) -> Path | None:
    from medbench.report import NoRunsError, write_report

    try:
        return write_report(results, folder, experiment=experiment, margin_points=margin).html
    except NoRunsError:
        return None
