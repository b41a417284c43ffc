"""Runs checks in one framework per fresh interpreter (see ``_worker.py``) and hands back numpy results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WORKER = Path(__file__).with_name("_worker.py")
SRC = Path(__file__).resolve().parents[2] / "src"


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


def _start(framework, directory, tasks, arrays, settings, env) -> subprocess.Popen:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "job.json").write_text(json.dumps({"settings": settings or {}, "tasks": tasks}))
    if arrays:
        np.savez(directory / "arrays.npz", **arrays)
    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    child_env.update({"TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    return subprocess.Popen(
        [sys.executable, str(WORKER), framework, str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
    )


def _finish(framework: str, directory: Path, proc: subprocess.Popen, timeout: float) -> JobResult:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    if proc.returncode != 0 or not (directory / "results.json").exists():
        raise AssertionError(
            f"{framework} worker exited with {proc.returncode}:\n{stdout[-3000:]}\n{stderr[-6000:]}"
        )
    return JobResult(framework, directory, json.loads((directory / "results.json").read_text()))


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
    """Runs ``tasks`` in a fresh ``python _worker.py framework directory``; fails with the worker's output."""
    proc = _start(framework, directory, tasks, arrays, settings, env)
    return _finish(framework, directory, proc, timeout)


def run_jobs(jobs: dict[str, tuple[Path, list, dict]], *, timeout: float = 900) -> dict[str, JobResult]:
    """Several frameworks' jobs side by side (``{framework: (directory, tasks, arrays)}``), one process each.

    The JAX and Keras jobs spend most of their time compiling, largely on one core: on a small machine
    running them together nearly halves the wall-clock time.
    """
    procs = {fw: _start(fw, d, tasks, arrays, None, None) for fw, (d, tasks, arrays) in jobs.items()}
    return {fw: _finish(fw, jobs[fw][0], proc, timeout) for fw, proc in procs.items()}


def flatten_prefixed(prefix: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {prefix + k: v for k, v in state.items()}


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
