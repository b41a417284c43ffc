"""``medbench compare``: is the difference between two frameworks real? Pairs of frameworks, with verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from medbench.commands.app import app, console
from medbench.commands.results import StoreOption, _filters
from medbench.errors import ConfigError

_VERDICT_STYLE = {"equivalent": "green", "different": "red", "not enough evidence": "yellow"}
_SPEED_STYLE = {"faster": "green", "slower": "red"}


def render_rows(title: str, columns: Sequence[str], rows: Sequence[dict[str, Any]], *, styles=None) -> Table:
    """A rich table of plain rows (a stand-in for the common ``--format`` layer: table only)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            text = "-" if value is None or value == "" else str(value)
            style = (styles or {}).get(text) if column == "verdict" else None
            cells.append(f"[{style}]{text}[/]" if style else text)
        table.add_row(*cells)
    return table


def latest_experiment(results) -> str | None:
    """The experiment of the most recently started completed training run."""
    runs = [r for r in results.list_runs(kind="train", status="completed") if r.experiment]
    return max(runs, key=lambda r: r.created_at).experiment if runs else None


def verdict_tables(
    runs, *, margin: float, alpha: float, n_boot: int, image_tests: bool = True, metrics: Sequence[str] = ()
) -> list[Table]:
    """The pairs table and the speed table for ``runs`` (what ``compare`` and ``run`` print); ``metrics``
    (``acc``, ``auc``, ...) keeps only those rows of the pairs table."""
    from medbench.stats.pairs import METRICS, compare_frameworks, compare_latency, pair_rows, speed_rows

    pairs = compare_frameworks(
        runs, margin_points=margin, alpha=alpha, n_boot=n_boot, image_tests=image_tests
    )
    columns, rows = pair_rows(pairs, alpha=alpha)
    if metrics:
        labels = {label for name, _, label in METRICS if name in metrics}
        rows = [row for row in rows if row["metric"] in labels]
    tables = []
    if rows:  # one framework alone has nothing to be paired with
        title = f"Framework pairs: A - B paired by seed (margin ±{margin:g} pts, alpha {alpha:g})"
        tables.append(render_rows(title, columns, rows, styles=_VERDICT_STYLE))
    speed_columns, speed = speed_rows(pairs, compare_latency(runs, alpha=alpha))
    if speed:
        tables.append(
            render_rows(
                "Speed: ratios of geometric means over repeats", speed_columns, speed, styles=_SPEED_STYLE
            )
        )
    return tables


@app.command("compare")
def compare_command(
    store: StoreOption = None,
    framework: Annotated[
        list[str] | None, typer.Option("--framework", "-f", help="Repeat for several.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    size: Annotated[int | None, typer.Option("--size", "-s")] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-x", help="Default: the latest experiment.")
    ] = None,
    margin: Annotated[
        float, typer.Option("--margin", help="Equivalence margin in percentage points (every metric).")
    ] = 1.0,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level of every test.")] = 0.05,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Paired-bootstrap resamples (balanced ACC, macro-F1).")
    ] = 1000,
    all_runs: Annotated[bool, typer.Option("--all", help="Every experiment, not only the latest.")] = False,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Only these metrics: acc, auc, balanced_acc, macro_f1 (repeat)."),
    ] = None,
) -> None:
    """For every pair of frameworks and every metric: the mean paired difference over seeds with its
    confidence interval, a test on the same test images, and a verdict (equivalent within the margin,
    different, or not enough evidence, with how many more seeds would decide); speed ratios likewise."""
    from medbench.results import ResultsStore

    if not margin > 0:
        raise ConfigError(
            f"--margin {margin:g} must be positive.", "Pass a margin in points, e.g. --margin 1."
        )
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha {alpha:g} must lie between 0 and 1.", "Use e.g. --alpha 0.05.")
    if bootstrap < 1:
        raise ConfigError(f"--bootstrap {bootstrap} must be at least 1.", "Use e.g. --bootstrap 1000.")
    from medbench.stats.pairs import METRICS

    known = [name for name, _, _ in METRICS]
    unknown = [m for m in metric or [] if m not in known]
    if unknown:
        raise ConfigError(f"Unknown --metric {', '.join(unknown)}.", f"Use one of: {', '.join(known)}.")
    results = ResultsStore(store)
    filters = _filters(framework=framework or None, model=model, dataset=dataset, size=size)
    if experiment is None and not all_runs and not filters:
        experiment = latest_experiment(results)
    if experiment is not None:
        filters["experiment"] = experiment
    runs = results.list_runs(**filters)
    what = f"experiment {experiment}" if experiment else "the selected runs"
    if not any(r.kind == "train" and r.status == "completed" for r in runs):
        console.print(f"No completed training runs for {what} in {results.path}.")
        raise typer.Exit(1)
    console.print(f"[bold]{what}[/] in {results.path}")
    tables = verdict_tables(runs, margin=margin, alpha=alpha, n_boot=bootstrap, metrics=metric or ())
    if not tables:
        console.print("Only one framework per comparison: nothing to pair. Train another framework too.")
    for table in tables:
        console.print(table)
