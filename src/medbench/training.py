"""One training run, framework-neutral: the loop every framework shares, run inside a worker process.

The loop owns everything that must be identical across frameworks: the batches (the shared numpy pipeline),
the learning rate of every step (:mod:`medbench.schedule`), when to evaluate, which checkpoint is "best",
early stopping, and how time is measured (:class:`medbench.timing.Chrono`). A framework only runs
``train_step`` and ``eval_logits`` (:class:`medbench.frameworks.base.Trainer`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medbench.config import RunConfig, parse_config
from medbench.errors import MedbenchError

CHECKPOINT_META = "checkpoint.json"
BEST_WEIGHTS = "best"
STATE_DIR = "state"  # the training state of runs saved before progress.json named its folder
PROGRESS_FILE = "progress.json"
FIRST_LOSSES = 20


class TrainingDiverged(MedbenchError):
    """The loss became NaN or infinite."""


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


# ---- data ---------------------------------------------------------------------------------------------------


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


def _load_initial_weights(config: RunConfig, fw, model) -> dict[str, Any] | None:
    """Pretrained weights (backbone only, a fresh head) or a full ``init_weights`` checkpoint, if any."""
    if config.finetune.pretrained:
        from medbench.frameworks.families import resolve_model
        from medbench.pretrained import load_pretrained, resolve_pretrained

        path = resolve_pretrained(config.model, config.finetune.pretrained, path=config.init_weights)
        family, _ = resolve_model(config.model, config.model_options)
        return load_pretrained(fw, model, path, family=family)
    if config.init_weights is not None:
        from medbench.frameworks.checkpoints import load_torchvision_checkpoint

        load_torchvision_checkpoint(fw, model, config.init_weights)
        return {"path": str(config.init_weights)}
    return None


def _shared_start(config: RunConfig, fw, model) -> dict[str, Any]:
    """With ``init = "shared"``, the reference draw of the seed replaces the framework's own (a pretrained
    backbone or ``init_weights`` are loaded over it afterwards, so a fresh head is the shared draw too)."""
    if config.init != "shared":
        return {"init": "native"}
    if config.init_weights is not None and not config.finetune.pretrained:
        return {"init": "init_weights"}  # every tensor comes from the checkpoint: nothing to draw
    from medbench.frameworks.initialization import apply_shared_init

    return apply_shared_init(
        fw, model, config.model, config.model_options, seed=config.seed, image_size=config.data.input_size
    )


def _noise_stream(config: RunConfig, fw, model):
    """The shared dropout/stochastic-depth masks of every step (``noise = "shared"``), or ``None``.

    The model's noise layers are checked against the family's sites first, so a mask never goes unused.
    """
    if config.noise != "shared":
        return None
    from medbench.data.noise import NoiseStream
    from medbench.frameworks.families import resolve_model
    from medbench.frameworks.noise import check_sites, noise_sites

    family, options = resolve_model(config.model, config.model_options)
    sites = noise_sites(family, options, image_size=config.data.input_size)
    check_sites(fw.noise_layers(model), sites, framework=fw.name)
    return NoiseStream(sites, config.seed) if sites else None


class FinetunePlanner:
    """The fine-tuning plan of every epoch (:mod:`medbench.finetune`), from the model's parameter names."""

    def __init__(self, config: RunConfig, state: dict[str, Any]):
        from medbench.frameworks.families import resolve_model

        self._config = config.finetune
        self._keys = list(state)
        self._sizes = {k: int(np.size(v)) for k, v in state.items()}
        self._family = resolve_model(config.model, config.model_options)[0]

    def plan(self, epoch: int):
        from medbench.finetune import plan_for_epoch

        return plan_for_epoch(self._family, self._keys, self._config, epoch)

    def changes_at(self, epoch: int) -> bool:
        return epoch > 0 and self.plan(epoch) != self.plan(epoch - 1)

    def describe(self, epoch: int) -> dict[str, Any]:
        from medbench.finetune import describe

        return describe(self.plan(epoch), self._sizes)


# ---- evaluation -------------------------------------------------------------------------------------------


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


# ---- the loop ---------------------------------------------------------------------------------------------


