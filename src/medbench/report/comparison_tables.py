"""The tables of one comparison: the verdict table (the frameworks side by side, the majority-class baseline
and the published figures), test recall per class, and every run."""

from __future__ import annotations

from collections.abc import Sequence

from medbench.report.aggregate import Comparison
from medbench.report.baseline import Baseline, no_better
from medbench.report.document import Cell, Row, Table
from medbench.report.formatting import CI_HINT, DASH, ci_text, float_text, number, pct, pct_value, when_text
from medbench.report.pooling import FrameworkResult, metric, stored_ci, timing
from medbench.report.references import Reference
from medbench.report.runtime_variant import framework_label
from medbench.results import RunRecord

# The accuracy columns, the same in the verdict table (pooled over seeds) and in the table of every run.
_ACCURACY_HEADERS = (
    "Test ACC %",
    "ACC 95% CI",
    "Test AUC %",
    "AUC 95% CI",
    "Balanced ACC %",
    "Macro F1 %",
)


def _status_text(f: FrameworkResult, unfinished: Sequence[RunRecord]) -> str:
    """``measured``, or how many more runs of this framework failed or were interrupted."""
    lost = [r.status for r in unfinished if framework_label(r) == f.framework]  # tuned rows their own
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
    *_ACCURACY_HEADERS,
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


def runs_table(c: Comparison) -> Table:
    """Every run of the comparison, one row each: its seed, figures, timings and when it finished."""
    headers = (
        "Framework",
        "Seed",
        "Run",
        *_ACCURACY_HEADERS,
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
