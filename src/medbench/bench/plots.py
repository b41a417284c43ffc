"""Benchmark figures from results-store rows, with matplotlib's Agg backend (no display needed).

Every function takes the rows (``RunRecord`` or dicts, see :mod:`medbench.bench.summary`), so reports can
draw the same figures from any store. One PNG per model and kind of figure:

- ``<model>_latency_vs_size.png``: single-stream p50 latency against image size, one line per engine,
  error bars from the min to the max over repeats; log scales, as engines differ by orders of magnitude.
- ``<model>_throughput_vs_batch.png``: images per second against batch size, one panel per image size.
- ``<model>_cold_start.png``: cold start per engine and size, the compile time as the hatched part.

A figure is drawn only when it has something to show (two sizes for a line over sizes, two batch sizes for
throughput, two bars for cold start). Engines wear their framework's colour (:mod:`medbench.report.style`),
the same as in the report's training plots.

Framework-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medbench.bench.summary import CellSummary, aggregate
from medbench.timing import RepeatSummary


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _line(
    ax, xs: Sequence[float], summaries: Sequence[RepeatSummary], style: dict[str, Any], label: str
) -> None:
    """A line through the medians, with min-max bars only where several repeats give a range: a single
    repeat has none, and a zero-height cap would read as "no spread"."""
    ax.plot(xs, [s.median for s in summaries], label=label, **style)
    ranged = [(x, s) for x, s in zip(xs, summaries, strict=True) if s.n > 1]
    if ranged:
        median, bars = _bars([s for _, s in ranged])
        ax.errorbar([x for x, _ in ranged], median, yerr=bars, fmt="none", ecolor=style["color"], capsize=3)


def _spread_note(summaries: Sequence[RepeatSummary]) -> str:
    """What the bars are, for a title: none for a single repeat."""
    if all(s.n == 1 for s in summaries):
        return "one repeat, so no bars"
    return "median of repeats, bars min-max"


def _bars(summaries: Sequence[RepeatSummary]) -> tuple[list[float], list[list[float]]]:
    """Medians and the (below, above) distances to the min and max, as ``errorbar`` wants them."""
    median = [s.median for s in summaries]
    return median, [[s.median - s.min for s in summaries], [s.max - s.median for s in summaries]]


def _engines(cells: Sequence[CellSummary]) -> list[str]:
    return list(dict.fromkeys(c.engine for c in cells))


def _styles(cells: Sequence[CellSummary]) -> dict[str, dict[str, Any]]:
    """Per engine: its framework's colour and marker (the same as in the report's training plots), and a
    line style that tells apart engines of one framework."""
    from medbench.report.style import engine_styles

    frameworks = {c.engine: c.framework for c in cells}
    return engine_styles(_engines(cells), frameworks)


def _readable_log_axis(axis) -> None:
    """Ticks at 1, 2 and 5 x 10^k, written as plain numbers: over less than a decade a log axis otherwise
    shows one labelled tick or none."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.4g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_latency_vs_size(cells: Sequence[CellSummary], model: str, path: str | Path) -> Path | None:
    """Single-stream p50 latency per image size, one line per engine; None when fewer than two sizes were
    measured (a line needs two points; the table holds a single size's figures)."""
    plt = _pyplot()
    cells = [c for c in cells if c.model == model and c.latency_p50_ms is not None]
    sizes = sorted({c.size for c in cells})
    if len(sizes) < 2:
        return None
    styles = _styles(cells)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for engine in _engines(cells):
        points = sorted((c for c in cells if c.engine == engine), key=lambda c: c.size)
        _line(ax, [c.size for c in points], [c.latency_p50_ms for c in points], styles[engine], engine)
    ax.set(xscale="log", yscale="log", xlabel="image size (px)", ylabel="p50 latency, batch 1 (ms, log)")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    _readable_log_axis(ax.yaxis)
    spread = _spread_note([c.latency_p50_ms for c in cells])
    ax.set_title(f"{model}: single-stream latency\n({spread})", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")  # where it hides the fewest points
    return _save(fig, path)


def plot_throughput_vs_batch(cells: Sequence[CellSummary], model: str, path: str | Path) -> Path | None:
    """Images per second against batch size, one panel per image size, one line per engine; None when
    fewer than two batch sizes were measured (the table holds the single figure)."""
    plt = _pyplot()
    cells = [c for c in cells if c.model == model and c.throughput]
    batches = sorted({b for c in cells for b in c.throughput})
    if len(batches) < 2:
        return None
    sizes = sorted({c.size for c in cells})
    styles = _styles(cells)
    engines = _engines(cells)
    # At least 6.4 in wide so the title fits above a single panel; the legend goes below the panels, where
    # it can hide no point.
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(max(6.4, 3.6 * len(sizes)), 4.6), squeeze=False, sharey=False
    )
    for ax, size in zip(axes[0], sizes, strict=True):
        for c in (c for c in cells if c.size == size):
            measured = sorted(c.throughput)
            _line(ax, measured, [c.throughput[b] for b in measured], styles[c.engine], c.engine)
        ax.set(xscale="log", yscale="log", xlabel="batch size", title=f"{size} px")
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        _readable_log_axis(ax.yaxis)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("images / s (log)")
    handles = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    ordered = [e for e in engines if e in handles]
    fig.legend(
        [handles[e] for e in ordered], ordered, loc="lower center", ncols=min(len(ordered), 4), fontsize=8
    )
    spread = _spread_note([t for c in cells for t in c.throughput.values()])
    fig.suptitle(f"{model}: offline throughput ({spread})", fontsize=11)
    rows = -(-len(ordered) // 4)  # legend rows
    return _save(fig, path, bottom=0.06 + 0.055 * rows)


def plot_cold_start(cells: Sequence[CellSummary], model: str, path: str | Path) -> Path | None:
    """Cold start (process start to first prediction) per engine, one bar per size in the engine's framework
    colour, lighter for smaller sizes, compile time hatched; None for a single bar (nothing to compare)."""
    plt = _pyplot()
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    cells = [c for c in cells if c.model == model and c.cold_start_s is not None]
    if len(cells) < 2:
        return None
    engines = _engines(cells)
    styles = _styles(cells)
    sizes = sorted({c.size for c in cells})
    width = 0.8 / len(sizes)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.1 * len(engines) + 1.5), 4.5))
    for j, size in enumerate(sizes):
        shade = 0.55 * (1 - j / max(1, len(sizes) - 1)) if len(sizes) > 1 else 0.0  # mix with white
        for i, engine in enumerate(engines):
            cell = next((c for c in cells if c.engine == engine and c.size == size), None)
            if cell is None:
                continue
            base = to_rgb(styles[engine]["color"])
            color = tuple(v + (1 - v) * shade for v in base)
            x = i - 0.4 + width * (j + 0.5)
            total = cell.cold_start_s.median  # type: ignore[union-attr]
            compile_s = min(total, cell.compile_s.median) if cell.compile_s else 0.0
            ax.bar(x, total - compile_s, width, color=color, edgecolor="white")
            ax.bar(x, compile_s, width, bottom=total - compile_s, color=color, hatch="//", edgecolor="white")
            if len(sizes) > 1:
                ax.text(x, total, str(size), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(engines)), engines, rotation=30, ha="right")
    ax.set_ylabel("seconds")
    ax.set_title(f"{model}: cold start" + (" (bars labelled by image size, px)" if len(sizes) > 1 else ""))
    ax.grid(True, axis="y", alpha=0.3)
    ax.margins(y=0.12)
    legend = [Patch(facecolor="#bbbbbb", edgecolor="white", label="to first prediction")]
    legend.append(Patch(facecolor="#bbbbbb", edgecolor="white", hatch="//", label="of which compilation"))
    ax.legend(handles=legend, fontsize=8, loc="upper left")
    return _save(fig, path)


def _save(fig, path: str | Path, *, bottom: float = 0.0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, bottom, 1, 1))  # ``bottom`` > 0 leaves room for a figure legend below
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def write_plots(records: Iterable[Any], out_dir: str | Path) -> list[Path]:
    """Every figure for every model among ``records``; returns the files written."""
    cells = aggregate(records)
    out_dir = Path(out_dir)
    written = []
    for model in dict.fromkeys(c.model for c in cells):
        for kind, draw in (
            ("latency_vs_size", plot_latency_vs_size),
            ("throughput_vs_batch", plot_throughput_vs_batch),
            ("cold_start", plot_cold_start),
        ):
            path = draw(cells, model, out_dir / f"{model}_{kind}.png")
            if path is not None:
                written.append(path)
    return written
