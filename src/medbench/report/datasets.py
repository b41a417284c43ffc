"""Per dataset: the accuracy and time figures across its sizes and models, then each comparison."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from medbench.report import plots
from medbench.report.aggregate import Comparison
from medbench.report.comparison import comparison_section
from medbench.report.document import Figure, Section
from medbench.report.formatting import FigureNames, slug
from medbench.report.pooling import FrameworkResult
from medbench.report.references import (
    Reference,
)
from medbench.report.style import framework_sort_key


def accuracy_figures(comparisons: Sequence[Comparison], dataset: str, names: FigureNames) -> list[Figure]:
    """Accuracy vs image size, one plot per model (and recipe variant, and official vs custom data)."""
    lines: dict[tuple, dict[str, list[plots.Point]]] = defaultdict(lambda: defaultdict(list))
    labels: dict[tuple, str] = {}
    for c in comparisons:
        curve = c.key.curve_key
        for f in c.frameworks:
            if f.test_acc is not None:
                point = plots.Point(
                    c.key.input_size + c.key.size / 1000,
                    c.key.size_label,
                    f.test_acc.mean * 100,
                    None if f.test_acc.std is None else f.test_acc.std * 100,
                )
                lines[curve][f.framework].append(point)
        data = "" if c.key.source.is_official else " · custom data"
        labels[curve] = (
            f"{dataset} · {c.key.model}" + (f" [{c.variant_label}]" if c.variant_label else "") + data
        )
    figures = []
    for curve, series in lines.items():
        if len({p.label for points in series.values() for p in points}) < 2:
            continue  # one size is no curve; the tables already hold the number
        ordered = {fw: series[fw] for fw in sorted(series, key=framework_sort_key)}
        png = plots.accuracy_vs_size(ordered, title=f"Test ACC vs image size · {labels[curve]}")
        figures.append(
            Figure(
                names(f"{labels[curve]} acc vs size"),
                _spread_caption(
                    "Mean test ACC over seeds per framework",
                    [p.std for points in ordered.values() for p in points],
                ),
                png,
                f"Test accuracy vs image size, {labels[curve]}",
            )
        )
    return figures


def time_figure(comparisons: Sequence[Comparison], dataset: str, names: FigureNames) -> Figure | None:
    timed = [c for c in comparisons if any(f.s_per_epoch for f in c.frameworks)]
    if sum(1 for c in timed for f in c.frameworks if f.s_per_epoch) < 2:
        return None  # a single bar compares nothing
    frameworks = sorted({f.framework for c in timed for f in c.frameworks}, key=framework_sort_key)
    groups = [f"{c.key.model} {c.key.size_label}" + ("*" if c.variant_label else "") for c in timed]
    values = {fw: [_mean(c.result(fw), "s_per_epoch") for c in timed] for fw in frameworks}
    errors = {fw: [_std(c.result(fw), "s_per_epoch") for c in timed] for fw in frameworks}
    png = plots.grouped_bars(
        groups,
        values,
        errors=errors,
        title=f"Training time per epoch · {dataset}",
        ylabel="seconds per epoch",
    )
    caption = (
        _spread_caption("Mean over seeds", [e for es in errors.values() for e in es]) + " Lower is faster."
    )
    if any(c.machines > 1 for c in timed) or len({c.machines for c in timed}) > 1:
        caption += " Some groups ran on several machines: see Environment."
    return Figure(
        names(f"{dataset} seconds per epoch"), caption, png, f"Seconds per epoch per framework, {dataset}"
    )


def _spread_caption(what: str, stds: Sequence[float | None]) -> str:
    """``what`` and what its error bars are: ±1 std where several seeds exist, none for a single seed."""
    if all(s is None for s in stds):
        return f"{what}; one seed each, so no error bars."
    if any(s is None for s in stds):
        return f"{what}; error bars ±1 standard deviation over seeds, none where one seed ran."
    return f"{what}; error bars ±1 standard deviation over seeds."


def _mean(result: FrameworkResult | None, name: str) -> float | None:
    stat = getattr(result, name, None) if result else None
    return stat.mean if stat else None


def _std(result: FrameworkResult | None, name: str) -> float | None:
    stat = getattr(result, name, None) if result else None
    return stat.std if stat else None


def dataset_section(
    dataset: str, comparisons: list[Comparison], names: FigureNames, references: tuple[Reference, ...]
) -> Section:
    blocks: list = [*accuracy_figures(comparisons, dataset, names)]
    figure = time_figure(comparisons, dataset, names)
    if figure is not None:
        blocks.append(figure)
    blocks += [comparison_section(c, names, references) for c in comparisons]
    return Section(f"{dataset}", slug(f"dataset {dataset}"), blocks)
