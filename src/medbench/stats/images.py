"""Paired tests on the same test images: do two models' predictions differ on this test set?

One test per metric, each on the official MedMNIST definitions (:mod:`medbench.metrics`):

- **ACC, single-label tasks**: McNemar's exact test on the images one model gets right and the other wrong
  (``statsmodels.stats.contingency_tables.mcnemar(exact=True)``).
- **AUC**: DeLong's test (DeLong, DeLong & Clarke-Pearson 1988), written here because no library in the stack
  has it, and the official AUC of a multi-class task is the *mean of one-vs-rest AUCs*, which the textbook
  two-class test does not cover. Each AUC is a Mann-Whitney statistic, asymptotically linear in per-image
  terms (DeLong's structural components ``V10``/``V01``, from midranks as in Sun & Xu 2014). The difference
  of the two models' mean AUCs is then a sum of one term per image, and its variance is estimated from those
  terms within each true class (the class counts held fixed, as DeLong holds the positives and negatives
  fixed). With one column (binary tasks) this is exactly DeLong's test. Multi-label tasks have no partition
  of the images into classes: the terms are then treated as i.i.d. over images (unconditional variance).
  A paired bootstrap would give the same answer on MedMNIST's test sets (checked in the tests) but costs
  hundreds of resamples of every column; DeLong is exact in its assumptions and instant.
- **ACC of multi-label tasks, balanced ACC and macro-F1**: a paired bootstrap over images (the same resampled
  images for both models), because these are not sums over images with a closed-form paired test; the
  p-value is the two-sided bootstrap one, ``2 * min(P(d* <= 0), P(d* >= 0))``.

Scores are probabilities as :func:`medbench.metrics.scores_from_logits` gives them; labels as stored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medbench.data.registry import Task

DEFAULT_BOOTSTRAP = 1000
_CHUNK = 200  # bootstrap resamples drawn at once: bounds memory at 200 x N indices


@dataclass(frozen=True)
class ImageTest:
    """A paired test of two models on the same test images; ``difference`` is metric(a) - metric(b)."""

    method: str
    difference: float
    p_value: float
    statistic: float | None = None
    ci_low: float | None = None  # 95% interval of the difference, when the method gives one
    ci_high: float | None = None
    n_images: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- predictions as the official metrics make them --------------------------------------------------------


def _task(task: Task | str) -> Task:
    return Task(task)


def labels_of(labels: np.ndarray, task: Task | str) -> np.ndarray:
    """(N,) class indices for single-label tasks, (N, L) 0/1 for multi-label tasks."""
    y = np.asarray(labels)
    if _task(task) is not Task.MULTI_LABEL and y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return y.astype(np.int64)


def hard_predictions(scores: np.ndarray, task: Task | str) -> np.ndarray:
    """Argmax for multi-class/ordinal; ``score > 0.5`` of the last column (binary) or of every label."""
    s = np.asarray(scores, dtype=np.float64)
    task = _task(task)
    if task is Task.MULTI_LABEL:
        return (s > 0.5).astype(np.int64)
    if task is Task.BINARY:
        return (_binary_column(s) > 0.5).astype(np.int64)
    return np.argmax(s, axis=1)


def _binary_column(s: np.ndarray) -> np.ndarray:
    if s.ndim == 2:
        return s[:, -1]  # the official rule: the last column is the positive class
    return s


def auc_columns(
    labels: np.ndarray, scores: np.ndarray, task: Task | str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (0/1 target, score) columns whose ROC AUCs the official AUC averages."""
    task = _task(task)
    y, s = labels_of(labels, task), np.asarray(scores, dtype=np.float64)
    if task is Task.BINARY:
        return [(y, _binary_column(s))]
    if task is Task.MULTI_LABEL:
        return [(y[:, k], s[:, k]) for k in range(s.shape[1])]
    return [((y == k).astype(np.int64), s[:, k]) for k in range(s.shape[1])]


