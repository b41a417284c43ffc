"""Framework-free functions for ``call`` jobs (see ``test_process.py``): each one way a child can end."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def echo(**args: Any) -> dict[str, Any]:
    return {"args": args, "pid": os.getpid(), "parent": os.getppid()}


def environment(names: list[str]) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in names}


def loaded(modules: list[str]) -> list[str]:
    """Which of ``modules`` this process has imported by now."""
    return [name for name in modules if name in sys.modules]


def fail(value: int) -> None:
    raise ValueError(f"bad value {value}")


def not_json() -> object:
    return {"a set": {1, 2}}


def die_by_signal() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def exit_without_result(code: int, last_words: str = "") -> None:
    print(last_words, file=sys.stderr, flush=True)
    os._exit(code)  # no exception, no result: as a C library calling exit() would


def crash_after_answering() -> str:
    """Returns normally, then the process is killed on its way out (a framework's teardown that crashes)."""
    atexit.register(lambda: os.kill(os.getpid(), signal.SIGKILL))
    return "answered"


def sleep(seconds: float, pid_file: str | None = None) -> None:
    if pid_file:
        Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
