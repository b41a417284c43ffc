"""Where medbench keeps its own files: ``$MEDBENCH_HOME`` (default ``~/.medbench``).

The results database and run folders live there unless a command is told otherwise; MedMNIST data stays in
the ``medmnist`` package's folder (see :mod:`medbench.data.registry`) so existing downloads are reused.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV_VAR = "MEDBENCH_HOME"


def medbench_home() -> Path:
    return Path(os.environ.get(HOME_ENV_VAR) or "~/.medbench").expanduser()


def runs_dir() -> Path:
    """Checkpoints and training state, one folder per run."""
    return medbench_home() / "runs"
