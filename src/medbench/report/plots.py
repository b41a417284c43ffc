"""The report's plots as PNG bytes: matplotlib's Agg canvas, from plain numbers (no store, no framework).

Figures are built with ``matplotlib.figure.Figure`` rather than ``pyplot``: no global state, no GUI backend,
nothing to close, so a report can be built inside any process (a test, a notebook, a server).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from medbench.report.style import framework_style

WIDTH_IN, HEIGHT_IN, DPI = 6.4, 3.5, 110


def style(name: str) -> tuple[str, str]:
    """(colour, marker) of a framework, the same in every plot (see :mod:`medbench.report.style`)."""
    return framework_style(name)


def _new(width: float = WIDTH_IN, height: float = HEIGHT_IN, *, margins: bool = True) -> Figure:
    # Fixed margins instead of constrained layout: the layout engine measures every text artist before each
    # draw, which made a report with a few confusion matrices take seconds.
    fig = Figure(figsize=(width, height), dpi=DPI)
    if margins:
        fig.subplots_adjust(
            left=0.75 / width, right=1 - 0.2 / width, bottom=0.55 / height, top=1 - 0.35 / height
        )
    return fig


def to_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No timestamp or software tag: the same data gives the same bytes.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _finish(ax, *, title: str, xlabel: str, ylabel: str, legend: dict | None = None) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False, **(legend or {}))


def _readable_log_axis(axis) -> None:
    """Ticks at 1, 2, 5 x 10^k written as plain numbers: a log axis over less than a decade or two otherwise
    shows one label or none."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


@dataclass(frozen=True)
class Point:
    """One plotted value over seeds: ``x`` is the position, ``label`` its tick text (e.g. ``28→224``)."""

    x: float
    label: str
    mean: float
    std: float | None = None


def accuracy_vs_size(
    series: Mapping[str, Sequence[Point]], *, title: str, ylabel: str = "test ACC (%)"
) -> bytes:
    """Lines of mean test ACC per framework over image sizes, with ±1 std error bars over seeds.

    A point from one seed has no standard deviation and gets no error bar (a zero-height cap would read as
    "no spread", which one seed cannot tell). Sizes are spaced evenly (28, 64, 128, 224 are not linear
    steps); ticks carry the size labels.
    """
    fig = _new()
    ax = fig.subplots()
    positions = sorted({(p.x, p.label) for points in series.values() for p in points})
    index = {key: i for i, key in enumerate(positions)}
    for name, points in series.items():
        colour, marker = style(name)
        points = sorted(points, key=lambda p: p.x)
        xs = [index[(p.x, p.label)] for p in points]
        ax.plot(xs, [p.mean for p in points], label=name, color=colour, marker=marker, linewidth=1.5)
        spread = [(x, p) for x, p in zip(xs, points, strict=True) if p.std is not None]
        if spread:
            ax.errorbar(
                [x for x, _ in spread],
                [p.mean for _, p in spread],
                yerr=[p.std for _, p in spread],
                fmt="none",
                ecolor=colour,
                capsize=3,
                linewidth=1.2,
            )
    ax.set_xticks(range(len(positions)), [label for _, label in positions])
    ax.set_xlim(-0.5, len(positions) - 0.5)
    _finish(ax, title=title, xlabel="image size (px)", ylabel=ylabel)
    return to_png(fig)


def grouped_bars(
    groups: Sequence[str],
    values: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    errors: Mapping[str, Sequence[float | None]] | None = None,
    log: bool | None = None,
) -> bytes:
    """Bars per framework (``values[framework][i]`` for ``groups[i]``), side by side within each group.

    ``log`` None switches to a log axis when the values span more than 30x, so small models stay readable
    next to large ones.
    """
    fig = _new(max(WIDTH_IN, 1.3 * len(groups) + 2), HEIGHT_IN)
    ax = fig.subplots()
    names = list(values)
    width = 0.8 / max(1, len(names))
    finite = [v for vs in values.values() for v in vs if v is not None and v > 0]
    if log is None:
        log = bool(finite) and max(finite) / min(finite) > 30
    for i, name in enumerate(names):
        colour, _ = style(name)
        offsets = [g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))]
        heights = [v if v is not None else math.nan for v in values[name]]
        ax.bar(offsets, heights, width=width * 0.95, color=colour, label=name)
        # Error bars only where a spread exists (several seeds): none rather than a flat cap for n=1.
        spread = [
            (x, h, e)
            for x, h, e in zip(
                offsets, heights, (errors or {}).get(name) or [None] * len(groups), strict=True
            )
            if e is not None and math.isfinite(h)
        ]
        if spread:
            ax.errorbar(
                [x for x, _, _ in spread],
                [h for _, h, _ in spread],
                yerr=[e for _, _, e in spread],
                fmt="none",
                ecolor="#222222",
                capsize=2,
                linewidth=1,
            )
    ax.set_xticks(
        range(len(groups)),
        groups,
        rotation=20 if len(groups) > 4 else 0,
        ha="right" if len(groups) > 4 else "center",
    )
    if log:
        ax.set_yscale("log")
        _readable_log_axis(ax.yaxis)
    elif finite:
        ax.set_ylim(0, max(finite) * 1.3)  # headroom for the legend row above the bars
    legend = {"loc": "upper left", "ncols": min(len(names), 4)}
    _finish(ax, title=title, xlabel="", ylabel=ylabel + (" (log scale)" if log else ""), legend=legend)
    return to_png(fig)


