"""Runs checks in one framework per fresh worker process and hands back numpy results.

Every child is medbench's own worker on a ``call`` job (:mod:`medbench.orchestration.process`): the task
functions of ``_worker.py`` for :func:`run_job`, any ``tests.`` function for :func:`call`, one that returns
arrays for :func:`run_arrays`. A child that fails is an AssertionError with its output.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medbench.errors import WorkerError
from medbench.orchestration.process import WorkerCall, start_call

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def child_env(env: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """``env`` with this checkout's ``src`` and root first on PYTHONPATH, so the child imports this medbench
    and these tests wherever pytest was started."""
    path = os.pathsep.join(p for p in (str(SRC), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, **(env or {})}


def start(target: str, /, *, env: dict[str, str | None] | None = None, **args: Any) -> WorkerCall:
    """Starts ``target(**args)`` (``tests.module:function``) in a fresh worker, returning at once."""
    return start_call({"kind": "call", "target": target, "args": args}, env=child_env(env))


def result(pending: WorkerCall, *, timeout_s: float, what: str) -> Any:
    """What the started call returns; an AssertionError naming ``what``, with the child's output, if none."""
    try:
        return pending.result(timeout_s)
    except WorkerError as err:
        raise AssertionError(f"{what}: {err}\n{err.stdout[-3000:]}\n{err.stderr[-6000:]}") from None


def call(
    target: str, /, *, timeout_s: float = 900, env: dict[str, str | None] | None = None, **args: Any
) -> Any:
    """``target(**args)`` in a fresh worker: :func:`start` and :func:`result`."""
    return result(start(target, env=env, **args), timeout_s=timeout_s, what=target)


def save_arrays(target: str, out: str, kwargs: dict[str, Any]) -> list[str]:
    """The child's side of :func:`run_arrays`: ``target(**kwargs)``'s arrays, saved to ``out``."""
    module, _, name = target.partition(":")
    arrays = getattr(importlib.import_module(module), name)(**kwargs)
    np.savez(out, **arrays)
    return sorted(arrays)


def run_arrays(
    target: str,
    out: Path,
    /,
    *,
    timeout_s: float = 900,
    env: dict[str, str | None] | None = None,
    **kwargs: Any,
) -> dict[str, np.ndarray]:
    """``target(**kwargs)`` in a fresh worker, for a function that returns a dict of arrays: those arrays."""
    call(
        "tests.frameworks.harness:save_arrays",
        target=target,
        out=str(out),
        kwargs=kwargs,
        timeout_s=timeout_s,
        env=env,
    )
    with np.load(out) as data:
        return dict(data)


@dataclass
class JobResult:
    framework: str
    directory: Path
    results: dict[str, Any]

    def __getitem__(self, task_id: str) -> dict[str, Any]:
        entry = self.results[task_id]
        if "error" in entry:
            raise AssertionError(f"{self.framework} task {task_id!r} failed in the worker:\n{entry['error']}")
        return entry

    def arrays(self, task_id: str) -> dict[str, np.ndarray]:
        self[task_id]  # noqa: B018  (raises with the worker's traceback if the task failed)
        with np.load(self.directory / f"{task_id}.npz") as data:
            return dict(data)

    def state(self, task_id: str, prefix: str = "state/") -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: v for k, v in self.arrays(task_id).items() if k.startswith(prefix)}


def _start(framework, directory, tasks, arrays, settings, env) -> WorkerCall:
    directory.mkdir(parents=True, exist_ok=True)
    if arrays:
        np.savez(directory / "arrays.npz", **arrays)
    args = {"framework": framework, "directory": str(directory), "tasks": tasks, "settings": settings or {}}
    return start("tests.frameworks._worker:run_tasks", env=env, **args)


def _finish(framework: str, directory: Path, pending: WorkerCall, timeout: float) -> JobResult:
    return JobResult(framework, directory, result(pending, timeout_s=timeout, what=f"{framework} worker"))


def run_job(
    framework: str,
    directory: Path,
    tasks: list[dict[str, Any]],
    arrays: dict[str, np.ndarray] | None = None,
    *,
    settings: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> JobResult:
    """Runs ``tasks`` in ``framework`` in a fresh worker (``_worker.run_tasks``); fails with its output."""
    pending = _start(framework, directory, tasks, arrays, settings, env)
    return _finish(framework, directory, pending, timeout)


def run_jobs(jobs: dict[str, tuple[Path, list, dict]], *, timeout: float = 900) -> dict[str, JobResult]:
    """Several frameworks' jobs side by side (``{framework: (directory, tasks, arrays)}``), one process each.

    The JAX and Keras jobs spend most of their time compiling, largely on one core: on a small machine
    running them together nearly halves the wall-clock time.
    """
    pending = {fw: _start(fw, d, tasks, arrays, None, None) for fw, (d, tasks, arrays) in jobs.items()}
    return {fw: _finish(fw, jobs[fw][0], started, timeout) for fw, started in pending.items()}


def flatten_prefixed(prefix: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {prefix + k: v for k, v in state.items()}


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
