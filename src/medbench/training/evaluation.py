"""Evaluation during and after training: logits of a split, official metrics and the validation loss, which
epoch is best, and the final metrics of the best checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from medbench.training.inputs import make_batches, train_label_counts
from medbench.training.run_folder import Progress


def predict_logits(predict, batches) -> tuple[np.ndarray, np.ndarray]:
    """Runs ``predict`` over every batch of an (unshuffled) pipeline; returns (logits, labels)."""
    logits, labels = [], []
    for images, y in batches:
        logits.append(np.asarray(predict(images), dtype=np.float32))
        labels.append(y)
    return np.concatenate(logits), np.concatenate(labels)


def evaluate_split(
    predict, batches, task, *, bootstrap: int = 0, seed: int = 0, class_names=None, on_predictions=None
) -> dict[str, Any]:
    """Official ACC/AUC and the extras of one split (an empty dict for an empty split).

    ``on_predictions(logits, labels)``, if given, receives the split's outputs (to keep them).
    """
    from medbench.loss import mean_loss
    from medbench.metrics import evaluate

    if batches.n_samples == 0:
        return {}
    logits, labels = predict_logits(predict, batches)
    if on_predictions is not None:
        on_predictions(logits, labels)
    result = evaluate(
        labels,
        logits,
        task,
        from_logits=True,
        bootstrap=bootstrap,
        seed=seed,
        class_names=class_names,
        on_missing="nan",
    )
    return {**result.to_dict(), "loss": mean_loss(labels, logits, task)}


# select_metric: the key of evaluate_split's result it reads, and whether a larger value is better
_SELECTION = {"val_auc": ("auc", True), "val_acc": ("acc", True), "val_loss": ("loss", False)}


def _selection_value(metrics: dict[str, Any], select: str) -> float:
    value = metrics.get(_SELECTION[select][0])
    return float("nan") if value is None else float(value)


def _is_better(value: float, best: float | None, select: str) -> bool:
    if best is None:
        return True
    return value > best if _SELECTION[select][1] else value < best


def update_best(progress: Progress, val: dict[str, Any], select: str, epoch: int) -> bool:
    if not val:  # no validation split: the last epoch is the one kept
        progress.best_epoch = epoch + 1
        return True
    value = _selection_value(val, select)
    if math.isnan(value):
        progress.epochs_without_improvement += 1
        return progress.best_metric is None
    if _is_better(value, progress.best_metric, select):
        progress.best_metric, progress.best_epoch = value, epoch + 1
        progress.epochs_without_improvement = 0
        return True
    progress.epochs_without_improvement += 1
    return False


def final_metrics(config, data, normalization, fw, trainer, info, *, run_dir: Path) -> dict[str, Any]:
    from medbench.metrics import scores_from_logits
    from medbench.stats.predictions import METRICS_KEY, save_predictions

    metrics: dict[str, Any] = {}

    def keep_test(logits, labels) -> None:  # per-image predictions: the paired tests between frameworks
        scores = scores_from_logits(logits, info.task)
        metrics[METRICS_KEY] = save_predictions(run_dir, scores, labels, info.task.value)

    splits = ("train", "val", "test") if config.recipe.evaluate_train else ("val", "test")
    for split in splits:
        batches = make_batches(config, data, split, normalization=normalization, train=False)
        result = evaluate_split(
            trainer.eval_logits,
            batches,
            info.task,
            bootstrap=1000 if split == "test" else 0,
            class_names=info.labels,
            on_predictions=keep_test if split == "test" else None,
        )
        for key, value in result.items():
            metrics[f"{split}_{key}"] = value
    metrics["train_label_counts"] = train_label_counts(data)
    return metrics
