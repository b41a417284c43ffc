"""One training run, framework-neutral: the loop every framework shares, run inside a worker process.

The loop owns everything that must be identical across frameworks: the batches (the shared numpy pipeline),
the learning rate of every step (:mod:`medbench.schedule`), when to evaluate, which checkpoint is "best",
early stopping, and how time is measured (:class:`medbench.timing.Chrono`). A framework only runs
``train_step`` and ``eval_logits`` (:class:`medbench.frameworks.base.Trainer`).

Modules: :mod:`~medbench.training.inputs` (data, batches, model inputs), :mod:`~medbench.training.start`
(initial weights, shared init and noise, fine-tuning plans), :mod:`~medbench.training.loop` (the run in named
steps), :mod:`~medbench.training.evaluation`, :mod:`~medbench.training.run_folder` (what a resume reads) and
:mod:`~medbench.training.job` (the worker's entry point).
"""

from medbench.training.evaluation import evaluate_split, predict_logits
from medbench.training.inputs import (
    class_weights_for,
    load_data,
    make_batches,
    model_inputs,
    normalization_for,
    train_label_counts,
)
from medbench.training.job import run_training_job
from medbench.training.loop import TrainingDiverged, train
from medbench.training.run_folder import BEST_WEIGHTS, CHECKPOINT_META, PROGRESS_FILE, Progress

__all__ = [
    "BEST_WEIGHTS",
    "CHECKPOINT_META",
    "PROGRESS_FILE",
    "Progress",
    "TrainingDiverged",
    "class_weights_for",
    "evaluate_split",
    "load_data",
    "make_batches",
    "model_inputs",
    "normalization_for",
    "predict_logits",
    "run_training_job",
    "train",
    "train_label_counts",
]
