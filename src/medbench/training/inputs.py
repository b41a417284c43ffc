"""What a run trains on: the data, its normalisation, the batches, the model's inputs and class weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from medbench.config import RunConfig


def load_data(config: RunConfig):
    from medbench.data.loading import load_dataset

    d = config.data
    return load_dataset(d.dataset, d.size, root=d.root, path=d.data_file)


def normalization_for(config: RunConfig, data) -> Any:
    """The normalisation every split shares: train statistics are computed once, from train only."""
    from medbench.data.transforms import Normalization

    if config.data.normalize == "dataset":
        return Normalization.from_images(data["train"].images)
    if config.data.normalize == "pretrained":
        from medbench.pretrained import get_pretrained

        return get_pretrained(config.model, config.finetune.pretrained).normalize
    return config.data.normalize


def make_batches(config: RunConfig, data, split: str, *, normalization, train: bool):
    from medbench.data.pipeline import make_pipeline

    d = config.data
    return make_pipeline(
        data,
        split,
        batch_size=config.recipe.batch_size if train else config.recipe.eval_batch_size,
        shuffle=train,
        seed=config.seed,
        normalize=normalization,
        resize_to=d.resize_to,
        resize_method=d.resize_method,
        to_rgb=d.to_rgb,
        augment=d.augment if train and d.augment.enabled else None,
        sampler=config.recipe.sampler if train else "shuffle",
    )


def model_inputs(config: RunConfig, info) -> dict[str, int]:
    return {
        "num_classes": info.n_classes,
        "in_channels": 3 if config.data.to_rgb else info.n_channels,
        "image_size": config.data.input_size,
    }


def class_weights_for(config: RunConfig, data) -> list[float] | None:
    """``balanced`` = n_samples / (n_classes * count), as scikit-learn's ``compute_class_weight``."""
    weights = config.recipe.class_weights
    if weights is None or data.multi_label:
        return None
    if weights != "balanced":
        return [float(w) for w in weights]
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(data["train"].labels).reshape(-1)
    classes = np.arange(data.info.n_classes)
    present = np.unique(labels)
    balanced = compute_class_weight("balanced", classes=present, y=labels)
    full = np.ones(len(classes))
    full[present] = balanced
    return full.tolist()


def train_label_counts(data) -> dict[str, Any]:
    """Images per class (positives per label for multi-label tasks) of the training split, so a report can
    show the majority-class baseline: the ACC of always predicting the most frequent training class."""
    labels = np.asarray(data["train"].labels)
    if data.multi_label:
        counts = labels.reshape(len(labels), -1).sum(axis=0)
    else:
        counts = np.bincount(labels.reshape(-1).astype(np.int64), minlength=data.info.n_classes)
    return {"n_samples": int(len(labels)), "per_class": [int(c) for c in counts]}
