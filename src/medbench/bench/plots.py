"""Benchmark figures from results-store rows, with matplotlib's Agg backend (no display needed).

Every function takes the rows (``RunRecord`` or dicts, see :mod:`medbench.bench.summary`), so reports can
draw the same figures from any store. One PNG per model and kind of figure:

- ``<model>_latency_vs_size.png``: single-stream p50 latency against image size, one line per engine,
  error bars from the min to the max over repeats; log scales, as engines differ by orders of magnitude.
- ``<model>_throughput_vs_batch.png``: images per second against batch size, one panel per image size.
- ``<model>_cold_start.png``: cold start per engine and size, the compile time as the hatched part.

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


def _bars(summaries: Sequence[RepeatSummary]) -> tuple[list[float], list[list[float]]]:
    """Medians and the (below, above) distances to the min and max, as ``errorbar`` wants them."""
    median = [s.median for s in summaries]
    return median, [[s.median - s.min for s in summaries], [s.max - s.median for s in summaries]]


def _engines(cells: Sequence[CellSummary]) -> list[str]:
    return list(dict.fromkeys(c.engine for c in cells))


def _colors(engines: Sequence[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return {engine: cmap(i % 10) for i, engine in enumerate(engines)}


def plot_latency_vs_size(cells: Sequence[CellSummary], model: str, path: str | Path) -> Path | None:
    """Single-stream p50 latency per image size, one line per engine; None when nothing was measured."""
    plt = _pyplot()
    cells = [c for c in cells if c.model == model and c.latency_p50_ms is not None]
    if not cells:
        return None
    colors = _colors(_engines(cells))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for engine in _engines(cells):
        points = sorted((c for c in cells if c.engine == engine), key=lambda c: c.size)
        median, bars = _bars([c.latency_p50_ms for c in points])  # type: ignore[misc]
        sizes = [c.size for c in points]
        ax.errorbar(sizes, median, yerr=bars, marker="o", capsize=3, label=engine, color=colors[engine])
    ax.set(xscale="log", yscale="log", xlabel="image size (px)", ylabel="p50 latency, batch 1 (ms)")
    sizes = sorted({c.size for c in cells})
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_title(f"{model}: single-stream latency (median of repeats, min-max bars)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_throughput_vs_batch(cells: Sequence[CellSummary], model: str, path: str | Path) -> Path | None:
    """Images per second against batch size, one panel per image size, one line per engine."""
    plt = _pyplot()
    cells = [c for c in cells if c.model == model and c.throughput]
    if not cells:
        return None
    sizes = sorted({c.size for c in cells})
    colors = _colors(_engines(cells))
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 4), squeeze=False, sharey=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        for c in (c for c in cells if c.size == size):
            batches = sorted(c.throughput)
            median, bars = _bars([c.throughput[b] for b in batches])
            ax.errorbar(
                batches,
                median,
                yerr=bars,
                marker="o",
                capsize=3,
                label=c.engine,
                color=colors[c.engine],
            )
        ax.set(xscale="log", yscale="log", xlabel="batch size", title=f"{size} px")
        batches = sorted({b for c in cells for b in c.throughput})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("images / s")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(f"{model}: offline throughput (median of repeats, min-max bars)")
    return _save(fig, path, right=0.84)


def plot_cold_start(cells: Sequence[CellSummary], model: str, path: str | Path) -> Path | None:
    """Cold start (process start to first prediction) per engine, bars per size, compile time hatched."""
    plt = _pyplot()
    cells = [c for c in cells if c.model == model and c.cold_start_s is not None]
    if not cells:
        return None
    engines = _engines(cells)
    sizes = sorted({c.size for c in cells})
    width = 0.8 / len(sizes)
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(engines)), 4.5))
    for j, size in enumerate(sizes):
        color = cmap(j / max(1, len(sizes) - 1) * 0.85)
        for i, engine in enumerate(engines):
            cell = next((c for c in cells if c.engine == engine and c.size == size), None)
            if cell is None:
                continue
            x = i - 0.4 + width * (j + 0.5)
            total = cell.cold_start_s.median  # type: ignore[union-attr]
            compile_s = min(total, cell.compile_s.median) if cell.compile_s else 0.0
            ax.bar(x, total - compile_s, width, color=color, label=f"{size} px" if i == 0 else None)
            ax.bar(x, compile_s, width, bottom=total - compile_s, color=color, hatch="//", edgecolor="white")
    ax.set_xticks(range(len(engines)), engines, rotation=30, ha="right")
    ax.set_ylabel("seconds")
    ax.set_title(f"{model}: cold start (hatched: compilation)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: str | Path, *, right: float = 1.0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0, right, 1))  # ``right`` < 1 leaves room for a figure legend
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
