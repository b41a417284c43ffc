"""The report's header facts and its "At a glance" table: one row per (dataset, size, model)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from medbench.report.aggregate import SPREAD_CRITERION_POINTS, Comparison
from medbench.report.baseline import no_better
from medbench.report.bench import fastest_to_predict
from medbench.report.document import Cell, Note, Row, Section, Table
from medbench.report.formatting import DASH, pct, pct_value, when_text
from medbench.report.style import framework_sort_key
from medbench.results import RunRecord

# Kinds of store rows, as a reader names them (the machine-peak row is the benchmark's FLOP/s reference).
KIND_NAMES: dict[str, str] = {
    "train": "training",
    "bench": "inference benchmark",
    "bench-peak": "machine peak",
}


def run_counts(runs: Sequence[RunRecord]) -> str:
    """``22 = 13 training (11 completed, 1 failed, 1 interrupted) + 9 inference benchmark (...)``: every
    row counted once, by kind then status, so the parts add up to the total."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for r in runs:
        by_kind[r.kind].append(r.status)
    order = [k for k in KIND_NAMES if k in by_kind] + sorted(k for k in by_kind if k not in KIND_NAMES)
    parts = []
    for kind in order:
        statuses = by_kind[kind]
        counts = ", ".join(
            f"{statuses.count(s)} {s}" for s in dict.fromkeys(sorted(statuses, key=_status_order))
        )
        parts.append(f"{len(statuses)} {KIND_NAMES.get(kind, kind)} ({counts})")
    if len(parts) < 2:
        return parts[0] if parts else "0"
    return f"{len(runs)} = " + " + ".join(parts)


def _status_order(status: str) -> tuple[int, str]:
    order = ("completed", "failed", "interrupted", "running")
    return (order.index(status) if status in order else len(order), status)


def report_frameworks(runs: Sequence[RunRecord]) -> list[str]:
    """The frameworks compared: those that trained, and those of benchmark engines that are medbench
    frameworks (not ONNX Runtime, not numpy's machine-peak row, which measure but are not compared)."""
    from medbench.frameworks import FRAMEWORKS

    names = {r.framework for r in runs if r.kind == "train" and r.framework}
    names |= {r.framework for r in runs if r.kind == "bench" and r.framework in FRAMEWORKS}
    return sorted(names, key=framework_sort_key)


def header_facts(
    runs: Sequence[RunRecord], *, store_path: str, filters: str, generated_at: datetime
) -> list[tuple[str, str]]:
    """The header's key figures: when, where from, how many runs of which kind and outcome."""
    train = [r for r in runs if r.kind == "train" and r.status == "completed"]
    engines = list(
        dict.fromkeys(str(r.config["engine"]) for r in runs if r.kind == "bench" and r.config.get("engine"))
    )
    seeds = sorted({r.seed for r in train if r.seed is not None})
    ends = [r.finished_at or r.created_at for r in runs]
    facts = [
        ("Generated", generated_at.strftime("%Y-%m-%d %H:%M UTC")),
        ("Store", store_path),
        ("Selection", filters),
        ("Runs", run_counts(runs)),
        ("Datasets", ", ".join(sorted({r.dataset for r in runs if r.dataset})) or DASH),
        ("Frameworks", ", ".join(report_frameworks(runs)) or DASH),
        ("Models", ", ".join(sorted({r.model for r in runs if r.model})) or DASH),
        ("Seeds", ", ".join(map(str, seeds)) or DASH),
        (
            "Period",
            f"{when_text(min(r.created_at for r in runs))} → {when_text(max(ends))} UTC" if runs else DASH,
        ),
    ]
    if engines:
        facts.insert(6, ("Inference engines", ", ".join(engines)))
    return facts


def _source_cell(c: Comparison) -> Cell:
    source = c.key.source
    if source.kind == "official":
        return Cell("official ✓", "good", source.label(c.key.dataset))
    if source.kind == "custom":
        return Cell("CUSTOM file", "warn", source.label(c.key.dataset))
    return Cell(source.kind, "warn", source.label(c.key.dataset))


