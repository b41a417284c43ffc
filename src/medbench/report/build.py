"""Turns stored runs into the report's :class:`~medbench.report.document.Document`.

The order follows what a reader needs to choose a framework: the verdict at a glance first, then the
evidence per dataset (tables beside the published figures, plots, per-seed details), then the inference
benchmark, what failed, the environment, and the references with their sources.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from medbench.report import plots, trajectory
from medbench.report.aggregate import (
    CI,
    SPREAD_CRITERION_POINTS,
    Comparison,
    FrameworkResult,
    Stat,
    compare,
    framework_sort_key,
    group_environments,
    metric,
    stored_ci,
    timing,
    unfinished_runs,
)
from medbench.report.baseline import Baseline, no_better
from medbench.report.bench import bench_section, fastest_to_predict, inference_summaries
from medbench.report.document import Cell, Details, Document, Figure, Note, Row, Section, Table
from medbench.report.references import (
    MEDMNIST_PLUS_NOTE,
    SOURCES,
    UPSAMPLED_NOTE,
    Reference,
    load_references,
    match_references,
)
from medbench.report.verdicts import answer_section
from medbench.results import RunRecord

DASH = "–"
CI_HINT = "95% percentile bootstrap CI over the test set, of the seed with the best validation AUC"


# ---- formatting -----------------------------------------------------------------------------------------


def pct(stat: Stat | None, digits: int = 1) -> str:
    """A fraction over seeds as percent: ``91.2 ± 0.4``; a single seed shows no spread."""
    if stat is None:
        return DASH
    text = f"{stat.mean * 100:.{digits}f}"
    return f"{text} ± {stat.std * 100:.{digits}f}" if stat.std is not None else text


def pct_value(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value * 100:.{digits}f}"


def ci_text(ci: CI | None, digits: int = 1, *, with_seed: bool = True) -> str:
    """``[90.1, 92.3] (seed 1)``, in percent."""
    if ci is None:
        return DASH
    seed = f" (seed {ci.seed})" if with_seed and ci.seed is not None else ""
    return f"[{ci.low * 100:.{digits}f}, {ci.high * 100:.{digits}f}]{seed}"


def number(stat: Stat | None, digits: int = 2, *, spread: bool = True) -> str:
    """Seconds, images/s ...: ``12.30 ± 0.21``; large values get thousands separators and no decimals."""
    if stat is None:
        return DASH
    d = 0 if stat.mean >= 1000 else digits
    text = f"{stat.mean:,.{d}f}"
    return f"{text} ± {stat.std:,.{d}f}" if spread and stat.std is not None else text


def _float_text(value: object, digits: int = 2, suffix: str = "") -> str:
    return f"{value:,.{digits}f}{suffix}" if isinstance(value, (int, float)) else DASH


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("→", "to")).strip("-") or "x"


class _Names:
    """Unique figure file stems within one report."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, text: str) -> str:
        base = name = slug(text)
        i = 2
        while name in self._seen:
            name, i = f"{base}-{i}", i + 1
        self._seen.add(name)
        return name


# ---- header and glance ----------------------------------------------------------------------------------


def _when(text: str | None) -> str:
    return (text or "")[:16].replace("T", " ")


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
        ("Period", f"{_when(min(r.created_at for r in runs))} → {_when(max(ends))} UTC" if runs else DASH),
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


# ---- one comparison ---------------------------------------------------------------------------------------


def _status_text(f: FrameworkResult, unfinished: Sequence[RunRecord]) -> str:
    """``measured``, or how many more runs of this framework failed or were interrupted."""
    lost = [r.status for r in unfinished if r.framework == f.framework]
    if not lost:
        return "measured"
    counts = ", ".join(f"{lost.count(s)} {s}" for s in dict.fromkeys(lost))
    return f"measured; {counts}"


