"""One (dataset, size, model) comparison: the table beside the published figures, curves, confusion matrices,
every run, and the notes that explain them."""

from __future__ import annotations

from collections.abc import Sequence

from medbench.report import plots, trajectory
from medbench.report.aggregate import SPREAD_CRITERION_POINTS, Comparison
from medbench.report.baseline import Baseline, no_better
from medbench.report.document import Cell, Details, Figure, Note, Row, Section, Table
from medbench.report.formatting import (
    CI_HINT,
    DASH,
    FigureNames,
    ci_text,
    float_text,
    number,
    pct,
    pct_value,
    slug,
    when_text,
)
from medbench.report.pooling import FrameworkResult, metric, stored_ci, timing
from medbench.report.references import (
    UPSAMPLED_NOTE,
    Reference,
    match_references,
)
from medbench.results import RunRecord


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


def curve_figures(c: Comparison, names: FigureNames) -> list[Figure]:
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


def _confusion_figure(c: Comparison, names: FigureNames) -> Figure | None:
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
                        Cell(float_text(timing(run, "train_s_per_epoch")), numeric=True),
                        Cell(float_text(timing(run, "steady_images_per_s"), 0), numeric=True),
                        Cell(
                            float_text(rss / 2**30 if isinstance(rss, (int, float)) else None, 2, " GiB"),
                            numeric=True,
                        ),
                        Cell(when_text(run.finished_at)),
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


def comparison_section(c: Comparison, names: FigureNames, references: tuple[Reference, ...]) -> Section:
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