def spread_cells(c: Comparison) -> tuple[Cell, Cell]:
    spread = c.acc_spread_points
    if spread is None:
        return Cell(DASH, "muted"), Cell("– (one framework)", "muted")
    verdict = Cell("✓ yes", "good") if c.within_criterion else Cell("✗ no", "bad")
    return Cell(f"{spread:.2f} pts", numeric=True), verdict


def _speed_cells(c: Comparison) -> tuple[Cell, Cell]:
    """The fastest framework by s/epoch, and how many times slower the slowest one is."""
    timed = sorted((f.s_per_epoch.mean, f.framework) for f in c.frameworks if f.s_per_epoch is not None)
    if not timed:
        return Cell(DASH, "muted"), Cell(DASH, "muted")
    (fastest, name), (slowest, _) = timed[0], timed[-1]
    hint = "timings on different machines" if c.machines > 1 else ""
    # One framework timed (or a zero time) leaves nothing to compare.
    ratio = f"{slowest / fastest:.2f}×" if len(timed) > 1 and fastest > 0 else DASH
    return Cell(f"{name} ({fastest:.2f} s)", "warn" if hint else "", hint), Cell(ratio, numeric=True)


def _predict_cell(c: Comparison, summaries: Sequence) -> Cell:
    """The engine with the lowest batch-1 latency for this model and input size, from the benchmark rows."""
    best = fastest_to_predict(summaries, c.key.model, c.key.input_size)
    if best is None:
        return Cell(DASH, "muted", "no inference benchmark of this model and size")
    throughput = best.best_throughput
    hint = "single-stream (batch 1) p50 latency, median of repeats"
    if throughput:
        hint += f"; best offline throughput {throughput[1].median:,.0f} img/s at batch {throughput[0]}"
    return Cell(f"{best.engine} ({best.latency_p50_ms.median:.3g} ms)", hint=hint)


def _most_accurate_cell(c: Comparison) -> Cell:
    accurate = [f for f in c.frameworks if f.test_acc is not None]
    if len(accurate) < 2:
        return Cell(DASH + " (one framework)" if accurate else DASH, "muted")
    best = max(accurate, key=lambda f: f.test_acc.mean)
    if no_better(best.test_acc.mean, c.baseline):
        return Cell("none beats the baseline", "bad")
    return Cell(f"{best.framework} ({pct_value(best.test_acc.mean)} %)")


def _acc_cell(c: Comparison, fw: str, best: float | None) -> Cell:
    result = c.result(fw)
    if result is None or result.test_acc is None:
        return Cell(DASH, "muted")
    text = f"{pct(result.test_acc)} (n={result.test_acc.n})"
    if no_better(result.test_acc.mean, c.baseline):
        return Cell(
            f"{text} ⚠ ≤ baseline", "bad", "no better than always predicting the majority class", numeric=True
        )
    tone = "best" if len(c.frameworks) > 1 and result.test_acc.mean == best else ""
    return Cell(text, tone, numeric=True)


def _metric_cells(c: Comparison, frameworks: Sequence[str], name: str, digits: int = 1) -> list[Cell]:
    cells = []
    for fw in frameworks:
        result = c.result(fw)
        stat = getattr(result, name) if result else None
        cells.append(Cell(pct(stat, digits), "" if stat else "muted", numeric=True))
    return cells


def _baseline_cell(c: Comparison) -> Cell:
    if c.baseline is None:
        return Cell(DASH, "muted", "the runs stored no per-class test counts")
    return Cell(
        pct_value(c.baseline.acc), "muted", "always predicting " + c.baseline.describe(), numeric=True
    )