def train(
    config: RunConfig,
    *,
    run_dir: Path,
    store,
    run_id: str | None = None,
    experiment: str | None = None,
    resume: bool = False,
    quiet: bool = False,
) -> str:
    """Trains ``config`` in this process, records it in ``store``, and returns the run id."""
    from medbench.environment import capture_environment
    from medbench.frameworks import get_framework
    from medbench.frameworks.base import OptimizerSpec, RuntimeSettings
    from medbench.schedule import Schedule
    from medbench.timing import Chrono, memory_usage

    chrono = Chrono()
    chrono.start()
    run_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress.load(run_dir) if resume and (run_dir / PROGRESS_FILE).exists() else Progress()
    # The row exists before anything can fail, so every failure (a missing file included) is a result.
    run_id = _open_row(store, config, run_id=run_id or progress.run_id, experiment=experiment, resume=resume)
    progress.run_id = run_id
    try:
        with chrono.phase("framework_import"):
            fw = get_framework(config.framework)
            r = config.runtime
            applied = fw.configure(
                RuntimeSettings(
                    threads=r.threads,
                    interop_threads=r.interop_threads,
                    device=r.device,
                    precision=r.precision,
                    channels_last=r.channels_last,
                )
            )
        chrono.sync = fw.synchronize
        with chrono.phase("data_load"):
            data = load_data(config)
            normalization = normalization_for(config, data)
            train_batches = make_batches(config, data, "train", normalization=normalization, train=True)
            val_batches = make_batches(config, data, "val", normalization=normalization, train=False)
        info = data.info
        fw_env = {"name": fw.name, "versions": fw.versions(), "device": fw.device_name(), "runtime": applied}
        store.update_run(
            run_id,
            environment=capture_environment(extra={"framework": fw_env}),
            dataset_provenance=data.provenance.to_dict(),
        )
        with chrono.phase("model_build"):
            model = fw.build_model(
                config.model, seed=config.seed, **model_inputs(config, info), **config.model_options
            )
            start = _shared_start(config, fw, model)
            init_record = _load_initial_weights(config, fw, model)
            noise = _noise_stream(config, fw, model)
            tuning = FinetunePlanner(config, fw.state_dict(model))
            # the plan in force when the saved state was written (the last finished epoch), so it loads
            plan = tuning.plan(max(progress.epochs_done - 1, 0))
            opt = config.recipe.optimizer
            weights = class_weights_for(config, data)
            trainer = fw.create_trainer(
                model,
                optimizer=OptimizerSpec(
                    name=opt.name,
                    lr=opt.lr,
                    momentum=opt.momentum,
                    nesterov=opt.nesterov,
                    weight_decay=opt.weight_decay,
                    betas=opt.betas,
                    eps=opt.eps,
                ),
                loss="bce_with_logits" if data.multi_label else "cross_entropy",
                label_smoothing=config.recipe.label_smoothing,
                class_weights=weights,
                plan=plan,
            )
            if progress.epochs_done:
                trainer.load_state(progress.state_dir(run_dir))
        _write_checkpoint_meta(config, data, normalization, run_dir, fw.name, run_id=run_id)
        steps_per_epoch = _steps_per_epoch(config, train_batches)
        schedule = Schedule(
            base_lr=config.recipe.optimizer.lr,
            total_steps=config.recipe.epochs * steps_per_epoch,
            kind=config.recipe.schedule.kind,
            milestones=config.recipe.schedule.milestones,
            gamma=config.recipe.schedule.gamma,
            warmup_steps=round(config.recipe.schedule.warmup_epochs * steps_per_epoch),
            min_lr=config.recipe.schedule.min_lr,
            steps_per_epoch=steps_per_epoch,
        )
        _loop(
            config,
            trainer,
            tuning,
            fw,
            train_batches,
            val_batches,
            schedule,
            steps_per_epoch,
            chrono,
            progress,
            run_dir,
            info,
            quiet=quiet,
            noise=noise,
        )
        with chrono.phase("final_evaluation"):
            fw.load_weights(trainer.model, _best_weights_path(run_dir))
            metrics = _final_metrics(config, data, normalization, fw, trainer, info, run_dir=run_dir)
        chrono.stop()
        metrics["best_epoch"] = progress.best_epoch
        metrics["epochs_run"] = progress.epochs_done
        metrics["history"] = progress.history
        metrics["first_losses"] = progress.first_losses
        metrics["trajectory"] = progress.trajectory
        metrics["randomness"] = {
            **start,
            "noise": config.noise,
            "noise_sites": noise.describe() if noise else {},
        }
        metrics["finetune"] = {**tuning.describe(0), "init_weights": init_record}
        timings = {**chrono.summary(), **_per_epoch(chrono, progress), **memory_usage(_gpu_peak(fw))}
        store.finish_run(run_id, metrics=metrics, timings=timings, checkpoint_path=str(run_dir))
        return run_id
    except KeyboardInterrupt:
        store.fail_run(
            run_id,
            f"interrupted by the user after {progress.epochs_done} epoch(s); best checkpoint kept in {run_dir}; "
            f"continue with `medbench train --resume {run_dir}`",
            status="interrupted",
            timings=chrono.summary(),
        )
        raise
    except BaseException as err:
        store.fail_run(run_id, failure_reason(err), timings=chrono.summary())
        raise


