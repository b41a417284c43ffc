"""medbench from Python: train, evaluate, run an experiment grid, read the results. The CLI calls these.

Each function is importable as ``medbench.train`` etc.; importing :mod:`medbench` stays framework-free (the
framework is imported only by the worker process that trains, or by the checkpoint being evaluated)::

    import medbench

    run = medbench.train(framework="jax", model="simple_cnn", dataset="breastmnist", epochs=3)
    print(run.status, run.metrics["test_acc"], run.checkpoint_path)
    medbench.evaluate(run.checkpoint_path, split="test")["acc"]
    medbench.run_experiment("quick", overrides={"base.recipe.epochs": 1})
    runs = medbench.load_results(experiment="quick", status="completed")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.config import RunConfig, parse_config, set_dotted

# The job-level steps behind train and resume, kept importable from here: the CLI calls them as api.*.
from medbench.training_launch import resume_job, run_training_job, train_jobs

# Keyword shortcuts of :func:`train` -> the config field they set (the CLI's flags use the same paths).
TRAIN_FIELDS: dict[str, str] = {
    "framework": "framework",
    "model": "model",
    "dataset": "data.dataset",
    "size": "data.size",
    "data_file": "data.data_file",
    "epochs": "recipe.epochs",
    "batch_size": "recipe.batch_size",
    "lr": "recipe.optimizer.lr",
    "optimizer": "recipe.optimizer.name",
    "seed": "seed",
    "threads": "runtime.threads",
    "max_steps_per_epoch": "recipe.max_steps_per_epoch",
}


def make_config(
    config: RunConfig | Mapping[str, Any] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    **fields: Any,
) -> RunConfig:
    """A validated :class:`~medbench.config.RunConfig` from a base, keyword shortcuts and dotted overrides.

    Args:
        config: a RunConfig or a dict in the config's shape (defaults: the official MedMNIST recipe).
        overrides: dotted paths to values, e.g. ``{"recipe.optimizer.name": "adamw"}``; applied last.
        **fields: shortcuts from :data:`TRAIN_FIELDS` (``framework``, ``model``, ``dataset``, ``epochs`` ...).

    Raises:
        medbench.errors.ConfigError: an unknown shortcut or an invalid field (named with what it accepts).
    """
    from medbench.errors import ConfigError

    raw: dict[str, Any] = config.to_dict() if isinstance(config, RunConfig) else dict(config or {})
    for name, value in fields.items():
        if name not in TRAIN_FIELDS:
            raise ConfigError(
                f"train() has no argument {name!r}.",
                f"Use one of {', '.join(TRAIN_FIELDS)}, or overrides={{'dotted.path': value}}.",
            )
        if value is not None:
            raw = set_dotted(raw, TRAIN_FIELDS[name], str(value) if isinstance(value, Path) else value)
    for dotted, value in (overrides or {}).items():
        raw = set_dotted(raw, dotted, value)
    return parse_config(raw)


def train(
    config: RunConfig | Mapping[str, Any] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    store: str | os.PathLike | None = None,
    runs_dir: str | os.PathLike | None = None,
    quiet: bool = True,
    profile: bool = False,
    **fields: Any,
):
    """Trains one model in a fresh worker process, stores the result and returns its row.

    Args:
        config: a RunConfig or a dict (see :func:`make_config`); ``fields`` and ``overrides`` go on top.
        overrides: dotted config paths to values, applied last.
        store: the results database (default ``$MEDBENCH_HOME/results.sqlite``).
        runs_dir: where the run folder (checkpoint, history) is created (default ``$MEDBENCH_HOME/runs``).
        quiet: True writes the worker's progress to a log in its run folder instead of the terminal.
        profile: also list the framework profiler's ten costliest operations of a step (``profile.json`` in
            the run folder; it changes no result).
        **fields: ``framework``, ``model``, ``dataset``, ``size``, ``epochs``, ``seed`` ... (:data:`TRAIN_FIELDS`).

    Returns:
        The stored :class:`medbench.results.RunRecord`: ``status`` ("completed", "failed" ...),
        ``metrics`` (``test_acc``, ``test_auc`` ... as fractions), ``timings``, ``checkpoint_path``.

    Raises:
        medbench.errors.MedbenchError: an invalid config, a data file that is missing or another
            dataset's, a runs folder that cannot be written: refused before any row or folder exists.
    """
    (job,) = train_jobs(
        [make_config(config, overrides=overrides, **fields)], runs_dir=runs_dir, profile=profile
    )
    return run_training_job(job, store=store, quiet=quiet)


def resume(run_dir: str | os.PathLike, *, store: str | os.PathLike | None = None, quiet: bool = True):
    """Continues an interrupted run from its folder (as ``medbench train --resume``), under its own run id.

    Returns:
        The run's stored row; a run that is already completed is returned as it is, not trained again.

    Raises:
        medbench.errors.MedbenchError: not a run folder, a damaged checkpoint.json or progress.json, or a
            data file that has moved since.
    """
    job, record = resume_job(run_dir, store=store)
    return record if job is None else run_training_job(job, store=store, quiet=quiet)


def evaluate(
    run: Any,
    split: str = "test",
    *,
    data_file: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """Official ACC/AUC (fractions), bootstrap confidence intervals and per-class metrics on one split.

    Args:
        run: a run folder (``RunRecord.checkpoint_path``) or a checkpoint from
            :func:`medbench.checkpoint.load_checkpoint`.
        split: train, val or test.
        data_file: evaluate on another npz in the official layout.
        bootstrap: resamples for the confidence intervals (0: none).

    Raises:
        medbench.errors.ConfigError: an unknown split.
    """
    from medbench.checkpoint import LoadedCheckpoint, evaluate_checkpoint, load_checkpoint
    from medbench.errors import ConfigError

    if split not in ("train", "val", "test"):
        raise ConfigError(f"Unknown split {split!r}.", "Use train, val or test.")
    loaded = run if isinstance(run, LoadedCheckpoint) else load_checkpoint(run)
    return evaluate_checkpoint(
        loaded,
        split,
        data_file=Path(data_file) if data_file else None,
        root=Path(root) if root else None,
        bootstrap=bootstrap,
    )


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` did: the spec, every trial, and the stored row of each finished one."""

    spec: Any  # medbench.orchestration.experiments.ExperimentSpec
    trials: list[Any]  # medbench.orchestration.experiments.Trial
    skipped: dict[str, Any] = field(default_factory=dict)  # trial key -> its earlier completed row
    records: dict[str, Any] = field(default_factory=dict)  # trial key -> the row this call stored
    # With rerun: when the plan was made. Rows completed before it run again, those after it (another
    # process sharing the store, rerunning too) do not, so each trial still runs once.
    completed_since: str | None = None

    @property
    def failed(self) -> list[str]:
        return [key for key, r in self.records.items() if r.status != "completed"]


