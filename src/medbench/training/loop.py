"""The training loop every framework shares, in named steps: open the run's row, create its state, train the
epochs (each: steps, validation, checkpoint), evaluate the best checkpoint, record the result."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medbench.config import RunConfig
from medbench.errors import MedbenchError, failure_reason
from medbench.training.evaluation import evaluate_split, final_metrics, update_best
from medbench.training.inputs import (
    class_weights_for,
    load_data,
    make_batches,
    model_inputs,
    normalization_for,
)
from medbench.training.profiling import StepProfiler
from medbench.training.run_folder import (
    BEST_WEIGHTS,
    PROGRESS_FILE,
    Progress,
    best_weights_path,
    save_state,
    write_checkpoint_meta,
)
from medbench.training.start import FinetunePlanner, load_initial_weights, noise_stream, shared_start

FIRST_LOSSES = 20  # the first steps' losses, kept with every run to compare frameworks at a glance


class TrainingDiverged(MedbenchError):
    """The loss became NaN or infinite."""


@dataclass
class RunState:
    """Everything one run holds while it trains, built once by :func:`create_run_state`."""

    config: RunConfig
    run_dir: Path
    progress: Progress
    chrono: Any  # medbench.timing.Chrono
    fw: Any
    data: Any
    normalization: Any
    train_batches: Any
    val_batches: Any
    trainer: Any
    tuning: FinetunePlanner
    noise: Any  # medbench.data.noise.NoiseStream, or None
    schedule: Any  # medbench.schedule.Schedule
    steps_per_epoch: int
    start: dict[str, Any]  # how the weights were initialised (shared draw, native, checkpoint)
    init_record: dict[str, Any] | None  # pretrained or init_weights loaded over them
    profiler: StepProfiler  # where a step's time goes, taken once a few steps in


def train(
    config: RunConfig,
    *,
    run_dir: Path,
    store,
    run_id: str | None = None,
    experiment: str | None = None,
    resume: bool = False,
    quiet: bool = False,
    profile: bool = False,
) -> str:
    """Trains ``config`` in this process, records it in ``store``, and returns the run id.

    ``profile``: also list the framework profiler's costliest operations of a step (``profile.json`` in
    ``run_dir``); it changes no result, so it is no part of the config (nor of its hash).
    """
    from medbench.timing import Chrono

    chrono = Chrono()
    chrono.start()
    run_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress.load(run_dir) if resume and (run_dir / PROGRESS_FILE).exists() else Progress()
    # The row exists before anything can fail, so every failure (a missing file included) is a result.
    run_id = open_row(store, config, run_id=run_id or progress.run_id, experiment=experiment, resume=resume)
    progress.run_id = run_id
    try:
        state = create_run_state(
            config, run_dir=run_dir, progress=progress, chrono=chrono, store=store, profile=profile
        )
        train_epochs(state, quiet=quiet)
        with chrono.phase("final_evaluation"):
            state.fw.load_weights(state.trainer.model, best_weights_path(run_dir))
            metrics = final_metrics(
                config,
                state.data,
                state.normalization,
                state.fw,
                state.trainer,
                state.data.info,
                run_dir=run_dir,
            )
        chrono.stop()
        record_result(state, store=store, metrics=metrics)
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


def open_row(store, config: RunConfig, *, run_id: str | None, experiment: str | None, resume: bool) -> str:
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


# ---- creating the run state ---------------------------------------------------------------------------------


def create_run_state(
    config: RunConfig, *, run_dir: Path, progress: Progress, chrono, store, profile: bool = False
) -> RunState:
    """The framework configured, the data and batches, the model and its trainer (restored when resuming),
    the schedule; each phase timed apart, the environment recorded in the run's row."""
    from medbench.environment import capture_environment
    from medbench.frameworks import get_framework

    with chrono.phase("framework_import"):
        fw = get_framework(config.framework)
        applied = fw.configure(config.runtime)
    chrono.sync = fw.synchronize
    with chrono.phase("data_load"):
        data = load_data(config)
        normalization = normalization_for(config, data)
        train_batches = make_batches(config, data, "train", normalization=normalization, train=True)
        val_batches = make_batches(config, data, "val", normalization=normalization, train=False)
    fw_env = {"name": fw.name, "versions": fw.versions(), "device": fw.device_name(), "runtime": applied}
    store.update_run(
        progress.run_id,
        environment=capture_environment(extra={"framework": fw_env}),
        dataset_provenance=data.provenance.to_dict(),
    )
    with chrono.phase("model_build"):
        model = fw.build_model(
            config.model, seed=config.seed, **model_inputs(config, data.info), **config.model_options
        )
        start = shared_start(config, fw, model)
        init_record = load_initial_weights(config, fw, model)
        noise = noise_stream(config, fw, model)
        tuning = FinetunePlanner(config, fw.state_dict(model))
        # the plan in force when the saved state was written (the last finished epoch), so it loads
        trainer = _create_trainer(config, fw, model, data, plan=tuning.plan(max(progress.epochs_done - 1, 0)))
        if progress.epochs_done:
            trainer.load_state(progress.state_dir(run_dir))
    write_checkpoint_meta(config, data, normalization, run_dir, fw.name, run_id=progress.run_id)
    steps_per_epoch = _steps_per_epoch(config, train_batches)
    return RunState(
        config=config,
        run_dir=run_dir,
        progress=progress,
        chrono=chrono,
        fw=fw,
        data=data,
        normalization=normalization,
        train_batches=train_batches,
        val_batches=val_batches,
        trainer=trainer,
        tuning=tuning,
        noise=noise,
        schedule=_schedule(config, steps_per_epoch),
        steps_per_epoch=steps_per_epoch,
        start=start,
        init_record=init_record,
        profiler=StepProfiler(fw, run_dir=run_dir, top_operations=profile),
    )


