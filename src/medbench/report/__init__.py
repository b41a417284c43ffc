"""``medbench report``: one self-contained HTML page and a Markdown file from the results store.

Modules (none imports a deep-learning framework):

- ``aggregate``: runs grouped into comparisons (dataset, size, model, recipe, data source) and pooled over
  seeds; the 1.5-point ACC criterion. Its parts: ``grouping`` (the key and the data source), ``pooling``
  (one framework's runs over seeds), ``recipes`` (the recipe in one line, the variants' labels).
- ``environments``: the machines and framework stacks the runs used, grouped.
- ``comparison``: one comparison's section, from ``comparison_tables``, ``comparison_notes`` and
  ``comparison_figures``.
- ``references``: the published MedMNIST v2 / MedMNIST+ figures, with their status, matched to groups.
- ``baseline``: the majority-class baseline each comparison is measured against.
- ``plots``: matplotlib (Agg) figures as PNG bytes; ``style``: one colour and marker per framework, shared
  with the inference benchmark's plots.
- ``bench``: the inference-benchmark section (``kind="bench"`` rows).
- ``document``: the report as data; ``build`` fills it; ``html`` and ``markdown`` render it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medbench.errors import MedbenchError
from medbench.results import ResultsStore, RunRecord
from medbench.stats.pvalues import DEFAULT_CORRECTION

HTML_NAME = "report.html"
MARKDOWN_NAME = "report.md"


class NoRunsError(MedbenchError):
    """The store holds no run that matches the report's filters."""


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    images: tuple[Path, ...]


def select_runs(
    store: ResultsStore, *, experiment: str | None = None, datasets: Sequence[str] | None = None
) -> list[RunRecord]:
    """The runs a report covers: all, or those of one experiment and/or some datasets.

    Raises:
        NoRunsError: when nothing matches, naming the store and the filters.
    """
    filters: dict = {}
    if experiment:
        filters["experiment"] = experiment
    if datasets:
        filters["dataset"] = [d.lower() for d in datasets]
    runs = store.list_runs(**filters)
    if not runs:
        wanted = describe_filters(experiment, datasets)
        raise NoRunsError(
            f"No runs to report in {store.path} ({wanted}).",
            "Train something first (`medbench train ...`), or check --store, --experiment and --dataset "
            "against `medbench results`.",
        )
    return runs


def describe_filters(experiment: str | None, datasets: Sequence[str] | None) -> str:
    parts = []
    if experiment:
        parts.append(f"experiment {experiment}")
    if datasets:
        parts.append("datasets " + ", ".join(datasets))
    return "; ".join(parts) or "all runs"


def write_report(
    store: ResultsStore | str | os.PathLike | None,
    output: str | os.PathLike,
    *,
    experiment: str | None = None,
    datasets: Sequence[str] | None = None,
    margin_points: float = 1.0,
    correction: str = DEFAULT_CORRECTION,
) -> ReportFiles:
    """Writes ``report.html`` (self-contained), ``report.md`` and its PNG plots into ``output``;
    ``margin_points`` is the equivalence margin of the frameworks' verdicts, ``correction`` how their p are
    adjusted over the report's comparisons (``holm``, ``none``).

    Raises:
        NoRunsError: when the store has no matching run.
    """
    from medbench.report.build import build_document
    from medbench.report.html import render_html
    from medbench.report.markdown import figure_file, render_markdown

    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    runs = select_runs(store, experiment=experiment, datasets=datasets)
    document = build_document(
        runs,
        store_path=store.path,
        filters=describe_filters(experiment, datasets),
        margin_points=margin_points,
        correction=correction,
    )
    folder = Path(output).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for figure in document.figures():
        path = folder / figure_file(figure)
        path.write_bytes(figure.png)
        images.append(path)
    html_path = folder / HTML_NAME
    html_path.write_text(render_html(document), encoding="utf-8")
    md_path = folder / MARKDOWN_NAME
    md_path.write_text(render_markdown(document), encoding="utf-8")
    return ReportFiles(html_path, md_path, tuple(images))


__all__ = ["NoRunsError", "ReportFiles", "select_runs", "write_report"]
