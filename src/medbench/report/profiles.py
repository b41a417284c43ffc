"""The report's "where the time goes" section: each training run's step breakdown, and the frameworks'
costliest operations side by side where runs were profiled (``--profile``).

Both come from the run's row (``timings["step_breakdown"]`` and ``timings["top_operations"]``, written by
:mod:`medbench.training.profiling`). A framework measures its step its own way (each row says how, in a
hint and in the notes); several runs of one framework and setting (seeds) are pooled by the median of each
part. The operations are the latest profiled run's, per framework, ranked by time per step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from medbench.report.document import Cell, Note, Row, Section, Table
from medbench.results import RunRecord

DASH = "–"
PARTS = (
    ("data", "data_ms"),
    ("host → device", "host_to_device_ms"),
    ("forward", "forward_ms"),
    ("backward", "backward_ms"),
    ("optimizer", "optimizer_ms"),
    ("other", "other_ms"),
)
TOP = 10


def profile_section(runs: Sequence[RunRecord]) -> Section | None:
    """The section, or None when no completed training run recorded a breakdown."""
    trained = [r for r in runs if r.kind == "train" and r.status == "completed" and r.timings]
    with_breakdown = [r for r in trained if "step_breakdown" in r.timings]
    if not with_breakdown:
        return None
    blocks: list = [
        Note(
            "Each run's steady training step, taken apart a few steps into training on a batch in hand, in "
            "milliseconds (share of the step): the loop's wait for the batch, then host-to-device, forward, "
            "backward and optimizer as each framework measures them (hover a framework for how). JAX and "
            "Keras on TensorFlow/JAX time compiled programs apart and take differences, so a part can come "
            "out slightly negative when the compiler fuses across it; 'other' is the rest of the step."
        ),
        breakdown_table(with_breakdown),
        *method_notes(with_breakdown),
    ]
    profiled = [r for r in trained if "top_operations" in r.timings]
    for (dataset, size, model), group in _groups(profiled).items():
        blocks.append(top_operations_table(group, title=f"{model}, {dataset} {size} px"))
    if not profiled:
        hint = "No run was profiled: `medbench train --profile` (or `medbench run --profile`) lists each "
        blocks.append(Note(hint + "framework's ten costliest operations here, side by side.", "muted"))
    return Section("Where the time goes", "profile", blocks)


def framework_label(run: RunRecord) -> str:
    """The framework and its runtime settings that differ from the defaults: ``jax (small_map_conv=matmul)``."""
    from medbench.config import RuntimeConfig

    defaults = RuntimeConfig().model_dump(mode="json")
    runtime = (run.config or {}).get("runtime") or {}
    changed = [
        f"{k}={v}" for k, v in sorted(runtime.items()) if v != defaults.get(k) and v not in (None, {}, [])
    ]
    return f"{run.framework} ({', '.join(changed)})" if changed else str(run.framework)


def _groups(runs: Sequence[RunRecord]) -> dict[tuple, list[RunRecord]]:
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[(r.dataset, r.size, r.model)].append(r)
    return dict(sorted(groups.items(), key=lambda item: tuple(str(k) for k in item[0])))


def _ms(value: float | None, step: float | None) -> Cell:
    if value is None:
        return Cell(DASH, numeric=True)
    share = f" ({value / step:.0%})" if step and step > 0 else ""
    return Cell(f"{value:,.1f}{share}", numeric=True)


def breakdown_table(runs: Sequence[RunRecord]) -> Table:
    """One row per (dataset, size, model, batch, framework setting): the median of each part over its runs."""
    pooled: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        b = r.timings["step_breakdown"]
        pooled[(r.dataset, r.size, r.model, b.get("batch_size"), framework_label(r))].append(b)
    rows = []
    for (dataset, size, model, batch, label), items in sorted(pooled.items(), key=lambda i: str(i[0])):
        ok = [b for b in items if "failed" not in b]
        head = (Cell(str(model)), Cell(f"{dataset} {size}"), Cell(str(batch or DASH), numeric=True))
        if not ok:
            reason = items[-1].get("failed", "")
            cells = (Cell(label), Cell(f"failed: {reason}"[:120], "bad", hint=reason))
            rows.append(Row(head + cells + tuple(Cell("") for _ in range(len(PARTS)))))
            continue
        med = {key: _median([b.get(key) for b in ok]) for _, key in (("step", "step_ms"), *PARTS)}
        method = ok[-1].get("method", "")
        cells = (
            Cell(label, hint=method),
            Cell(f"{med['step_ms']:,.1f}", numeric=True, hint=f"{len(ok)} run(s)"),
        )
        rows.append(Row(head + cells + tuple(_ms(med[key], med["step_ms"]) for _, key in PARTS)))
    headers = ("model", "data", "batch", "framework", "step ms", *(name for name, _ in PARTS))
    caption = "ms per training step (share of the step); medians over runs"
    return Table(headers, tuple(rows), name="step breakdown", caption=caption)


def method_notes(runs: Sequence[RunRecord]) -> list[Note]:
    """How each framework timed its step (the hints of the table, for a reader without a mouse)."""
    methods: dict[str, str] = {}
    for r in runs:
        method = r.timings["step_breakdown"].get("method")
        if method:
            methods[str(r.framework)] = method
    return [
        Note(f"How {framework} was timed: {method}.", "muted")
        for framework, method in sorted(methods.items())
    ]


def _median(values: list) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    return float(np.median(numbers)) if numbers else None


def top_operations_table(runs: Sequence[RunRecord], *, title: str) -> Table:
    """Rank by rank, one column per framework: its operation, ms per step and share of all operation time."""
    latest: dict[str, dict[str, Any]] = {}
    for r in sorted(runs, key=lambda r: r.created_at or ""):
        latest[framework_label(r)] = r.timings["top_operations"]
    labels = sorted(latest)
    columns = {label: _operation_cells(latest[label]) for label in labels}
    depth = max((len(cells) for cells in columns.values()), default=0)
    rows = []
    for rank in range(depth):
        cells = [columns[label][rank] if rank < len(columns[label]) else Cell("") for label in labels]
        rows.append(Row((Cell(str(rank + 1), numeric=True), *cells)))
    totals = Row(
        (Cell("all ops"), *(Cell(_total(latest[label]), "muted", numeric=True) for label in labels)), "ref"
    )
    headers = ("#", *(_header(label, latest[label].get("profiler")) for label in labels))
    caption = f"{title}: the {TOP} costliest operations of a training step by each framework's own profiler"
    return Table(headers, (*rows, totals), name="top operations", caption=caption)


def _header(label: str, profiler: str | None) -> str:
    return f"{label}: {profiler}" if profiler else label


def _operation_cells(top: dict[str, Any]) -> list[Cell]:
    if "failed" in top:
        return [Cell(f"profile failed: {top['failed']}"[:120], "bad", hint=top["failed"])]
    cells = []
    for op in top.get("operations", [])[:TOP]:
        detail = op.get("detail") or ""
        text = f"{op.get('kind', op.get('name', '?'))}: {op['ms_per_step']:,.1f} ms ({op['share']:.0%})"
        cells.append(Cell(text + (f", {detail}" if detail else ""), hint=str(op.get("name", ""))))
    return cells


def _total(top: dict[str, Any]) -> str:
    total = top.get("total_ms")
    return f"{total:,.1f} ms per step" if isinstance(total, (int, float)) else DASH
