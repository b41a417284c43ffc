"""Job descriptions handed to a worker process (see :mod:`~medbench.orchestration.worker` and
:mod:`~medbench.orchestration.runner`)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from medbench.config import RunConfig


def start_columns(config: RunConfig, *, kind: str = "train", experiment: str | None = None) -> dict[str, Any]:
    """The store row the parent writes if the worker dies before writing its own."""
    return {
        "kind": kind,
        "config": config.to_dict(),
        "framework": config.framework,
        "model": config.model,
        "dataset": config.data.dataset,
        "size": config.data.input_size,
        "seed": config.seed,
        "experiment": experiment,
    }


def run_folder_name(config: RunConfig, run_id: str) -> str:
    c = config
    return f"{c.data.dataset}-{c.data.input_size}-{c.model}-{c.framework}-s{c.seed}-{run_id[:8]}"


def train_job(
    config: RunConfig,
    *,
    runs_dir: Path,
    experiment: str | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    run_id: str | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """A training job; ``run_dir`` (for ``--resume``, with the run's own ``run_id``) defaults to a new
    folder under ``runs_dir``. ``profile``: also list the framework profiler's costliest operations (a run
    option, not config: it changes no result, see :mod:`medbench.training.profiling`)."""
    run_id = run_id or str(uuid.uuid4())
    return {
        "kind": "train",
        "run_id": run_id,
        "config": config.to_dict(),
        "run_dir": str(run_dir or runs_dir / run_folder_name(config, run_id)),
        "experiment": experiment,
        "resume": resume,
        "profile": profile,
        "start": start_columns(config, experiment=experiment),
    }
