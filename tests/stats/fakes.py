"""Fake training runs: store rows plus per-image predictions with exactly the accuracy asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medbench.metrics import evaluate
from medbench.results import ResultsStore
from medbench.stats.predictions import METRICS_KEY, save_predictions

N_IMAGES = 800
N_CLASSES = 4
LABELS = np.random.default_rng(0).integers(0, N_CLASSES, N_IMAGES)


def scores_with_accuracy(correct: np.ndarray, seed: int) -> np.ndarray:
    """Softmax-like scores that are right exactly on ``correct`` (a boolean mask over the test images)."""
    rng = np.random.default_rng(seed)
    scores = rng.random((N_IMAGES, N_CLASSES)) * 0.2
    predicted = np.where(correct, LABELS, (LABELS + 1) % N_CLASSES)
    scores[np.arange(N_IMAGES), predicted] += 1.0 + rng.random(N_IMAGES)
    return scores / scores.sum(axis=1, keepdims=True)


def correct_mask(accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(N_IMAGES, dtype=bool)
    mask[rng.choice(N_IMAGES, round(accuracy * N_IMAGES), replace=False)] = True
    return mask


def add_run(
    store: ResultsStore,
    root: Path,
    *,
    framework: str,
    model: str,
    seed: int,
    scores: np.ndarray,
    images_per_s: float = 1000.0,
    experiment: str = "fake",
) -> str:
    """One completed ``train`` row whose metrics are computed from ``scores``, as training does."""
    config = {
        "framework": framework,
        "seed": seed,
        "model": model,
        "data": {"dataset": "fakemnist", "size": 28},
        "recipe": {"epochs": 3, "batch_size": 32},
    }
    run_dir = root / f"{framework}-{model}-{seed}"
    run_dir.mkdir(parents=True)
    result = evaluate(LABELS, scores, "multi-class", from_logits=False).to_dict()
    metrics = {f"test_{k}": v for k, v in result.items()}
    metrics[METRICS_KEY] = save_predictions(run_dir, scores, LABELS[:, None], "multi-class")
    run_id = store.start_run(
        kind="train", config=config, framework=framework, model=model, dataset="fakemnist", size=28,
        seed=seed, experiment=experiment,
    )  # fmt: skip
    timings = {"steady_images_per_s": images_per_s, "train_s_per_epoch": N_IMAGES / images_per_s}
    store.finish_run(run_id, metrics=metrics, timings=timings, checkpoint_path=str(run_dir))
    return run_id


def build_store(path: Path) -> ResultsStore:
    """Three comparisons of torch against jax:

    - ``differs``: torch 85% vs jax 80% at each of 4 seeds (± 0.25 points): *different*; torch trains 2.5x
      faster.
    - ``same``: jax's predictions are torch's with one image flipped (± 0.125 points), 5 seeds: *equivalent*.
    - ``noisy``: differences of +2, -1.5 and +0.5 points over 3 seeds: *not enough evidence*.
    """
    store = ResultsStore(path / "results.sqlite")
    root = path / "runs"
    for seed in range(4):
        jitter = (seed % 2) * 0.0025
        torch = scores_with_accuracy(correct_mask(0.85 + jitter, 10 + seed), seed)
        jax = scores_with_accuracy(correct_mask(0.80 + jitter, 20 + seed), 100 + seed)
        add_run(
            store,
            root,
            framework="torch",
            model="differs",
            seed=seed,
            scores=torch,
            images_per_s=2000 + 20 * seed,
        )
        add_run(
            store, root, framework="jax", model="differs", seed=seed, scores=jax, images_per_s=800 - 10 * seed
        )
    for seed in range(5):
        mask = correct_mask(0.82 + 0.01 * seed, 30 + seed)
        other = mask.copy()
        other[seed] = not other[seed]  # one image of 800 flips
        add_run(
            store, root, framework="torch", model="same", seed=seed, scores=scores_with_accuracy(mask, seed)
        )
        add_run(
            store, root, framework="jax", model="same", seed=seed, scores=scores_with_accuracy(other, seed)
        )
    for seed, (acc_a, acc_b) in enumerate([(0.84, 0.82), (0.81, 0.825), (0.83, 0.825)]):
        a = scores_with_accuracy(correct_mask(acc_a, 40 + seed), seed)
        b = scores_with_accuracy(correct_mask(acc_b, 50 + seed), seed)
        add_run(store, root, framework="torch", model="noisy", seed=seed, scores=a)
        add_run(store, root, framework="jax", model="noisy", seed=seed, scores=b)
    return store
