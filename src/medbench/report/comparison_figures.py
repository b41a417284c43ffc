"""The figures of one comparison: validation AUC and training loss per epoch, and the test confusion
matrices of each framework's best run."""

from __future__ import annotations

from medbench.report import plots
from medbench.report.aggregate import Comparison
from medbench.report.document import Figure
from medbench.report.formatting import FigureNames
from medbench.report.pooling import metric
from medbench.results import RunRecord

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


def confusion_figure(c: Comparison, names: FigureNames) -> Figure | None:
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