def _framework_row(
    f: FrameworkResult,
    best_acc: float | None,
    several: bool,
    unfinished: Sequence[RunRecord] = (),
    baseline: Baseline | None = None,
) -> Row:
    weak = f.test_acc is not None and no_better(f.test_acc.mean, baseline)
    tone = "bad" if weak else ("best" if several and f.test_acc and f.test_acc.mean == best_acc else "")
    status = _status_text(f, unfinished) + ("; ⚠ ≤ baseline" if weak else "")
    seeds = f"{len(f.runs)} ({', '.join(map(str, f.seeds))})" if f.seeds else str(len(f.runs))
    return Row(
        (
            Cell(f.framework, tone),
            Cell(seeds, numeric=True),
            Cell(pct(f.test_acc), tone, numeric=True),
            Cell(ci_text(f.acc_ci), hint=CI_HINT, numeric=True),
            Cell(pct(f.test_auc, 2), numeric=True),
            Cell(ci_text(f.auc_ci, 2), hint=CI_HINT, numeric=True),
            Cell(pct(f.test_balanced_acc), numeric=True),
            Cell(pct(f.test_macro_f1), numeric=True),
            Cell(number(f.s_per_epoch), numeric=True),
            Cell(number(f.images_per_s, 0), numeric=True),
            Cell(number(f.first_step_s, spread=False), numeric=True),
            Cell(status, "warn" if status != "measured" else ""),
        )
    )


def _baseline_row(baseline: Baseline) -> Row:
    """The majority-class baseline as a row of the verdict table: what a model that learnt nothing scores."""
    return Row(
        (
            Cell("majority-class baseline", hint="always predicting " + baseline.describe()),
            Cell(DASH),
            Cell(pct_value(baseline.acc), numeric=True),
            Cell(DASH),
            Cell(pct_value(baseline.auc, 2), numeric=True),
            Cell(DASH),
            Cell(pct_value(baseline.balanced_acc), numeric=True),
            *(Cell(DASH) for _ in range(4)),
            Cell(f"always “{baseline.majority}”", "muted", "predicts " + baseline.describe()),
        ),
        kind="baseline",
    )


def reference_status(ref: Reference) -> str:
    """The status column, figure by figure where ACC and AUC differ: a figure marked "(unverified)" never
    sits beside a bare "verified-quoted" (``verified-quoted (acc)`` verifies the ACC only)."""
    if ref.acc_unverified:
        return "⚠ unverified"
    if ref.auc_unverified:
        return "ACC verified-quoted; ⚠ AUC unverified"
    return ref.status


def _reference_row(ref: Reference, same_model: bool) -> Row:
    label = f"published · {ref.paper} · {ref.model}" + ("" if same_model else " (other model)")
    acc = pct_value(ref.test_acc) + (" (unverified)" if ref.acc_unverified else "")
    auc = pct_value(ref.test_auc, 2) + (" (unverified)" if ref.auc_unverified else "")
    status_tone = "warn" if ref.acc_unverified or ref.auc_unverified else "muted"
    status = reference_status(ref)
    hint = "; ".join(x for x in (ref.source, ref.note) if x)
    return Row(
        (
            Cell(label, hint=hint),
            Cell(DASH),
            Cell(acc, "warn" if ref.acc_unverified else "", numeric=True),
            Cell(DASH),
            Cell(auc, "warn" if ref.auc_unverified else "", numeric=True),
            *(Cell(DASH) for _ in range(6)),  # the papers give ACC and AUC only, and no timings
            Cell(status, status_tone, hint=ref.note),
        ),
        kind="ref",
    )


VERDICT_HEADERS = (
    "Framework / source",
    "Seeds",
    "Test ACC %",
    "ACC 95% CI",
    "Test AUC %",
    "AUC 95% CI",
    "Balanced ACC %",
    "Macro F1 %",
    "s / epoch",
    "train img/s",
    "first step s",
    "Status",
)


def verdict_table(c: Comparison, refs: list[Reference], same_model: bool) -> Table:
    """The frameworks side by side, then the published figures for the same dataset (and model)."""
    best = max((f.test_acc.mean for f in c.frameworks if f.test_acc), default=None)
    rows = [_framework_row(f, best, len(c.frameworks) > 1, c.failed, c.baseline) for f in c.frameworks]
    if c.baseline is not None:
        rows.append(_baseline_row(c.baseline))
    rows += [_reference_row(r, same_model) for r in refs]
    return Table(VERDICT_HEADERS, tuple(rows), name="verdict")


