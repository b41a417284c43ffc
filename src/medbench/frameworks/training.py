"""Training semantics every back-end's ``train.py`` shares, written once in numpy.

The reference is PyTorch: the loss is the batch *mean* (``F.cross_entropy`` with ``label_smoothing``, or
``F.binary_cross_entropy_with_logits`` over every element for multi-label tasks), and the optimizers are
``torch.optim.SGD`` / ``Adam`` (weight decay as L2 added to the gradient) and ``AdamW`` (decoupled decay),
with the learning rate given per step. JAX and Keras reproduce those formulas exactly (see their
``train.py``), so one step from the same weights on the same batch gives the same weights.
"""

from __future__ import annotations

import numpy as np

from medbench.errors import ConfigError
from medbench.frameworks.base import LossName


def check_recipe(loss: LossName, label_smoothing: float) -> None:
    """Rejects combinations the reference (PyTorch) does not define, before anything is compiled (the
    optimizer validated itself when it was made: :class:`~medbench.config.OptimizerConfig`)."""
    if loss not in ("cross_entropy", "bce_with_logits"):
        raise ConfigError(f"Unknown loss {loss!r}.", "Choose cross_entropy or bce_with_logits.")
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing={label_smoothing!r} must be in [0, 1).")
    if loss == "bce_with_logits" and label_smoothing:
        raise ConfigError(
            "label_smoothing is defined for cross_entropy only (as in PyTorch).",
            "Set it to 0 for multi-label.",
        )


def targets(labels: np.ndarray, loss: LossName) -> np.ndarray:
    """Class indices ``(N,)`` int64 for cross-entropy (MedMNIST stores ``(N, 1)``), float32 rows for BCE."""
    labels = np.asarray(labels)
    if loss == "bce_with_logits":
        return labels.astype(np.float32, copy=False)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ConfigError(
            f"cross_entropy needs one class index per image, got labels of shape {labels.shape}.",
            "Use bce_with_logits for multi-label tasks.",
        )
    return labels.astype(np.int64, copy=False)