# ---- McNemar -------------------------------------------------------------------------------------------


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> ImageTest:
    """McNemar's exact test on per-image correctness (booleans, same images in the same order)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    table = [[int(np.sum(a & b)), only_a], [only_b, int(np.sum(~a & ~b))]]
    # With no discordant image there is nothing to test: the two models agree on every image's correctness.
    p = 1.0 if only_a + only_b == 0 else float(mcnemar(table, exact=True).pvalue)
    return ImageTest(
        method="McNemar exact",
        difference=(only_a - only_b) / a.size,
        p_value=p,
        statistic=float(min(only_a, only_b)),
        n_images=int(a.size),
        note=f"{only_a} images right only for the first, {only_b} only for the second",
    )


# ---- DeLong --------------------------------------------------------------------------------------------


def _influence(target: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray]:
    """(AUC, per-image term): AUC - theta ~ sum of the terms, DeLong's structural components centred.

    ``V10`` of a positive is the share of negatives it outscores (ties half), ``V01`` of a negative the share
    of positives that outscore it; from midranks (Sun & Xu 2014): ``V10 = (R_all - R_pos) / n``.
    """
    from scipy.stats import rankdata

    pos, neg = target == 1, target == 0
    m, n = int(pos.sum()), int(neg.sum())
    if m == 0 or n == 0:
        raise ValueError("AUC is undefined for a column with no positive or no negative image")
    ranks = rankdata(score)
    v10 = (ranks[pos] - rankdata(score[pos])) / n
    v01 = 1.0 - (ranks[neg] - rankdata(score[neg])) / m
    auc = float(v10.mean())
    term = np.empty(score.shape[0])
    term[pos] = (v10 - auc) / m
    term[neg] = (v01 - auc) / n
    return auc, term


def _mean_auc_terms(labels, scores, task) -> tuple[float, np.ndarray]:
    columns = auc_columns(labels, scores, task)
    parts = [_influence(t, s) for t, s in columns]
    return float(np.mean([auc for auc, _ in parts])), np.mean([term for _, term in parts], axis=0)


def _strata(labels: np.ndarray, task: Task) -> np.ndarray:
    """The true class of each image (the variance is taken within each), or one stratum for multi-label."""
    if task is Task.MULTI_LABEL:
        return np.zeros(labels.shape[0], dtype=np.int64)
    return labels_of(labels, task)


def auc_variance(terms: np.ndarray, strata: np.ndarray) -> float:
    """Variance of a sum of per-image terms, estimated within strata: sum_c n_c/(n_c-1) sum (t - mean_c)^2."""
    total = 0.0
    for c in np.unique(strata):
        t = terms[strata == c]
        if t.size > 1:
            total += t.size / (t.size - 1) * float(np.sum((t - t.mean()) ** 2))
        else:
            total += float(t[0] ** 2)
    return total


def delong_test(
    labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, task: Task | str
) -> ImageTest:
    """DeLong's test of two models' official AUCs on the same images (see the module docstring)."""
    from scipy.stats import norm

    task = _task(task)
    auc_a, terms_a = _mean_auc_terms(labels, scores_a, task)
    auc_b, terms_b = _mean_auc_terms(labels, scores_b, task)
    diff = auc_a - auc_b
    var = auc_variance(terms_a - terms_b, _strata(labels, task))
    if var <= 0:
        # no spread to test a difference against, so it is not called significant: the paired terms differ
        # by a constant within each true class (for one column, that means equal ranks, so any difference
        # left is float rounding; it once gave p = 0 for such a difference)
        p, z, half = 1.0, None, 0.0
    else:
        z = diff / math.sqrt(var)
        p, half = float(2 * norm.sf(abs(z))), float(norm.ppf(0.975) * math.sqrt(var))
    columns = "one column" if task is Task.BINARY else "the mean of one AUC per class/label"
    return ImageTest(
        method="DeLong",
        difference=diff,
        p_value=p,
        statistic=z,
        ci_low=diff - half,
        ci_high=diff + half,
        n_images=int(np.asarray(labels).shape[0]),
        note=f"AUC {auc_a:.4f} vs {auc_b:.4f} ({columns})",
    )


# ---- metrics from hard predictions, fast enough to bootstrap ---------------------------------------------


def _confusions(cells: np.ndarray, idx: np.ndarray, n_cells: int) -> np.ndarray:
    """Counts of each cell in every resample: ``cells`` (N,) or (N, L), ``idx`` (B, N) -> (B, [L,] n_cells)."""
    picked = cells[idx]  # (B, N) or (B, N, L)
    if picked.ndim == 2:
        offset = np.arange(idx.shape[0])[:, None] * n_cells
        flat = np.bincount((picked + offset).ravel(), minlength=idx.shape[0] * n_cells)
        return flat.reshape(idx.shape[0], n_cells)
    b, _, n_labels = picked.shape
    offset = (np.arange(b)[:, None, None] * n_labels + np.arange(n_labels)[None, None, :]) * n_cells
    flat = np.bincount((picked + offset).ravel(), minlength=b * n_labels * n_cells)
    return flat.reshape(b, n_labels, n_cells)


def _from_confusion(cm: np.ndarray, metric: str) -> np.ndarray:
    """ACC, balanced ACC or macro-F1 of confusion matrices (..., C, C), rows true, columns predicted."""
    diag = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    true, pred = cm.sum(axis=-1).astype(np.float64), cm.sum(axis=-2).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "acc":
            return diag.sum(axis=-1) / cm.sum(axis=(-2, -1))
        if metric == "balanced_acc":  # mean recall over the classes present (scikit-learn's definition)
            recall = np.where(true > 0, diag / np.where(true > 0, true, 1), np.nan)
            return np.nanmean(recall, axis=-1)
        if metric == "macro_f1":  # F1 = 2 tp / (2 tp + fp + fn), 0 when undefined (zero_division=0)
            denom = true + pred
            return np.mean(np.where(denom > 0, 2 * diag / np.where(denom > 0, denom, 1), 0.0), axis=-1)
    raise ValueError(f"unknown metric {metric!r}")


def n_outputs(scores: np.ndarray, task: Task | str) -> int:
    """Classes of a single-label task (2 for binary), as the official metrics count them."""
    s = np.asarray(scores)
    return 2 if _task(task) is Task.BINARY else int(s.shape[1])


def _cells(labels: np.ndarray, pred: np.ndarray, task: Task, n_classes: int) -> tuple[np.ndarray, int]:
    """Each image's (true, predicted) cell index: y * C + p, per label (C = 2) for multi-label."""
    if task is Task.MULTI_LABEL:
        return labels * 2 + pred, 2
    return labels * n_classes + pred, n_classes