def _comparison_notes(c: Comparison, refs: list[Reference], same_model: bool) -> list[Note]:
    key = c.key
    notes = []
    spread = c.acc_spread_points
    if spread is not None:
        verdict = "within" if c.within_criterion else "OUTSIDE"
        mark = "✓" if c.within_criterion else "✗"
        notes.append(
            Note(
                f"{mark} ACC spread across frameworks: {spread:.2f} points, {verdict} the "
                f"{SPREAD_CRITERION_POINTS:g}-point criterion.",
                "good" if c.within_criterion else "bad",
            )
        )
    notes += _baseline_notes(c)
    data = f"Data: {key.source.label(key.dataset)}."
    if key.source.note:
        data += f" Loader's note: {key.source.note}."
    if key.source.kind != "official":
        data += " Published figures are for the official files and compare only loosely."
    notes.append(Note(data, "info" if key.source.kind == "official" else "warn"))
    if c.variant_settings:
        name = f"Variant {c.variant_label}" if c.variant_label else "Without a variant name"
        notes.append(Note(f"{name}: {c.variant_settings}."))
    notes.append(Note(f"Recipe: {c.recipe}."))
    if c.machines > 1:
        notes.append(
            Note(f"These runs used {c.machines} different machines: compare their times with care.", "warn")
        )
    for run in c.failed:
        notes.append(
            Note(
                f"{run.framework} seed {run.seed} {run.status}: {run.failure_reason or 'no reason recorded'}",
                "warn",
            )
        )
    if key.input_size != key.size:
        notes.append(Note(f"Upsampled {key.size} → {key.input_size} px. {UPSAMPLED_NOTE}"))
    if refs and not same_model:
        notes.append(
            Note(
                f"No published figure for {key.model}; shown for context: the best published ACC of "
                f"each paper on {key.dataset} at {key.size_label} px.",
                "muted",
            )
        )
    if any(r.acc_unverified or r.auc_unverified for r in refs):
        notes.append(
            Note(
                "Figures marked unverified have not been checked against the paper: do not quote "
                "them as fact.",
                "warn",
            )
        )
    return notes


def _baseline_notes(c: Comparison) -> list[Note]:
    """Which runs do no better than the majority-class baseline, by framework and seed."""
    if c.baseline is None:
        return []
    notes = []
    for f in c.frameworks:
        weak = [r.seed for r in f.runs if no_better(metric(r, "test_acc"), c.baseline)]
        if weak:
            seeds = ", ".join(str(s) for s in weak)
            notes.append(
                Note(
                    f"⚠ {f.framework}: {len(weak)} of {len(f.runs)} run(s) (seed {seeds}) no better than the "
                    f"majority-class baseline ({pct_value(c.baseline.acc)} % ACC by predicting "
                    f"{c.baseline.describe()}).",
                    "bad",
                )
            )
    return notes


# Per-epoch figures of the stored history: key, plot label, what the caption says.
# The scale turns a stored fraction into the report's percent.
CURVES: tuple[tuple[str, str, str, float], ...] = (
    ("val_auc", "validation AUC (%)", "Validation AUC per epoch, % (the checkpoint-selection metric)", 100.0),
    ("train_loss", "training loss", "Training loss per epoch", 1.0),
)


def _curves(c: Comparison, key: str, scale: float = 1.0) -> dict[str, list[list[tuple[int, float]]]]:
    """Per framework, one (epoch, value) list per seed from the stored ``history``."""
    curves = {}
    for f in c.frameworks:
        seeds = []
        for run in f.runs:
            history = metric(run, "history") or []
            points = [
                (int(h["epoch"]), h[key] * scale)
                for h in history
                if "epoch" in h and isinstance(h.get(key), (int, float))
            ]
            if points:
                seeds.append(points)
        if seeds:
            curves[f.framework] = seeds
    return curves


def curve_figures(c: Comparison, names: _Names) -> list[Figure]:
    figures = []
    for key, label, caption, scale in CURVES:
        curves = _curves(c, key, scale)
        if not curves or max(len(seed) for seeds in curves.values() for seed in seeds) < 2:
            continue  # one epoch is a point, not a curve: the tables hold it
        title = label.removesuffix(" (%)")
        png = plots.training_curves(
            curves, title=f"{title[0].upper()}{title[1:]} per epoch · {c.title}", ylabel=label
        )
        several = any(len(seeds) > 1 for seeds in curves.values())
        spread = "mean over seeds, band = min–max" if several else "one seed per framework, so no band"
        figures.append(
            Figure(
                names(f"{c.title} {key}"),
                f"{caption}: {spread}.",
                png,
                f"{label} per epoch, {c.title}",
            )
        )
    return figures


