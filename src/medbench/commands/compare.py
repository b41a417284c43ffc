"""``medbench compare``: is the difference between two frameworks real? Pairs of frameworks, with verdicts."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from medbench.commands.app import app
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note, plain
from medbench.commands.results import StoreOption, _filters
from medbench.errors import ConfigError

_VERDICT_STYLE = {"equivalent": "green", "different": "red", "not enough evidence": "yellow"}
_SPEED_STYLE = {"faster": "green", "slower": "red"}

# How each column of :func:`medbench.stats.rows.pair_rows` and ``speed_rows`` prints, and its key for
# scripts. Figures are already in the unit their name gives (percent, points, a ratio): shown as they are.
_COLUMNS = {
    "seeds": Column("seeds", "int"),
    "mean A %": Column("mean A %", "float", 2, key="mean_a_pct"),
    "mean B %": Column("mean B %", "float", 2, key="mean_b_pct"),
    "diff pts": Column("diff pts", "float", 2, key="diff_pts"),
    "95% CI pts": Column("95% CI pts", key="ci95_pts", align="right"),
    "p (t)": Column("p (t)", "p", 4, key="p_t"),
    "p (t) adj.": Column("p (t) adj.", "p", 4, key="p_t_adjusted"),
    "p (TOST)": Column("p (TOST)", "p", 4, key="p_tost"),
    "p (TOST) adj.": Column("p (TOST) adj.", "p", 4, key="p_tost_adjusted"),
    "image p (median)": Column("image p (median)", "p", 4, key="image_p_median"),
    "repeats": Column("repeats", align="right"),
    "A / B": Column("A / B", "float", 3, key="ratio_a_b"),
    "95% CI": Column("95% CI", key="ci95", align="right"),
    "p (Welch, log)": Column("p (Welch, log)", "p", 4, key="p_welch_log"),
    # the same on every row: the table's title tells people
    "correction": Column("correction", for_people=False),
    "comparisons": Column("comparisons", "int", for_people=False),
}


class Correction(str, enum.Enum):
    """The choices of ``--correction`` (:data:`medbench.stats.pvalues.CORRECTIONS`)."""

    holm = "holm"
    none = "none"


CorrectionOption = Annotated[
    Correction,
    typer.Option(
        "--correction",
        help="Adjust the verdicts' p over the comparisons made: holm (Holm's step-down, the t tests and the "
        "TOSTs each a family) or none (each test on its own p).",
        case_sensitive=False,
    ),
]


def plain_rows_table(
    title: str, columns: Sequence[str], rows: Sequence[dict[str, Any]], *, key: str, styles=None
) -> OutputTable:
    """An :class:`OutputTable` of the stats module's plain rows; an empty cell ("", "-") is a missing value."""
    verdict = Column("verdict", styles=styles or {})
    spec = [verdict if name == "verdict" else _COLUMNS.get(name) or Column(name) for name in columns]
    table = OutputTable(title, spec, key=key)
    for row in rows:
        table.add_row(*(None if row.get(name) in (None, "", "-") else row.get(name) for name in columns))
    return table


def latest_experiment(results) -> str | None:
    """The experiment of the most recently started completed training run."""
    runs = [r for r in results.list_runs(kind="train", status="completed") if r.experiment]
    return max(runs, key=lambda r: r.created_at).experiment if runs else None


def verdict_tables(
    runs,
    *,
    margin: float,
    alpha: float,
    n_boot: int,
    image_tests: bool = True,
    metrics: Sequence[str] = (),
    correction: str = Correction.holm.value,
    keep_empty: bool = False,
) -> list[OutputTable]:
    """The pairs table and the speed table for ``runs`` (what ``compare`` and ``run`` print); ``metrics``
    (``acc``, ``auc``, ...) tests only those, so only they make the family of ``correction``. An empty table
    is left out, unless ``keep_empty`` (scripts: the same tables, by key, whatever the runs)."""
    from medbench.stats.latency import compare_latency
    from medbench.stats.pairs import compare_frameworks
    from medbench.stats.rows import family_note, pair_rows, speed_rows

    pairs = compare_frameworks(
        runs,
        margin_points=margin,
        alpha=alpha,
        n_boot=n_boot,
        image_tests=image_tests,
        metrics=metrics,
        correction=correction,
    )
    columns, rows = pair_rows(pairs, alpha=alpha)
    tables = []
    if rows or keep_empty:  # one framework alone has nothing to be paired with
        title = (
            f"Framework pairs: A - B paired by seed (margin ±{margin:g} pts, alpha {alpha:g}; "
            f"{family_note(pairs)})"
        )
        tables.append(plain_rows_table(title, columns, rows, key="pairs", styles=_VERDICT_STYLE))
    speed_columns, speed = speed_rows(pairs, compare_latency(runs, alpha=alpha))
    if speed or keep_empty:
        tables.append(
            plain_rows_table(
                "Speed: ratios of geometric means over repeats",
                speed_columns,
                speed,
                key="speed",
                styles=_SPEED_STYLE,
            )
        )
    return tables


@app.command("compare")
def compare_command(
    store: StoreOption = None,
    framework: Annotated[
        list[str] | None, typer.Option("--framework", "-f", help="Repeat for several.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset.")] = None,
    size: Annotated[int | None, typer.Option("--size", "-s", help="Only this input size in px.")] = None,
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
        typer.Option(
            "--metric",
            help="Only these metrics: acc, auc, balanced_acc, macro_f1 (repeat). Only they are tested, so "
            "only they make the family of --correction.",
        ),
    ] = None,
    correction: CorrectionOption = Correction.holm,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """For every pair of frameworks and every metric: the mean paired difference over seeds with its
    confidence interval, a test on the same test images, and a verdict (equivalent within the margin,
    different, or not enough evidence, with how many more seeds would decide); speed ratios likewise.

    The verdicts' p are Holm-adjusted over every (pair, metric) this call compares with two seeds or more,
    the t tests and the TOSTs each a family; --correction none decides each on its own p. The image tests
    and speed ratios are not adjusted.

    With --format csv or json both tables are printed (keys "pairs" and "speed"), even when empty.

    \b
    Examples:
      medbench compare                                  # the latest experiment
      medbench compare -x quick -m resnet18 --margin 0.5
      medbench compare --all --metric acc --format csv > pairs.csv
      medbench compare --correction none              # each verdict on its own, unadjusted p
    """
    from medbench.preflight import open_existing_store

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
    results = open_existing_store(store, doing="Nothing to compare")
    if results is None:
        note("No completed training runs yet (no results store): nothing to compare.", fmt)
        raise typer.Exit(1)
    filters = _filters(framework=framework or None, model=model, dataset=dataset, size=size)
    if experiment is None and not all_runs and not filters:
        experiment = latest_experiment(results)
    if experiment is not None:
        filters["experiment"] = experiment
    runs = results.list_runs(**filters)
    what = f"experiment {experiment}" if experiment else "the selected runs"
    if not any(r.kind == "train" and r.status == "completed" for r in runs):
        note(f"No completed training runs for {what} in {results.path}.", fmt, markup=False)
        raise typer.Exit(1)
    note(f"[bold]{plain(what)}[/] in {plain(str(results.path))}", fmt)
    machine = fmt in (OutputFormat.csv, OutputFormat.json)
    tables = verdict_tables(
        runs,
        margin=margin,
        alpha=alpha,
        n_boot=bootstrap,
        metrics=metric or (),
        correction=correction.value,
        keep_empty=machine,
    )
    if not any(t.rows for t in tables):
        note("Only one framework per comparison: nothing to pair. Train another framework too.", fmt)
    if tables:
        emit(tables, fmt)
