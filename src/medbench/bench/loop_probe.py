"""The training probe's ``loop`` mode: medbench's own training loop, timed as the loop's clock sees it.

One epoch of ``steps`` steps of :func:`medbench.training.loop.train` on a synthetic file in the official
layout (no download, any size), with no train-split evaluation. The figure is images over the loop's
training time after the first step (``train_s - first_step_s``): the data pipeline, shared masks and the
loop's bookkeeping count, validation and checkpoints do not (the loop's ``Chrono`` pauses for them). Held
against the bare loop of :mod:`medbench.bench.train_probe` it is the harness overhead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medbench.bench.train_probe import is_multi_label
from medbench.config import RunConfig, parse_config


def measure_loop(config: RunConfig, *, steps: int, work: Path):
    """One epoch of ``steps`` steps of medbench's training loop on a synthetic file; returns (metrics,
    environment)."""
    from medbench.data.registry import get_dataset
    from medbench.results import ResultsStore
    from medbench.training.loop import train

    info = get_dataset(config.data.dataset)
    batch = config.recipe.batch_size
    data_file = write_synthetic_npz(
        work / "synthetic.npz", info, config.data.size, train=batch * steps, other=batch
    )
    raw = config.to_dict()
    raw["data"]["data_file"] = str(data_file)
    raw["recipe"].update(epochs=1, max_steps_per_epoch=steps, evaluate_train=False)
    store = ResultsStore(work / "loop.sqlite")
    run = store.get_run(train(parse_config(raw), run_dir=work / "loop", store=store, quiet=True))
    t = run.timings or {}
    rest = (t.get("train_s") or 0.0) - (t.get("first_step_s") or 0.0)
    images = (t.get("images") or 0) - batch
    metrics = {
        "images_per_s": images / rest if rest > 0 and images > 0 else None,
        "steady_images_per_s": t.get("steady_images_per_s"),  # the steps alone, the loop's clock
        "first_step_s": t.get("first_step_s"),
        "steps": t.get("steps"),
        "applied": ((run.environment or {}).get("framework") or {}).get("runtime"),
        "loop_timings": t,
    }
    return metrics, run.environment


def write_synthetic_npz(path: Path, info, size: int, *, train: int, other: int, seed: int = 0) -> Path:
    """A file in the official MedMNIST layout (uint8 images, integer labels) with random contents."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if info.n_channels == 1 else (size, size, info.n_channels)
    arrays = {}
    for split, n in (("train", train), ("val", other), ("test", other)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        if is_multi_label(info):
            arrays[f"{split}_labels"] = rng.integers(0, 2, (n, info.n_classes), dtype=np.uint8)
        else:
            # every class present, so metrics that need each class (AUC) are defined
            arrays[f"{split}_labels"] = (np.arange(n) % info.n_classes).reshape(n, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path