def _class_legend(run: RunRecord) -> str:
    names = (metric(run, "test_per_class") or {}).get("name") or []
    short = [n if len(n) <= 28 else n[:27] + "…" for n in names]
    return "; ".join(f"{i} = {n}" for i, n in enumerate(short))


def _is_square_matrix(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(row, list) and len(row) == len(value) for row in value)
        and all(isinstance(x, (int, float)) for row in value for x in row)
    )


def _confusion_figure(c: Comparison, names: _Names) -> Figure | None:
    matrices, legend = [], ""
    for f in c.frameworks:
        run = f.best_run
        counts = metric(run, "test_confusion_matrix") if run else None
        # Multi-label tasks store one 2x2 matrix per label: a different picture, left to the store.
        if not _is_square_matrix(counts):
            continue
        matrices.append(plots.Matrix(f"{f.framework} (seed {run.seed})", counts))
        legend = legend or _class_legend(run)
    if not matrices:
        return None
    kind = "matrices" if len(matrices) > 1 else "matrix"
    png = plots.confusion_matrices(matrices, title=f"Test confusion {kind} · {c.title}")
    caption = "One run per framework (best validation AUC). Classes: " + (legend or "by index")
    return Figure(
        names(f"{c.title} confusion"), caption, png, f"Confusion matrices, {c.title}", wide=len(matrices) > 1
    )


def _run_rows(c: Comparison) -> Table:
    headers = (
        "Framework",
        "Seed",
        "Run",
        "Test ACC %",
        "ACC 95% CI",
        "Test AUC %",
        "AUC 95% CI",
        "Balanced ACC %",
        "Macro F1 %",
        "Best / run epochs",
        "s / epoch",
        "img/s",
        "Peak RSS",
        "Finished",
    )
    rows = []
    for f in c.frameworks:
        for run in f.runs:
            acc_ci = stored_ci(run, "test_acc_ci")
            auc_ci = stored_ci(run, "test_auc_ci")
            rss = timing(run, "peak_rss_bytes")
            rows.append(
                Row(
                    (
                        Cell(f.framework),
                        Cell(str(run.seed), numeric=True),
                        Cell(run.run_id[:8], "muted", run.run_id),
                        Cell(pct_value(metric(run, "test_acc")), numeric=True),
                        Cell(ci_text(acc_ci, with_seed=False), numeric=True),
                        Cell(pct_value(metric(run, "test_auc"), 2), numeric=True),
                        Cell(ci_text(auc_ci, 2, with_seed=False), numeric=True),
                        Cell(pct_value(metric(run, "test_balanced_accuracy")), numeric=True),
                        Cell(pct_value(metric(run, "test_macro_f1")), numeric=True),
                        Cell(
                            f"{metric(run, 'best_epoch') or DASH} / {metric(run, 'epochs_run') or DASH}",
                            numeric=True,
                        ),
                        Cell(_float_text(timing(run, "train_s_per_epoch")), numeric=True),
                        Cell(_float_text(timing(run, "steady_images_per_s"), 0), numeric=True),
                        Cell(
                            _float_text(rss / 2**30 if isinstance(rss, (int, float)) else None, 2, " GiB"),
                            numeric=True,
                        ),
                        Cell(_when(run.finished_at)),
                    )
                )
            )
    return Table(headers, tuple(rows), name="runs")


def _provenance_rows(c: Comparison) -> list[Note]:
    """The exact file of a custom source, so it can be traced (its hash in full)."""
    source = c.key.source
    if source.kind != "custom":
        return []
    return [
        Note(
            f"Custom data file: {source.path or '?'} · sha256 {source.sha256 or '?'}"
            + (f" · {source.note}" if source.note else ""),
            "warn",
        )
    ]


def recall_table(c: Comparison) -> Table | None:
    """Test recall per class (columns) and framework (rows), mean ± std over seeds, then the class sizes."""
    pooled = [(f.framework, f.class_recall) for f in c.frameworks if f.class_recall is not None]
    if not pooled:
        return None
    names = pooled[0][1].names
    rows = [
        Row((Cell(fw), *(Cell(pct(s), numeric=True) for s in recall.recall)))
        for fw, recall in pooled
        if recall.names == names  # one dataset, one class list; a run with other names is left out
    ]
    support = next((r.support for _, r in pooled if r.names == names and r.support), None)
    if support is not None:
        rows.append(
            Row((Cell("test images", "muted"), *(Cell(f"{n:,}", "muted", numeric=True) for n in support)))
        )
    what = "label (sensitivity)" if pooled[0][1].multi_label else "class"
    caption = f"Test recall per {what}, % (mean ± std over seeds)"
    return Table(("Framework", *names), tuple(rows), name="recall", caption=caption)


