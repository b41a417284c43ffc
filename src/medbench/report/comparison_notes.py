"""The notes under one comparison's verdict table: the ACC criterion, runs no better than the baseline, the
data source, the recipe, failed runs, and what the published figures beside it do and do not show."""

from __future__ import annotations

from medbench.report.aggregate import SPREAD_CRITERION_POINTS, Comparison
from medbench.report.baseline import no_better
from medbench.report.document import Note
from medbench.report.formatting import pct_value
from medbench.report.pooling import metric
from medbench.report.references import UPSAMPLED_NOTE, Reference


def comparison_notes(c: Comparison, refs: list[Reference], same_model: bool) -> list[Note]:
    """The notes under the verdict table; ``refs`` are the published rows it shows (of another model unless
    ``same_model``)."""
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


def provenance_notes(c: Comparison) -> list[Note]:
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