def _create_trainer(config: RunConfig, fw, model, data, *, plan):
    return fw.create_trainer(
        model,
        optimizer=config.recipe.optimizer,
        loss="bce_with_logits" if data.multi_label else "cross_entropy",
        label_smoothing=config.recipe.label_smoothing,
        class_weights=class_weights_for(config, data),
        plan=plan,
    )


def _steps_per_epoch(config: RunConfig, batches) -> int:
    n = len(batches)
    if config.recipe.max_steps_per_epoch:
        n = min(n, config.recipe.max_steps_per_epoch)
    if n == 0:
        raise MedbenchError("The train split is empty.", "Use a data file with training images.")
    return n


def _schedule(config: RunConfig, steps_per_epoch: int):
    from medbench.schedule import Schedule

    s = config.recipe.schedule
    return Schedule(
        base_lr=config.recipe.optimizer.lr,
        total_steps=config.recipe.epochs * steps_per_epoch,
        kind=s.kind,
        milestones=s.milestones,
        gamma=s.gamma,
        warmup_steps=round(s.warmup_epochs * steps_per_epoch),
        min_lr=s.min_lr,
        steps_per_epoch=steps_per_epoch,
    )


# ---- the epochs ---------------------------------------------------------------------------------------------


def train_epochs(state: RunState, *, quiet: bool) -> None:
    """From the first unfinished epoch to the last, or until early stopping: steps, validation, checkpoint."""
    from medbench.progress import EpochProgress

    config, progress = state.config, state.progress
    select, patience = config.recipe.select_metric, config.recipe.early_stopping_patience
    carried_s = progress.train_s  # training time of the epochs earlier processes finished
    bar = EpochProgress(config.recipe.epochs, state.steps_per_epoch, title=_title(config), quiet=quiet)
    with bar:
        for epoch in range(progress.epochs_done, config.recipe.epochs):
            if patience and progress.epochs_without_improvement >= patience:
                break  # a resumed run that had already stopped early (then died in its final evaluation)
            if state.tuning.changes_at(epoch):  # gradual unfreezing: another stage joins
                state.trainer.set_plan(state.tuning.plan(epoch))
                bar.note(f"epoch {epoch + 1}: training {', '.join(state.tuning.describe(epoch)['groups'])}")
            bar.start_epoch(epoch)
            losses = train_epoch(state, epoch, on_step=bar.step)
            record, improved = validate_epoch(state, epoch, losses)
            with state.chrono.phase("checkpoint"):
                save_epoch(state, epoch, improved=improved, train_s=carried_s + state.chrono.train_s)
            bar.end_epoch(record)
            if patience and progress.epochs_without_improvement >= patience:
                bar.note(f"early stop: no better {select} in {patience} epochs")
                break