def _open_row(store, config: RunConfig, *, run_id: str | None, experiment: str | None, resume: bool) -> str:
    """A new ``running`` row, or, when resuming, the run's own row opened again (one row per run)."""
    from medbench.results import RunNotFoundError

    if resume and run_id is not None:
        try:
            store.reopen_run(run_id)
            return run_id
        except RunNotFoundError:
            pass  # resumed into another store: the run gets its row there, under its own id
    return store.start_run(
        run_id=run_id,
        kind="train",
        config=config.to_dict(),
        framework=config.framework,
        model=config.model,
        dataset=config.data.dataset,
        size=config.data.input_size,
        seed=config.seed,
        experiment=experiment,
    )


def _steps_per_epoch(config: RunConfig, batches) -> int:
    n = len(batches)
    if config.recipe.max_steps_per_epoch:
        n = min(n, config.recipe.max_steps_per_epoch)
    if n == 0:
        raise MedbenchError("The train split is empty.", "Use a data file with training images.")
    return n


def _loop(
    config,
    trainer,
    tuning,
    fw,
    train_batches,
    val_batches,
    schedule,
    steps_per_epoch,
    chrono,
    progress,
    run_dir,
    info,
    *,
    quiet: bool,
    noise=None,
) -> None:
    from medbench.progress import EpochProgress

    select = config.recipe.select_metric
    patience = config.recipe.early_stopping_patience
    carried_s = progress.train_s  # training time of the epochs earlier processes finished
    bar = EpochProgress(config.recipe.epochs, steps_per_epoch, title=_title(config), quiet=quiet)
    with bar:
        for epoch in range(progress.epochs_done, config.recipe.epochs):
            if patience and progress.epochs_without_improvement >= patience:
                break  # a resumed run that had already stopped early (then died in its final evaluation)
            if tuning.changes_at(epoch):  # gradual unfreezing: another stage joins
                trainer.set_plan(tuning.plan(epoch))
                bar.note(f"epoch {epoch + 1}: training {', '.join(tuning.describe(epoch)['groups'])}")
            bar.start_epoch(epoch)
            losses = []
            for i, (images, labels) in enumerate(train_batches.epoch(epoch)):
                if i >= steps_per_epoch:
                    break
                # shared noise: a pure function of (seed, epoch, step), drawn outside the timed step
                masks = None if noise is None else noise.masks(epoch, i, len(images))
                with chrono.step(len(images)):
                    result = trainer.train_step(images, labels, lr=schedule(progress.step), noise=masks)
                if not math.isfinite(result.loss):
                    raise TrainingDiverged(
                        f"Training diverged: the loss is {result.loss} at epoch {epoch + 1}, step {i + 1}.",
                        "Lower the learning rate (recipe.optimizer.lr), or try precision fp32.",
                    )
                losses.append(result.loss)
                if len(progress.first_losses) < FIRST_LOSSES:
                    progress.first_losses.append(result.loss)
                if len(progress.trajectory) < config.recipe.trajectory_steps:
                    progress.trajectory.append(result.loss)
                progress.step += 1
                bar.step(result.loss, len(images))
            with chrono.phase("evaluation"):
                val = evaluate_split(trainer.eval_logits, val_batches, info.task)
            record = {
                "epoch": epoch + 1,
                "train_loss": float(np.mean(losses)),
                "lr": schedule(progress.step - 1),
                "trainable_params": tuning.describe(epoch)["trainable_params"],
            }
            record.update({f"val_{k}": val[k] for k in ("acc", "auc", "loss") if k in val})
            progress.history.append(record)
            improved = _update_best(progress, val, select, epoch)
            with chrono.phase("checkpoint"):
                if improved or not _best_weights_path(run_dir, must_exist=False).exists():
                    fw.save_weights(trainer.model, run_dir / BEST_WEIGHTS)
                progress.epochs_done = epoch + 1
                progress.train_s = carried_s + chrono.train_s
                _save_state(trainer, progress, run_dir)
            bar.end_epoch(record)
            if patience and progress.epochs_without_improvement >= patience:
                bar.note(f"early stop: no better {select} in {patience} epochs")
                break