def metric_from_predictions(labels, pred, task: Task | str, metric: str, *, n_classes: int) -> float:
    """ACC, balanced ACC or macro-F1 of hard predictions, as :mod:`medbench.metrics` defines them (macro-F1
    averages over all ``n_classes``, a class never present nor predicted counting 0)."""
    task = _task(task)
    y = labels_of(labels, task)
    cells, c = _cells(y, np.asarray(pred, dtype=np.int64), task, n_classes)
    cm = _confusions(cells, np.arange(y.shape[0])[None, :], c * c)[0]
    if task is Task.MULTI_LABEL:
        per_label = cm.reshape(-1, 2, 2)
        if metric == "macro_f1":  # the F1 of each label's positive class, averaged over labels
            tp, fp, fn = per_label[:, 1, 1], per_label[:, 0, 1], per_label[:, 1, 0]
            denom = 2 * tp + fp + fn
            return float(np.mean(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)))
        return float(np.mean(_from_confusion(per_label, metric)))
    return float(_from_confusion(cm.reshape(c, c), metric))


def _bootstrap_metric(counts: np.ndarray, c: int, metric: str, multi_label: bool) -> np.ndarray:
    """A metric of each resample from its confusion counts (:func:`_confusions`)."""
    if not multi_label:
        return _from_confusion(counts.reshape(-1, c, c), metric)
    per_label = counts.reshape(counts.shape[0], counts.shape[1], 2, 2)
    if metric == "macro_f1":
        tp, fp, fn = per_label[..., 1, 1], per_label[..., 0, 1], per_label[..., 1, 0]
        denom = (2 * tp + fp + fn).astype(np.float64)
        return np.mean(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0), axis=-1)
    return np.mean(_from_confusion(per_label, metric), axis=-1)


BOOTSTRAPPED: tuple[str, ...] = ("acc", "balanced_acc", "macro_f1")


