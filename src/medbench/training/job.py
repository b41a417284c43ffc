"""The worker's entry point for a training run (``python -m medbench.orchestration.worker JOB.json``)."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from medbench.config import parse_config
from medbench.errors import MedbenchError, failure_reason
from medbench.training.loop import train


def run_training_job(job: dict[str, Any]) -> int:
    """Called by :mod:`medbench.orchestration.worker` in a fresh process; returns the exit code."""
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
            profile=bool(job.get("profile", False)),
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
