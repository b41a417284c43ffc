"""Where medbench keeps its own files: ``$MEDBENCH_HOME`` (default ``~/.medbench``), and its cache.

The results database and run folders live there unless a command is told otherwise; MedMNIST data stays in
the ``medmnist`` package's folder (see :mod:`medbench.data.registry`) so existing downloads are reused.
Nothing medbench derives from a data file (unpacked members, hash sidecars) is written beside it: that goes
to :func:`cache_dir`, so a read-only or shared data folder is never written to.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV_VAR = "MEDBENCH_HOME"
CACHE_ENV_VAR = "MEDBENCH_CACHE_DIR"


def medbench_home() -> Path:
    return Path(os.environ.get(HOME_ENV_VAR) or "~/.medbench").expanduser()


def runs_dir() -> Path:
    """Checkpoints and training state, one folder per run."""
    return medbench_home() / "runs"


def cache_dir() -> Path:
    """medbench's own cache: ``$MEDBENCH_CACHE_DIR``; else ``$MEDBENCH_HOME/cache`` when that is set (one
    folder holds a whole installation); else the XDG cache, ``$XDG_CACHE_HOME/medbench`` (``~/.cache/medbench``).
    """
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    if os.environ.get(HOME_ENV_VAR):
        return medbench_home() / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "medbench"