def glance_table(comparisons: Sequence[Comparison], summaries: Sequence = ()) -> Table:
    """One row per comparison, the verdict first (the criterion, the most accurate, the fastest to train and
    to predict), then every framework's test ACC, the majority-class baseline, AUC and balanced ACC; a
    Variant column when an experiment's variants are compared. ``summaries``: the inference benchmark's."""
    frameworks = sorted({f.framework for c in comparisons for f in c.frameworks}, key=framework_sort_key)
    variants = any(c.variant_label for c in comparisons)
    balanced = any(f.test_balanced_acc for c in comparisons for f in c.frameworks)
    auc = any(f.test_auc for c in comparisons for f in c.frameworks)
    predict = bool(summaries)
    headers = (
        "Dataset",
        "Size",
        "Model",
        *(("Variant",) if variants else ()),
        f"≤ {SPREAD_CRITERION_POINTS:g} pts",
        "ACC spread",
        "Most accurate",
        "Fastest to train (s/epoch)",
        "Slowest ÷ fastest",
        *(("Fastest to predict (batch 1)",) if predict else ()),
        "Data",
        *(f"{fw} ACC %" for fw in frameworks),
        "Majority-class ACC %",
        *(f"{fw} AUC %" for fw in frameworks if auc),
        *(f"{fw} bal. ACC %" for fw in frameworks if balanced),
    )
    rows = []
    for c in comparisons:
        best = max((f.test_acc.mean for f in c.frameworks if f.test_acc), default=None)
        variant = (Cell(c.variant_label or DASH, "" if c.variant_label else "muted", c.variant_settings),)
        spread, verdict = spread_cells(c)
        rows.append(
            Row(
                (
                    Cell(c.key.dataset),
                    Cell(c.key.size_label),
                    Cell(c.key.model),
                    *(variant if variants else ()),
                    verdict,
                    spread,
                    _most_accurate_cell(c),
                    *_speed_cells(c),
                    *((_predict_cell(c, summaries),) if predict else ()),
                    _source_cell(c),
                    *(_acc_cell(c, fw, best) for fw in frameworks),
                    _baseline_cell(c),
                    *(_metric_cells(c, frameworks, "test_auc", 2) if auc else ()),
                    *(_metric_cells(c, frameworks, "test_balanced_acc") if balanced else ()),
                )
            )
        )
    return Table(headers, tuple(rows), name="glance")


def glance_notes(comparisons: Sequence[Comparison]) -> list[Note]:
    """A warning per comparison where a framework does no better than the majority-class baseline."""
    notes = []
    for c in comparisons:
        weak = [f.framework for f in c.frameworks if f.test_acc and no_better(f.test_acc.mean, c.baseline)]
        if weak:
            notes.append(
                Note(
                    f"⚠ {c.title}: {', '.join(weak)} no better than always predicting the majority class "
                    f"(ACC {pct_value(c.baseline.acc)} %): such a model has learnt nothing the label counts "
                    "do not already say.",
                    "bad",
                )
            )
    return notes


def how_to_read() -> Section:
    text = [
        "Test ACC and AUC are the official MedMNIST metrics, in percent: mean ± sample standard deviation "
        "over seeds (n = number of seeds). The 95% CI is the percentile bootstrap (1,000 resamples of the "
        "test set) of the seed with the best validation AUC, chosen without looking at the test set.",
        "On imbalanced data ACC mostly measures the largest class (DermaMNIST is two-thirds nevi): balanced "
        "ACC is the mean of the per-class recalls (for multi-label tasks, the mean over labels of "
        "(sensitivity + specificity) / 2), macro F1 the unweighted mean of the per-class F1 scores, and the "
        "per-class recall tables show which classes a model misses.",
        "The majority-class baseline is what a model that learnt nothing scores: it predicts the most "
        "frequent training class for every test image (for multi-label tasks, each label's majority value); "
        "its AUC is 50 by definition. A run no better than it is flagged ⚠ and never shown as the best.",
        f"Frameworks agree when their mean test ACCs lie within {SPREAD_CRITERION_POINTS:g} percentage "
        "points (the ACC spread is the largest mean minus the smallest).",
        "s/epoch is training time over epochs, evaluation excluded; train img/s is the steady-state step "
        "rate (the first, compiling step excluded, which is shown apart as 'first step'). 'Fastest to "
        "predict' is the inference engine with the lowest single-stream (batch 1) median latency in the "
        "inference benchmark, among those whose outputs passed the correctness check. Times compare only "
        "between runs on the same machine (see Environment).",
    ]
    return Section("How to read this report", "how-to-read", [Note(t) for t in text])