def comparison_section(c: Comparison, names: _Names, references: tuple[Reference, ...]) -> Section:
    refs, same_model = match_references(c.key.dataset, c.key.model, c.key.size, c.key.input_size, references)
    blocks: list = [verdict_table(c, refs, same_model), *_comparison_notes(c, refs, same_model)]
    recall = recall_table(c)
    if recall is not None:
        blocks.append(recall)
    blocks += curve_figures(c, names)
    agreement = trajectory.figure(c, names)  # per-step loss agreement between frameworks (issue 11)
    if agreement is not None:
        blocks.append(agreement)
    confusion = _confusion_figure(c, names)
    if confusion is not None:
        blocks.append(confusion)
    blocks.append(
        Details(f"Every run ({sum(len(f.runs) for f in c.frameworks)})", (_run_rows(c), *_provenance_rows(c)))
    )
    return Section(c.title, slug(c.title), blocks, level=3)


# ---- per dataset -------------------------------------------------------------------------------------------


def accuracy_figures(comparisons: Sequence[Comparison], dataset: str, names: _Names) -> list[Figure]:
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


def time_figure(comparisons: Sequence[Comparison], dataset: str, names: _Names) -> Figure | None:
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
    dataset: str, comparisons: list[Comparison], names: _Names, references: tuple[Reference, ...]
) -> Section:
    blocks: list = [*accuracy_figures(comparisons, dataset, names)]
    figure = time_figure(comparisons, dataset, names)
    if figure is not None:
        blocks.append(figure)
    blocks += [comparison_section(c, names, references) for c in comparisons]
    return Section(f"{dataset}", slug(f"dataset {dataset}"), blocks)


# ---- failures, environment, references ---------------------------------------------------------------------


def failures_section(runs: Sequence[RunRecord]) -> Section:
    unfinished = unfinished_runs(runs)
    if not unfinished:
        return Section("Failed and interrupted runs", "failures", [Note("None: every run finished.", "good")])
    headers = ("Run", "Kind", "Status", "Framework", "Model", "Dataset", "Size", "Seed", "Started", "Reason")
    rows = tuple(
        Row(
            (
                Cell(r.run_id[:8], "muted", r.run_id),
                Cell(r.kind),
                Cell(r.status, "bad" if r.status == "failed" else "warn"),
                Cell(r.framework or DASH),
                Cell(r.model or DASH),
                Cell(r.dataset or DASH),
                Cell(DASH if r.size is None else str(r.size), numeric=True),
                Cell(DASH if r.seed is None else str(r.seed), numeric=True),
                Cell(_when(r.created_at)),
                Cell(
                    r.failure_reason
                    or (
                        "still running (or its process died: `medbench results` can mark it)"
                        if r.status == "running"
                        else "no reason recorded"
                    )
                ),
            )
        )
        for r in unfinished
    )
    return Section("Failed and interrupted runs", "failures", [Table(headers, rows, name="failures")])


def environment_section(runs: Sequence[RunRecord]) -> Section:
    machines, stacks = group_environments(runs)
    if not machines:
        return Section("Environment", "environment", [Note("No run recorded its environment.", "muted")])
    m_headers = ("Host", "CPU", "Memory", "GPU", "OS", "Python", "medbench", "Runs", "Frameworks")
    m_rows = tuple(
        Row(
            (
                *(Cell(g.fields[k]) for k in ("host", "CPU", "memory", "GPU", "OS", "Python", "medbench")),
                Cell(str(len(g.runs)), numeric=True),
                Cell(", ".join(g.frameworks)),
            )
        )
        for g in machines
    )
    s_headers = (
        "Framework",
        "Used for",
        "Versions",
        "Device",
        "Threads",
        "Precision",
        "Thread variables",
        "Runs",
    )
    s_rows = tuple(
        Row(
            (
                Cell(g.fields["framework"]),
                Cell(", ".join(g.uses)),
                *(Cell(g.fields[k]) for k in ("versions", "device", "threads", "precision", "variables")),
                Cell(str(len(g.runs)), numeric=True),
            )
        )
        for g in stacks
    )
    blocks = [
        Table(
            m_headers,
            m_rows,
            name="machines",
            caption="Machines (runs with the same hardware and software base)",
        ),
        Table(
            s_headers,
            s_rows,
            name="stacks",
            caption="Framework stacks (versions, device and threads as applied)",
        ),
    ]
    if len(machines) > 1:
        blocks.insert(
            0,
            Note(
                f"Runs come from {len(machines)} different machine setups: compare times within one.", "warn"
            ),
        )
    return Section("Environment", "environment", blocks)


