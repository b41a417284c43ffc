"""The inference-benchmark section: ``kind="bench"`` rows, summarised and drawn by :mod:`medbench.bench`.

The benchmark's own aggregation (:func:`medbench.bench.summary.aggregate`: medians over repeats with their
min-max range), table cells (:func:`~medbench.bench.summary.table_rows`) and figures
(:mod:`medbench.bench.plots`) are reused as they are, so ``medbench bench`` and the report never disagree.
Those plot functions write files; their bytes are read back to be embedded.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from medbench.report.document import Cell, Figure, Note, Row, Section, Table
from medbench.results import RunRecord

# (file suffix, plot function name in medbench.bench.plots, caption)
_FIGURES: tuple[tuple[str, str, str], ...] = (
    (
        "latency vs size",
        "plot_latency_vs_size",
        "Single-stream (batch 1) p50 latency per engine: median of repeats, bars min–max; lower is better.",
    ),
    (
        "throughput",
        "plot_throughput_vs_batch",
        "Offline throughput per engine against batch size, one panel per image size: median of repeats, "
        "bars min–max; higher is better.",
    ),
    (
        "cold start",
        "plot_cold_start",
        "Cold start: process start to first prediction; the hatched part is compilation.",
    ),
)


def bench_table(summaries: Sequence) -> Table:
    from medbench.bench.summary import NUMERIC_COLUMNS, table_rows

    rows = table_rows(summaries)
    headers = tuple(rows[0]) if rows else ()
    body = []
    for row, summary in zip(rows, summaries, strict=True):
        cells = []
        for header, text in row.items():
            tone = ("bad" if summary.status != "ok" else "") if header == "status" else ""
            cells.append(Cell(text, tone, numeric=header in NUMERIC_COLUMNS))
        body.append(Row(tuple(cells)))
    return Table(headers, tuple(body), name="bench", caption="Medians over repeats (min–max range)")


def several_repeats(summaries: Sequence, model: str) -> bool:
    """Whether any measured cell of ``model`` ran more than once (else the plots have no min-max bars)."""
    return any(s.latency_p50_ms is not None and s.latency_p50_ms.n > 1 for s in summaries if s.model == model)


def _one_repeat(caption: str) -> str:
    return caption.replace("median of repeats, bars min–max", "one repeat, so no bars")


def bench_figures(summaries: Sequence, names: Callable[[str], str]) -> list[Figure]:
    """The benchmark's three figures per model, read back as PNG bytes."""
    from medbench.bench import plots as bench_plots

    figures = []
    with tempfile.TemporaryDirectory(prefix="medbench-report-") as folder:
        for model in dict.fromkeys(s.model for s in summaries):
            for suffix, function, caption in _FIGURES:
                path = getattr(bench_plots, function)(
                    summaries, model, Path(folder) / f"{model}-{suffix}.png"
                )
                if path is not None:
                    name = names(f"bench {model} {suffix}")
                    text = caption if several_repeats(summaries, model) else _one_repeat(caption)
                    figures.append(Figure(name, text, Path(path).read_bytes(), f"{suffix}, {model}"))
    return figures


def inference_summaries(runs: Sequence[RunRecord]) -> list:
    """The benchmark's cell summaries of ``runs`` (empty without bench rows or without medbench.bench)."""
    rows = [r for r in runs if r.kind == "bench" and r.status != "running"]
    if not rows:
        return []
    try:
        from medbench.bench.summary import aggregate
    except ImportError:
        return []
    return aggregate(rows)


def fastest_to_predict(summaries: Sequence, model: str, size: int):
    """The engine with the lowest single-stream (batch 1) p50 latency for ``model`` at ``size`` px, among
    those that passed the correctness check; None when none was measured."""
    measured = [
        s
        for s in summaries
        if s.model == model and s.size == size and s.status == "ok" and s.latency_p50_ms is not None
    ]
    return min(measured, key=lambda s: s.latency_p50_ms.median, default=None)


CEILINGS_TEXT = (
    "Effective FLOP/s is the model's FLOPs per image x images per second at the best batch size. "
    "% of FMA peak divides it by the theoretical fp32 peak of the cores the engines used (cores x the clock "
    "they were measured to run at x FMA lanes per cycle x 2): no code goes past 100%, and the gap is what "
    "the engine, its kernels and the model's shapes leave unused. % of best kernel divides it by the "
    "fastest fp32 kernel any installed framework reached in the same session (matrix products, a 3x3 "
    "convolution): near 100% the engine runs the model as fast as the best single kernel runs. Rows from "
    "before both were measured have only the best kernel (a matrix product)."
)


def ceiling_notes(runs: Sequence[RunRecord], bench_rows: Sequence[RunRecord]) -> list[Note]:
    """What the two percentages were divided by: each session's peak row, then how to read them."""
    from medbench.bench.peak import describe_peaks

    sessions = {r.experiment for r in bench_rows}
    peaks = [
        r for r in runs if r.kind == "bench-peak" and r.status == "completed" and r.experiment in sessions
    ]
    lines = []
    for r in peaks:
        described = "; ".join(describe_peaks(r.metrics))
        if described:
            lines.append(f"{r.experiment}: {described}" if len(peaks) > 1 else described)
    return [*(Note(line, "muted") for line in lines), Note(CEILINGS_TEXT, "muted")]


def bench_section(runs: Sequence[RunRecord], names: Callable[[str], str]) -> Section | None:
    """None when no benchmark row exists."""
    rows = [r for r in runs if r.kind == "bench" and r.status != "running"]
    if not rows:
        return None
    try:
        from medbench.bench.summary import aggregate
    except ImportError:  # a medbench without the benchmark package can still report training
        note = Note(f"{len(rows)} benchmark row(s), but medbench.bench is not installed to summarise them.")
        return Section("Inference benchmark", "inference", [note])
    summaries = aggregate(rows)
    blocks: list = [bench_table(summaries), *bench_figures(summaries, names)]
    blocks.extend(ceiling_notes(runs, rows))
    blocks.append(
        Note(
            "Every engine's outputs are checked against PyTorch eager fp32 before it is timed; an engine "
            "with wrong answers is marked in the status column and is not timed.",
            "muted",
        )
    )
    return Section("Inference benchmark", "inference", blocks)