def _save_state(trainer, progress: Progress, run_dir: Path) -> None:
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


def _update_best(progress: Progress, val: dict[str, Any], select: str, epoch: int) -> bool:
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


def _final_metrics(config, data, normalization, fw, trainer, info, *, run_dir: Path) -> dict[str, Any]:
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


def train_label_counts(data) -> dict[str, Any]:
    """Images per class (positives per label for multi-label tasks) of the training split, so a report can
    show the majority-class baseline: the ACC of always predicting the most frequent training class."""
    labels = np.asarray(data["train"].labels)
    if data.multi_label:
        counts = labels.reshape(len(labels), -1).sum(axis=0)
    else:
        counts = np.bincount(labels.reshape(-1).astype(np.int64), minlength=data.info.n_classes)
    return {"n_samples": int(len(labels)), "per_class": [int(c) for c in counts]}


def _per_epoch(chrono, progress: Progress) -> dict[str, float]:
    """Training time per epoch over every epoch the run trained, in this process and in earlier ones."""
    epochs = max(1, progress.epochs_done)
    return {"train_s_per_epoch": progress.train_s / epochs, "train_s_all_processes": progress.train_s}


def _gpu_peak(fw):
    return getattr(fw, "gpu_peak_bytes", None)


def _best_weights_path(run_dir: Path, must_exist: bool = True) -> Path:
    matches = sorted(p for p in run_dir.glob(BEST_WEIGHTS + ".*") if p.is_file())
    if matches:
        return matches[0]
    if must_exist:
        raise MedbenchError(f"No best checkpoint in {run_dir}.", "Train (or resume) the run first.")
    return run_dir / (BEST_WEIGHTS + ".missing")


def _title(config: RunConfig) -> str:
    return f"{config.framework} {config.model} {config.data.dataset} {config.data.input_size}px seed {config.seed}"


def _write_checkpoint_meta(
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


def failure_reason(err: BaseException) -> str:
    """One line that says what went wrong, recognising out-of-memory errors from every framework."""
    text = f"{type(err).__name__}: {err}".strip()
    lowered = text.lower()
    if (
        isinstance(err, MemoryError)
        or "out of memory" in lowered
        or "resource_exhausted" in lowered
        or "oom" in lowered.split()
    ):
        return f"out of memory: {text[:300]}"
    if isinstance(err, MedbenchError):
        return str(err)
    return text[:500]


# ---- the worker's entry point -----------------------------------------------------------------------------


def run_training_job(job: dict[str, Any]) -> int:
    """Called by :mod:`medbench.worker` in a fresh process; returns the exit code."""
    from medbench.results import ResultsStore

    config = parse_config(job["config"])
    quiet = bool(os.environ.get("MEDBENCH_QUIET"))
    try:
        train(
            config,
            run_dir=Path(job["run_dir"]),
            store=ResultsStore(job["store"]),
            run_id=job["run_id"],
            experiment=job.get("experiment"),
            resume=job.get("resume", False),
            quiet=quiet,
        )
        return 0
    except KeyboardInterrupt:
        return 130
    except MedbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        traceback.print_exc()
        print(f"error: {failure_reason(err)}", file=sys.stderr)
        return 1
