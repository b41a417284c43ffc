"""A run's folder: what a resumed run continues from (``progress.json`` and the state of the last finished
epoch), the best weights, and ``checkpoint.json`` for ``evaluate`` and ``predict``."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from medbench.config import RunConfig
from medbench.errors import MedbenchError
from medbench.training.inputs import model_inputs

CHECKPOINT_META = "checkpoint.json"
BEST_WEIGHTS = "best"
STATE_DIR = "state"  # the training state of runs saved before progress.json named its folder
PROGRESS_FILE = "progress.json"


@dataclass
class Progress:
    """What a resumed run needs to continue exactly where it stopped (saved after every epoch).

    Together with the trainer's state folder (``state``: weights, optimizer and every random stream the
    framework draws from) this is the whole state of the loop: the batches are a pure function of
    (seed, epoch, index), the learning rate of the step count, so a resumed run repeats the uninterrupted one
    bit for bit.
    """

    epochs_done: int = 0
    step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    epochs_without_improvement: int = 0
    first_losses: list[float] = field(default_factory=list)  # the first steps' losses, to compare frameworks
    trajectory: list[float] = field(default_factory=list)  # the first recipe.trajectory_steps losses
    history: list[dict[str, float]] = field(default_factory=list)
    run_id: str | None = None  # the store row this folder belongs to: a resumed run keeps it
    state: str | None = None  # the folder (in the run folder) holding the state of the last finished epoch
    train_s: float = 0.0  # training seconds of the finished epochs, summed over every process that ran them

    def save(self, run_dir: Path) -> None:
        tmp = run_dir / (PROGRESS_FILE + ".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=1))
        os.replace(tmp, run_dir / PROGRESS_FILE)  # atomic: a crash never leaves half a file

    @classmethod
    def load(cls, run_dir: Path) -> Progress:
        path = run_dir / PROGRESS_FILE
        try:
            saved = json.loads(path.read_text())
            return cls(**saved)
        except (ValueError, TypeError) as err:
            raise MedbenchError(
                f"{path} is damaged ({type(err).__name__}: {err}), so the run cannot be resumed from it.",
                "Train the run again from the start (its best checkpoint is still in the folder).",
            ) from None

    def state_dir(self, run_dir: Path) -> Path:
        return run_dir / (self.state or STATE_DIR)


def save_state(trainer, progress: Progress, run_dir: Path) -> None:
    """The epoch's training state in a folder of its own, then the progress that names it.

    progress.json is replaced atomically, so whenever a run dies it names a complete state of the epoch it
    counts; a state written after it (a crash between the two) is never read and is removed next time.
    """
    name = f"{STATE_DIR}-{progress.epochs_done:04d}"
    shutil.rmtree(run_dir / name, ignore_errors=True)  # a half-written one left by a crash
    trainer.save_state(run_dir / name)
    progress.state = name
    progress.save(run_dir)
    for old in run_dir.glob(f"{STATE_DIR}*"):
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def best_weights_path(run_dir: Path, must_exist: bool = True) -> Path:
    matches = sorted(p for p in run_dir.glob(BEST_WEIGHTS + ".*") if p.is_file())
    if matches:
        return matches[0]
    if must_exist:
        raise MedbenchError(f"No best checkpoint in {run_dir}.", "Train (or resume) the run first.")
    return run_dir / (BEST_WEIGHTS + ".missing")


def write_checkpoint_meta(
    config: RunConfig, data, normalization, run_dir: Path, framework: str, *, run_id: str
) -> None:
    """Everything ``evaluate`` and ``predict`` need to preprocess exactly as in training."""
    from medbench.data.transforms import Normalization

    norm = normalization if isinstance(normalization, Normalization) else None
    meta = {
        "run_id": run_id,
        "config": config.to_dict(),
        "framework": framework,
        "dataset": data.info.flag,
        "task": data.info.task.value,
        "class_names": list(data.info.labels),
        "in_channels": model_inputs(config, data.info)["in_channels"],
        "source_channels": data.info.n_channels,
        "image_size": config.data.size,
        "input_size": config.data.input_size,
        "normalization": {"mean": list(norm.mean), "std": list(norm.std)} if norm else config.data.normalize,
        "provenance": data.provenance.to_dict(),
    }
    (run_dir / CHECKPOINT_META).write_text(json.dumps(meta, indent=1))
