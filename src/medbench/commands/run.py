"""``medbench run EXPERIMENT``: a whole comparison grid, resumable, locally or on Ray, then the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from medbench import interrupt
from medbench.commands.app import app, console
from medbench.commands.train import _parse_override
from medbench.errors import ConfigError


class GridDisplay:
    """The live view of a grid: every trial with its state, and counts with an ETA on top."""

    def __init__(self, keys: list[str], skipped: dict[str, Any], parallel: int):
        self.state = {k: ("skipped", skipped[k]) if k in skipped else ("pending", None) for k in keys}
        self.notes: dict[str, str] = {}  # for trials without a row of their own here (see on_event)
        self.started: dict[str, float] = {}
        self.durations: list[float] = []
        self.parallel = max(1, parallel)
        self.t0 = time.monotonic()

    def on_event(self, kind: str, key: str, record) -> None:
        if kind == "start":
            self.state[key] = ("running", None)
            self.started[key] = time.monotonic()
        elif kind == "skip":  # completed by another process since this one looked
            self.state[key] = ("skipped", record)
        elif kind == "elsewhere":  # another live process holds the trial's lease: record is the Lease
            self.state[key] = ("running elsewhere", None)
            self.notes[key] = record.describe()
        elif kind == "reclaimed":  # record is (old run id, why its lease was stale)
            self.notes[key] = f"reclaimed from run {record[0][:8]}: {record[1]}"
        else:
            self.durations.append(time.monotonic() - self.started.get(key, self.t0))
            self.state[key] = ("done" if record.status == "completed" else record.status, record)

    def _eta(self) -> str:
        left = sum(1 for s, _ in self.state.values() if s in ("pending", "running"))
        if not self.durations or not left:
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
        for column in ("trial", "state", "test ACC", "test AUC", "s/epoch", "note"):
            table.add_column(
                column, justify="right" if column in ("test ACC", "test AUC", "s/epoch") else "left"
            )
        for key, (state, record) in self.state.items():
            style = {
                "done": "green",
                "skipped": "dim",
                "running": "yellow",
                "running elsewhere": "cyan",
                "failed": "red",
                "interrupted": "red",
            }
            m = (record.metrics or {}) if record else {}
            t = (record.timings or {}) if record else {}
            table.add_row(
                escape(key),
                f"[{style.get(state, 'white')}]{state}[/]",
                _f(m.get("test_acc")),
                _f(m.get("test_auc")),
                _f(t.get("train_s_per_epoch"), 2),
                escape(((record.failure_reason if record else None) or self.notes.get(key, ""))[:70]),
            )
        return table


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


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


def _check_local_files(trials) -> None:
    """Each local data file holds its trial's dataset (not another's), checked once before anything runs."""
    from medbench.preflight import check_data_file

    seen = set()
    for t in trials:
        d = t.config.data
        if d.data_file is not None and (d.dataset, d.size, str(d.data_file)) not in seen:
            seen.add((d.dataset, d.size, str(d.data_file)))
            check_data_file(d.dataset, d.size, d.data_file, purpose="train")


@app.command("run")
def run_command(
    experiment: Annotated[str, typer.Argument(help="An experiment file, or a shipped one: quick, ...")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field: --set grid.seeds=[0,1,2].")
    ] = None,
    data_files: Annotated[
        list[str] | None, typer.Option("--data-file", help="FLAG=PATH: use a local npz for a dataset.")
    ] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (default) or ray.")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="An existing Ray cluster.")] = None,
    ray_cpus: Annotated[int | None, typer.Option("--ray-cpus", help="CPUs of a local Ray cluster.")] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Results database (default ~/.medbench).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for checkpoints.")] = None,
    report_dir: Annotated[Path | None, typer.Option("--report", help="Where to write the report.")] = None,
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
) -> None:
    """Run an experiment grid (each trial in a fresh process; finished trials are skipped) and report."""
    from medbench.experiments import expand, load_experiment
    from medbench.leases import TrialLeases, stale_after
    from medbench.paths import medbench_home, runs_dir
    from medbench.results import ResultsStore, _utc_now
    from medbench.runs import prepare_data, run_bench, run_experiment, summary_table

    # --rerun runs again what completed before now, and only once even with several processes at it.
    since = _utc_now() if rerun else None
    stale_after_s = stale_after(lease_timeout)
    parsed = [_parse_override(o) for o in overrides or []] + _data_file_overrides(data_files or [])
    spec = load_experiment(experiment, parsed)
    trials = expand(spec)
    _check_local_files(trials)
    results = ResultsStore(store)
    done = {} if rerun else {t.key: results.find_completed(t.config_hash, kind="train") for t in trials}
    done = {k: v for k, v in done.items() if v is not None}
    held = TrialLeases(results, stale_after_s=stale_after_s).held()
    elsewhere = [t.key for t in trials if t.key not in done and (t.config_hash, "train") in held]
    if dry_run:
        table = Table(title=escape(f"{spec.name}: {len(trials)} trial(s), {len(done)} already done"))
        for column in ("trial", "status", "config hash"):
            table.add_column(column)
        for t in trials:
            lease = held.get((t.config_hash, "train"))
            status = "done (skip)" if t.key in done else "running elsewhere" if lease else "to run"
            table.add_row(escape(t.key), status, t.config_hash[:12])
        console.print(table)
        return
    if spec.measure.train:
        prepare_data(spec, [t for t in trials if t.key not in done])
    exe_parallel = (ray_cpus or 2) // max(1, int(spec.resources.cpus)) if executor == "ray" else 1
    display = GridDisplay([t.key for t in trials], done, exe_parallel)
    busy = f", {len(elsewhere)} running elsewhere" if elsewhere else ""
    console.print(
        f"[bold]{escape(spec.name)}[/]: {len(trials)} trial(s), {len(done)} already done{busy}, executor {executor}"
    )
    interrupt.keep(
        f"Finished trials are kept in {results.path}; run `medbench run {experiment}` again to skip them "
        "and go on with the rest."
    )
    with Live(display, console=console, refresh_per_second=2, transient=False):
        run_experiment(
            spec,
            trials,
            done,
            store=results,
            executor=executor,
            address=address,
            ray_cpus=ray_cpus,
            runs_root=output or runs_dir(),
            on_event=display.on_event,
            completed_since=since,
            stale_after_s=stale_after_s,
        )
    if spec.measure.bench is not None:
        console.print("[bold]inference benchmark[/] (each cell in a fresh process)")
        run_bench(
            spec,
            results,
            rerun=rerun,
            echo=lambda line: console.print(f"  {line}", highlight=False, markup=False),
        )
        from medbench.commands.bench import print_report

        print_report(results.list_runs(kind="bench", experiment=spec.name))
    console.print(summary_table(results, spec))
    from medbench.commands.compare import verdict_tables

    for table in verdict_tables(
        results.list_runs(experiment=spec.name), margin=margin, alpha=0.05, n_boot=1000
    ):
        console.print(table)
    report = report_dir or medbench_home() / "reports" / spec.name
    path = _write_report(results, spec.name, report, margin)
    if path:
        console.print(f"report: {path}", markup=False)
    elsewhere = [k for k, (s, _) in display.state.items() if s == "running elsewhere"]
    if elsewhere:
        console.print(
            f"{len(elsewhere)} trial(s) running elsewhere (another process holds them); "
            f"run `medbench run {spec.name}` again once they finish to see them in the summary."
        )
    failed = [k for k, (s, _) in display.state.items() if s in ("failed", "interrupted")]
    if failed:
        console.print(
            f"[red]{len(failed)} trial(s) failed[/]; see the table above and `medbench results --status failed`."
        )
        raise typer.Exit(1)


def _write_report(results, experiment: str, folder: Path, margin: float = 1.0) -> Path | None:
    from medbench.report import NoRunsError, write_report

    try:
        return write_report(results, folder, experiment=experiment, margin_points=margin).html
    except NoRunsError:
        return None
