"""Training launched from the parent process: the worker jobs behind :func:`medbench.train` and
:func:`medbench.resume`, each checked before it is made, then run in a fresh worker process (where
:mod:`medbench.training.job` takes over). The CLI's ``medbench train`` builds and runs them the same way.

Framework-free like :mod:`medbench.api`, which re-exports these names: the framework is imported only by the
worker process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medbench.config import RunConfig


def train_jobs(
    configs: Iterable[RunConfig],
    *,
    runs_dir: str | os.PathLike | None = None,
    option: str = "runs_dir",
    profile: bool = False,
) -> list[dict[str, Any]]:
    """One worker job per config, for :func:`run_training_job`; every config and the runs folder checked first.

    Args:
        configs: validated run configs (:func:`medbench.api.make_config`), e.g. one per seed.
        runs_dir: where the run folders are created (default ``$MEDBENCH_HOME/runs``).
        option: how the caller names ``runs_dir`` in the error of a folder that cannot be written.
        profile: the jobs also write the framework profiler's costliest operations (see :func:`medbench.api.train`).

    Raises:
        medbench.errors.MedbenchError: a data file that is missing or another dataset's, a runs folder that
            cannot be written: refused before any run row or folder exists.
    """
    from medbench.orchestration.jobs import train_job
    from medbench.paths import runs_dir as default_runs_dir
    from medbench.preflight import check_train_config, check_writable_folder

    configs = list(configs)
    for config in configs:
        check_train_config(config)
    folder = check_writable_folder(Path(runs_dir) if runs_dir else default_runs_dir(), option=option)
    return [train_job(config, runs_dir=folder, profile=profile) for config in configs]


def run_training_job(job: dict[str, Any], *, store: str | os.PathLike | None = None, quiet: bool = True):
    """Runs a training job (:func:`medbench.orchestration.jobs.train_job`, or :func:`resume_job`) in a worker
    process and returns its stored row; a Ctrl-C meanwhile says how to resume the run folder."""
    from medbench import interrupt
    from medbench.orchestration.runner import run_job

    interrupt.keep(
        f"The run folder {job['run_dir']} was kept; continue it from its last finished epoch with "
        f"`medbench train --resume {job['run_dir']}`."
    )
    return run_job(job, store_path=store, quiet=quiet)


def resume_job(run_dir: str | os.PathLike, *, store: str | os.PathLike | None = None):
    """The job that continues the run in ``run_dir`` under its own run id, and the run's stored row.

    Returns:
        ``(job, record)``: ``job`` is None when ``record`` is completed (nothing to resume); ``record`` is
        None when the store has no row of the run (it died before its first one).
    """
    import json

    from medbench.config import stored_config
    from medbench.errors import ConfigError
    from medbench.orchestration.jobs import train_job
    from medbench.preflight import check_resume_folder, check_train_config
    from medbench.results import ResultsStore
    from medbench.training import CHECKPOINT_META, PROGRESS_FILE, Progress

    folder = Path(run_dir)
    meta_path = folder / CHECKPOINT_META
    if (folder / PROGRESS_FILE).exists():
        check_resume_folder(folder)  # refuses a damaged checkpoint.json or progress.json in one line
    if not meta_path.is_file():
        raise ConfigError(
            f"{folder} is not a resumable run folder (no {CHECKPOINT_META}).",
            "Pass the folder printed when the run was interrupted.",
        )
    try:
        meta = json.loads(meta_path.read_text())
        # a run folder from before `init`/`noise` existed resumes as it started: native
        config = stored_config(meta["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{meta_path} is damaged ({type(err).__name__}: {err}), so the run cannot be resumed.",
            "Train the run again from the start.",
        ) from None
    # A run that died in its first epoch has no progress yet: it starts again, in its own row.
    progress = Progress.load(folder) if (folder / PROGRESS_FILE).exists() else Progress()
    results = ResultsStore(store)
    run_id = progress.run_id or meta.get("run_id") or _run_id_from_folder(folder, results)
    record = _stored_run(results, run_id)
    if record is not None and record.status == "completed":
        return None, record
    check_train_config(config)  # its data file may have moved since
    job = train_job(config, runs_dir=folder.parent, run_dir=folder, resume=True, run_id=run_id)
    return job, record


def _stored_run(store, run_id: str | None):
    from medbench.results import RunNotFoundError

    if run_id is None:
        return None
    try:
        return store.get_run(run_id)
    except RunNotFoundError:
        return None


def _run_id_from_folder(run_dir: Path, store) -> str | None:
    """Folders written before the run id was saved in them end in its first 8 hex digits."""
    prefix = run_dir.name.rsplit("-", 1)[-1]
    if len(prefix) != 8 or not set(prefix) <= set("0123456789abcdef"):
        return None
    record = _stored_run(store, prefix)
    return record.run_id if record is not None else None