def train_epoch(state: RunState, epoch: int, *, on_step) -> list[float]:
    """The training steps of one epoch (the learning rate of each from the schedule); returns their losses."""
    config, progress, trainer = state.config, state.progress, state.trainer
    losses = []
    for i, (images, labels) in enumerate(state.profiler.batches(state.train_batches.epoch(epoch))):
        if i >= state.steps_per_epoch:
            break
        # shared noise: a pure function of (seed, epoch, step), drawn outside the timed step
        masks = None if state.noise is None else state.noise.masks(epoch, i, len(images))
        lr = state.schedule(progress.step)
        with state.chrono.step(len(images)):
            result = trainer.train_step(images, labels, lr=lr, noise=masks)
        if state.profiler.due(i, state.steps_per_epoch):
            with state.chrono.phase("profile"):
                state.profiler.take(trainer, images, labels, lr=lr, noise=masks, step=progress.step + 1)
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
        on_step(result.loss, len(images))
    return losses


def validate_epoch(state: RunState, epoch: int, losses: list[float]) -> tuple[dict[str, Any], bool]:
    """The epoch's record in the history (validation metrics included), and whether it is the best yet."""
    with state.chrono.phase("evaluation"):
        val = evaluate_split(state.trainer.eval_logits, state.val_batches, state.data.info.task)
    record = {
        "epoch": epoch + 1,
        "train_loss": float(np.mean(losses)),
        "lr": state.schedule(state.progress.step - 1),
        "trainable_params": state.tuning.describe(epoch)["trainable_params"],
    }
    record.update({f"val_{k}": val[k] for k in ("acc", "auc", "loss") if k in val})
    state.progress.history.append(record)
    return record, update_best(state.progress, val, state.config.recipe.select_metric, epoch)


def save_epoch(state: RunState, epoch: int, *, improved: bool, train_s: float) -> None:
    """The best weights when they improved, then the epoch's state and progress (what a resume reads)."""
    if improved or not best_weights_path(state.run_dir, must_exist=False).exists():
        state.fw.save_weights(state.trainer.model, state.run_dir / BEST_WEIGHTS)
    state.progress.epochs_done = epoch + 1
    state.progress.train_s = train_s
    save_state(state.trainer, state.progress, state.run_dir)


# ---- the result ---------------------------------------------------------------------------------------------


def record_result(state: RunState, *, store, metrics: dict[str, Any]) -> None:
    """Closes the run's row with its metrics, the loop's record of the run, and every timing."""
    from medbench.timing import memory_usage

    progress, noise = state.progress, state.noise
    metrics["best_epoch"] = progress.best_epoch
    metrics["epochs_run"] = progress.epochs_done
    metrics["history"] = progress.history
    metrics["first_losses"] = progress.first_losses
    metrics["trajectory"] = progress.trajectory
    metrics["randomness"] = {
        **state.start,
        "noise": state.config.noise,
        "noise_sites": noise.describe() if noise else {},
    }
    metrics["finetune"] = {**state.tuning.describe(0), "init_weights": state.init_record}
    timings = {**state.chrono.summary(), **_per_epoch(progress), **memory_usage(state.fw.gpu_peak())}
    timings.update(state.profiler.timings())
    store.finish_run(progress.run_id, metrics=metrics, timings=timings, checkpoint_path=str(state.run_dir))


def _per_epoch(progress: Progress) -> dict[str, float]:
    """Training time per epoch over every epoch the run trained, in this process and in earlier ones."""
    epochs = max(1, progress.epochs_done)
    return {"train_s_per_epoch": progress.train_s / epochs, "train_s_all_processes": progress.train_s}


def _title(config: RunConfig) -> str:
    return f"{config.framework} {config.model} {config.data.dataset} {config.data.input_size}px seed {config.seed}"
