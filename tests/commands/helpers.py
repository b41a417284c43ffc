"""Running the real CLI as a script or a log file sees it: a subprocess with stdout and stderr piped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "medmnist"


def medbench(*args: str, home: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m medbench.cli ARGS`` with a private MEDBENCH_HOME; COLUMNS is small on purpose: output
    off a terminal must not be cut to it."""
    environ = {
        **os.environ,
        "MEDBENCH_HOME": str(home),
        "MEDBENCH_CACHE_DIR": str(home / "cache"),
        "COLUMNS": "60",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **env,
    }
    environ.pop("MEDBENCH_RESULTS", None)
    return subprocess.run(
        [sys.executable, "-m", "medbench.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
    )


def populated_store(path: Path) -> Path:
    """The report tests' synthetic store: training runs of experiment "demo" and benchmark rows."""
    from medbench.results import ResultsStore
    from tests.report.conftest import populate, populate_bench

    store = ResultsStore(path)
    populate(store)
    populate_bench(store)
    return path
