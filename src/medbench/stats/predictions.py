"""The per-image test predictions every training run keeps, so two runs can be compared image by image.

One compressed npz in the run folder (``test_predictions.npz``): ``scores`` (N, C) float32 probabilities
as the official metrics use them, ``labels`` as stored in the dataset, and the ``task``. float32 and not
float16: float16 has about three significant digits, which near a probability of 1 makes many images tie
and moves a stored AUC by up to ~1e-3, so DeLong's test would no longer be about the AUC in the results
table. Compressed float32 is small anyway: PathMNIST's 7,180 test images x 9 classes are about 0.2 MB.

The run's row records the file name, its SHA-256 and N under ``metrics["test_predictions"]``, so a file
swapped or truncated later is recognised instead of silently compared.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PREDICTIONS_FILE = "test_predictions.npz"
METRICS_KEY = "test_predictions"


@dataclass(frozen=True, eq=False)
class Predictions:
    scores: np.ndarray
    labels: np.ndarray
    task: str

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_predictions(run_dir: Path, scores: np.ndarray, labels: np.ndarray, task: str) -> dict[str, Any]:
    """Writes the file (atomically) and returns the record for the run's metrics."""
    run_dir = Path(run_dir)
    target = run_dir / PREDICTIONS_FILE
    tmp = run_dir / (PREDICTIONS_FILE + ".tmp.npz")
    small = np.uint8 if np.asarray(labels).max(initial=0) < 256 else np.int32
    np.savez_compressed(
        tmp, scores=np.asarray(scores, dtype=np.float32), labels=np.asarray(labels).astype(small), task=task
    )
    os.replace(tmp, target)
    return {"file": PREDICTIONS_FILE, "sha256": _sha256(target), "n": int(np.asarray(labels).shape[0])}


def predictions_path(run) -> Path | None:
    """Where a stored run's predictions file is, from its checkpoint folder (None if it recorded none)."""
    record = (run.metrics or {}).get(METRICS_KEY)
    if not isinstance(record, dict) or not run.checkpoint_path:
        return None
    return Path(run.checkpoint_path) / str(record.get("file") or PREDICTIONS_FILE)


def load_predictions(run) -> tuple[Predictions | None, str]:
    """(predictions, "") or (None, why not): never raises for a missing, moved or changed file."""
    path = predictions_path(run)
    if path is None:
        return None, "no per-image predictions stored (run predates them)"
    if not path.is_file():
        return None, f"predictions file missing: {path}"
    record = run.metrics[METRICS_KEY]
    if record.get("sha256") and _sha256(path) != record["sha256"]:
        return None, f"predictions file changed since the run: {path}"
    with np.load(path, allow_pickle=False) as data:
        return Predictions(data["scores"], data["labels"], str(data["task"])), ""