def paired_bootstrap_many(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    task: Task | str,
    metrics: tuple[str, ...] = BOOTSTRAPPED,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, ImageTest]:
    """Paired bootstrap over images of metric(a) - metric(b) for each of ``metrics`` (``acc``,
    ``balanced_acc``, ``macro_f1``), all from the same resamples: each resample's confusion matrices are
    counted once and every metric is read from them."""
    task = _task(task)
    y = labels_of(labels, task)
    pred_a, pred_b = hard_predictions(scores_a, task), hard_predictions(scores_b, task)
    k = n_outputs(scores_a, task)
    cells_a, c = _cells(y, pred_a, task, k)
    cells_b, _ = _cells(y, pred_b, task, k)
    multi = task is Task.MULTI_LABEL
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    diffs: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for start in range(0, n_boot, _CHUNK):
        idx = rng.integers(0, n, size=(min(_CHUNK, n_boot - start), n))
        counts_a, counts_b = _confusions(cells_a, idx, c * c), _confusions(cells_b, idx, c * c)
        for m in metrics:
            diffs[m].append(
                _bootstrap_metric(counts_a, c, m, multi) - _bootstrap_metric(counts_b, c, m, multi)
            )
    out = {}
    for m in metrics:
        observed = metric_from_predictions(y, pred_a, task, m, n_classes=k) - metric_from_predictions(
            y, pred_b, task, m, n_classes=k
        )
        d = np.concatenate(diffs[m])
        d = d[np.isfinite(d)]
        low, high = np.percentile(d, [2.5, 97.5]) if d.size else (math.nan, math.nan)
        out[m] = ImageTest(
            method=f"paired bootstrap ({n_boot})",
            difference=float(observed),
            p_value=_bootstrap_p(d),
            ci_low=float(low),
            ci_high=float(high),
            n_images=int(n),
        )
    return out


def paired_bootstrap(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    task: Task | str,
    metric: str,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> ImageTest:
    """Paired bootstrap over images of metric(a) - metric(b), for ``acc``, ``balanced_acc`` or ``macro_f1``."""
    return paired_bootstrap_many(labels, scores_a, scores_b, task, (metric,), n_boot=n_boot, seed=seed)[
        metric
    ]


def _bootstrap_p(d: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a zero difference; 1 when every resample is exactly 0 (no difference)."""
    if d.size == 0 or np.all(d == 0):
        return 1.0
    below, above = float(np.mean(d <= 0)), float(np.mean(d >= 0))
    return min(1.0, 2 * min(below, above))


# ---- one test per metric ----------------------------------------------------------------------------------


def image_tests(
    metrics: tuple[str, ...],
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    task: Task | str,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, ImageTest | str]:
    """The paired test of each of ``metrics`` (``acc``, ``auc``, ``balanced_acc``, ``macro_f1``) on these
    images, or for a metric whose test cannot run (AUC with a class absent) the reason as a string."""
    task = _task(task)
    out: dict[str, ImageTest | str] = {}
    boot = [
        m for m in metrics if m in ("balanced_acc", "macro_f1") or (m == "acc" and task is Task.MULTI_LABEL)
    ]
    if boot:
        out.update(
            paired_bootstrap_many(labels, scores_a, scores_b, task, tuple(boot), n_boot=n_boot, seed=seed)
        )
    if "acc" in metrics and task is not Task.MULTI_LABEL:
        y = labels_of(labels, task)
        out["acc"] = mcnemar_exact(
            hard_predictions(scores_a, task) == y, hard_predictions(scores_b, task) == y
        )
    if "auc" in metrics:
        try:
            out["auc"] = delong_test(labels, scores_a, scores_b, task)
        except ValueError as err:  # a class with no positive or no negative image: AUC is undefined
            out["auc"] = str(err)
    return out


def image_test(
    metric: str,
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    task: Task | str,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> ImageTest:
    """The paired test for one ``metric`` on these images (see :func:`image_tests`).

    Raises:
        ValueError: if the test cannot run (AUC undefined for a class).
    """
    result = image_tests((metric,), labels, scores_a, scores_b, task, n_boot=n_boot, seed=seed)[metric]
    if isinstance(result, str):
        raise ValueError(result)
    return result