def plan_experiment(
    experiment: str | os.PathLike,
    *,
    overrides: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    store: str | os.PathLike | None = None,
    rerun: bool = False,
) -> ExperimentResult:
    """Reads and expands an experiment (a file, or a shipped name) and finds its already-completed trials.

    Raises:
        medbench.errors.MedbenchError: a bad experiment file or override, or a local data file that is
            missing or holds another dataset (checked here, before any trial starts).
    """
    from medbench.orchestration.experiments import expand, load_experiment
    from medbench.preflight import check_trial_data_files
    from medbench.results import ResultsStore
    from medbench.results.records import _utc_now

    since = _utc_now() if rerun else None
    pairs = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides or [])
    spec = load_experiment(experiment, pairs)
    trials = expand(spec)
    check_trial_data_files(trials)
    results = ResultsStore(store)
    done = {} if rerun else {t.key: results.find_completed(t.config_hash, kind="train") for t in trials}
    return ExperimentResult(
        spec, trials, skipped={k: v for k, v in done.items() if v is not None}, completed_since=since
    )


def run_experiment(
    experiment: str | os.PathLike | ExperimentResult,
    *,
    overrides: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    store: str | os.PathLike | None = None,
    executor: str = "local",
    address: str | None = None,
    ray_cpus: int | None = None,
    runs_dir: str | os.PathLike | None = None,
    rerun: bool = False,
    bench: bool = True,
    on_event: Callable[[str, str, Any], None] | None = None,
    echo: Callable[[str], None] | None = None,
    lease_timeout: float | None = None,
    profile: bool = False,
) -> ExperimentResult:
    """Runs an experiment grid: every trial in a fresh process (finished ones skipped), then its benchmark.

    Args:
        experiment: a file, a shipped name (``quick``, ``bloodmnist_sizes`` ...; see
            :func:`medbench.orchestration.experiments.shipped_experiments`), or a plan from :func:`plan_experiment`.
        overrides: dotted paths into the experiment file, e.g. ``{"base.recipe.epochs": 2}``.
        executor: ``local`` (one trial at a time) or ``ray``.
        rerun: run trials (and the benchmark) again even if already completed.
        bench: also run the experiment's inference benchmark, if it asks for one.
        on_event: called as ``(kind, trial_key, record)``: kind "start" (record None), then "done"; or
            "skip" (completed by another process meanwhile), "elsewhere" (another live process holds the
            trial: record is its :class:`medbench.leases.Lease`), "reclaimed" (record: the stale run's id
            and why).
        echo: receives the benchmark's progress lines.
        lease_timeout: seconds without a heartbeat after which another host's claim on a trial is
            reclaimed (default ``$MEDBENCH_LEASE_TIMEOUT``, else 120).
        profile: the trials that run also list their framework profiler's costliest operations (finished
            trials are skipped as always: profiling changes no result, so it is no new trial).

    Returns:
        An :class:`ExperimentResult`; read the comparison with :func:`medbench.orchestration.runs.comparison_rows`.
    """
    from medbench.leases import stale_after
    from medbench.orchestration.runs import prepare_data, run_bench
    from medbench.orchestration.runs import run_experiment as run_trials
    from medbench.paths import runs_dir as default_runs_dir
    from medbench.results import ResultsStore

    stale_after_s = stale_after(lease_timeout)
    plan = (
        experiment
        if isinstance(experiment, ExperimentResult)
        else plan_experiment(experiment, overrides=overrides, store=store, rerun=rerun)
    )
    spec, done = plan.spec, plan.skipped
    results = ResultsStore(store)
    if spec.measure.train:
        prepare_data(spec, [t for t in plan.trials if t.key not in done])

    def record(kind: str, key: str, row: Any) -> None:
        if kind == "done":
            plan.records[key] = row
        elif kind == "skip":  # completed by another process sharing the store since the plan was made
            plan.skipped[key] = row
        if on_event is not None:
            on_event(kind, key, row)

    run_trials(
        spec,
        plan.trials,
        done,
        store=results,
        executor=executor,
        address=address,
        ray_cpus=ray_cpus,
        runs_root=Path(runs_dir) if runs_dir else default_runs_dir(),
        on_event=record,
        completed_since=plan.completed_since,
        stale_after_s=stale_after_s,
        profile=profile,
    )
    if bench and spec.measure.bench is not None:
        run_bench(spec, results, rerun=rerun, echo=echo or (lambda line: None))
    return plan


def load_results(store: str | os.PathLike | None = None, *, limit: int | None = None, **filters: Any):
    """The runs in the results store, in the order they started, as :class:`medbench.results.RunRecord`.

    Args:
        store: the results database (default ``$MEDBENCH_HOME/results.sqlite``).
        limit: at most this many (the first ones).
        **filters: ``framework``, ``model``, ``dataset``, ``size``, ``status``, ``kind``, ``experiment``.
    """
    from medbench.results import ResultsStore

    return ResultsStore(store).list_runs(limit=limit, **{k: v for k, v in filters.items() if v is not None})