def references_section(datasets: Sequence[str], references: tuple[Reference, ...]) -> Section:
    rows_refs = [r for r in references if r.dataset in datasets]
    blocks: list = [Note(UPSAMPLED_NOTE), Note(MEDMNIST_PLUS_NOTE)]
    blocks += [Note(f"{paper}: {SOURCES[paper]}") for paper in SOURCES]
    blocks.append(
        Note(
            "Status: 'verified-quoted' was found in a source quoting the official value; "
            "'verified-quoted (acc)' only for the ACC; 'read from authors' figure' was read off the "
            "MedMNIST+ plots; 'unverified' must be checked against the paper before it is quoted.",
            "muted",
        )
    )
    if rows_refs:
        headers = ("Paper", "Model", "Dataset", "Size", "Test ACC %", "Test AUC %", "Status", "Note")
        rows = tuple(
            Row(
                (
                    Cell(r.paper, hint=r.source),
                    Cell(r.model),
                    Cell(r.dataset),
                    Cell(r.size_label),
                    Cell(pct_value(r.test_acc), "warn" if r.acc_unverified else "", numeric=True),
                    Cell(pct_value(r.test_auc, 2), "warn" if r.auc_unverified else "", numeric=True),
                    Cell(
                        ("⚠ " if r.acc_unverified or r.auc_unverified else "") + r.status,
                        "warn" if r.acc_unverified or r.auc_unverified else "muted",
                    ),
                    Cell(r.note),
                ),
                kind="ref",
            )
            for r in rows_refs
        )
        blocks.append(
            Details(
                f"All published figures for {', '.join(datasets)} ({len(rows)})",
                (Table(headers, rows, name="references"),),
            )
        )
    return Section("Published references", "references", blocks)


# ---- the document ------------------------------------------------------------------------------------------


def build_document(
    runs: Sequence[RunRecord],
    *,
    store_path: str | Path,
    filters: str = "all runs",
    generated_at: datetime | None = None,
    references: tuple[Reference, ...] | None = None,
    margin_points: float = 1.0,
) -> Document:
    """The whole report for ``runs`` (already filtered by the caller); ``margin_points``: the equivalence
    margin of the verdicts between frameworks."""
    references = load_references() if references is None else references
    generated_at = generated_at or datetime.now(timezone.utc)
    names = _Names()
    comparisons = compare(runs)
    by_dataset: dict[str, list[Comparison]] = defaultdict(list)
    for c in comparisons:
        by_dataset[c.key.dataset].append(c)
    datasets = sorted({r.dataset for r in runs if r.dataset})
    summaries = inference_summaries(runs)
    # the answer to the user's question comes before any table
    sections = [answer_section(runs, comparisons, margin_points=margin_points)] if comparisons else []
    if comparisons:
        glance = [glance_table(comparisons, summaries), *glance_notes(comparisons)]
        sections.append(Section("At a glance", "glance", glance))
    else:
        sections.append(
            Section("At a glance", "glance", [Note("No completed training run matches.", "warn")])
        )
    sections.append(how_to_read())
    for dataset in sorted(by_dataset):
        sections.append(dataset_section(dataset, by_dataset[dataset], names, references))
    bench = bench_section(runs, names)
    if bench is not None:
        sections.append(bench)
    sections += [failures_section(runs), environment_section(runs), references_section(datasets, references)]
    facts = header_facts(runs, store_path=str(store_path), filters=filters, generated_at=generated_at)
    return Document("medbench report: PyTorch vs JAX vs Keras on MedMNIST", facts, sections)