def training_curves(
    curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]], *, title: str, ylabel: str = "validation AUC"
) -> bytes:
    """Per framework: the mean over seeds of a per-epoch figure, with the min-max band over seeds."""
    fig = _new()
    ax = fig.subplots()
    for name, seeds in curves.items():
        colour, marker = style(name)
        by_epoch: dict[int, list[float]] = {}
        for seed_curve in seeds:
            for epoch, value in seed_curve:
                if value is not None and math.isfinite(value):
                    by_epoch.setdefault(epoch, []).append(value)
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        means = [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
        ax.plot(epochs, means, color=colour, marker=marker, markersize=3, label=f"{name} (n={len(seeds)})")
        if len(seeds) < 2:
            continue  # a band needs two seeds
        ax.fill_between(
            epochs,
            [min(by_epoch[e]) for e in epochs],
            [max(by_epoch[e]) for e in epochs],
            color=colour,
            alpha=0.15,
            linewidth=0,
        )
    ax.xaxis.get_major_locator().set_params(integer=True)
    _finish(ax, title=title, xlabel="epoch", ylabel=ylabel)
    return to_png(fig)


@dataclass(frozen=True)
class Matrix:
    """One confusion matrix: rows are true classes, columns predictions, as counts."""

    label: str
    counts: Sequence[Sequence[int]]


def confusion_matrices(matrices: Sequence[Matrix], *, title: str) -> bytes:
    """Side-by-side confusion matrices, coloured by row-normalised recall and annotated with counts.

    Axes are class indices (the caption names them): MedMNIST class names run to sixty characters.
    """
    n = len(matrices)
    panel, cbar = 3.0, 0.9  # inches per matrix, and for the colour bar
    width = max(panel * n + cbar + 0.4, WIDTH_IN)  # room for the title above a single matrix
    fig = _new(width, 3.5, margins=False)
    fig.subplots_adjust(
        left=0.45 / width, right=1 - (cbar + 0.1) / width, bottom=0.5 / 3.5, top=1 - 0.55 / 3.5, wspace=0.25
    )
    axes = fig.subplots(1, n, squeeze=False)[0]
    image = None
    for ax, m in zip(axes, matrices, strict=True):
        counts = [list(map(int, row)) for row in m.counts]
        k = len(counts)
        recall = [[100 * c / max(1, sum(row)) for c in row] for row in counts]  # percent, as everywhere
        image = ax.imshow(recall, cmap="Blues", vmin=0.0, vmax=100.0)
        if k <= 12:  # beyond that the numbers overlap; the colours still tell the story
            size = 7 if k <= 8 else 6
            for r in range(k):
                for c in range(k):
                    if not counts[r][c]:
                        continue  # zeros are noise to read (and a third of the drawing time)
                    colour = "white" if recall[r][c] > 60 else "#222222"
                    ax.text(c, r, str(counts[r][c]), ha="center", va="center", fontsize=size, color=colour)
        ax.set_xticks(range(k), [str(i) for i in range(k)], fontsize=7)
        ax.set_yticks(range(k), [str(i) for i in range(k)], fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_title(m.label, fontsize=9)
    axes[0].set_ylabel("true", fontsize=8)
    if image is not None:
        bar_ax = fig.add_axes((1 - (cbar - 0.05) / width, 0.5 / 3.5 + 0.05, 0.15 / width, 0.7))
        fig.colorbar(image, cax=bar_ax, label="recall, % (row-normalised)")
        bar_ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return to_png(fig)
