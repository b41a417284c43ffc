"""Where a run's training step goes, measured once per training process a few steps in, on a batch in hand.

Every run records a breakdown of its steady step (``timings["step_breakdown"]``): ``data_ms``, the loop's
wait for the next batch from the shared pipeline (measured here, the same way for every framework), then
host-to-device, forward, backward and optimizer time, each framework measured its own way
(:meth:`medbench.frameworks.base.Backend.step_breakdown`, whose ``method`` says how). A handful of extra steps
on the batch in hand, in a phase of their own (``profile``, not training time), leaving the trainer as it
was: the run's numbers do not change.

With ``profile`` (``medbench train --profile``, ``medbench run --profile``) the framework's own profiler also
lists the step's ten costliest operations, written to ``profile.json`` in the run folder and kept with the
run (``timings["top_operations"]``) for the report (:mod:`medbench.report.profiles`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medbench.errors import failure_reason

PROFILE_FILE = "profile.json"
# past the compiling first step and the allocator's and autotuners' warm-up, early enough to cost nothing
PROFILE_AFTER_STEPS = 3


class StepProfiler:
    """Times the waits for batches, and takes the breakdown (and, if asked, the top operations) once."""

    def __init__(self, fw, *, run_dir: Path, top_operations: bool, after_steps: int = PROFILE_AFTER_STEPS):
        self.fw, self.run_dir, self.want_top = fw, run_dir, top_operations
        self.after_steps = after_steps
        self.waits: list[float] = []  # seconds the loop waited for each batch of the epoch so far
        self.breakdown: dict[str, Any] | None = None
        self.top: dict[str, Any] | None = None

    def batches(self, batches: Iterable) -> Iterator:
        """``batches``, timing the wait for each (the pipeline prefetches: this is what a step loses)."""
        self.waits = []
        iterator = iter(batches)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.waits.append(time.perf_counter() - start)
            yield batch

    def due(self, index: int, steps_per_epoch: int) -> bool:
        """Whether step ``index`` of the epoch (just taken) is the one to profile after: once per process."""
        return self.breakdown is None and index + 1 == min(self.after_steps, steps_per_epoch)

    def take(self, trainer, images: np.ndarray, labels: np.ndarray, *, lr: float, noise, step: int) -> None:
        """The breakdown (and top operations) of ``trainer``'s step on this batch.

        A profiler that fails is recorded, not raised: it must not cost a run its training.
        """
        # the first wait includes the pipeline's start-up (threads, first batch built before any overlap)
        waits = self.waits[1:] or self.waits
        context = {"after_step": step, "batch_size": len(images)}
        try:
            parts = self.fw.step_breakdown(trainer, images, labels, lr=lr, noise=noise)
            data_ms = round(float(np.median(waits)) * 1e3, 3) if waits else None
            self.breakdown = {"data_ms": data_ms, **parts, **context}
        except Exception as err:  # any framework's profiler error
            self.breakdown = {"failed": failure_reason(err), **context}
        if self.want_top:
            try:
                top = self.fw.top_operations(trainer, images, labels, lr=lr, noise=noise)
                self.top = {"framework": self.fw.name, **top, **context}
            except Exception as err:
                self.top = {"framework": self.fw.name, "failed": failure_reason(err), **context}
            write_profile(self.run_dir, self.top)

    def timings(self) -> dict[str, Any]:
        """What the run's row keeps: ``step_breakdown``, and ``top_operations`` when they were taken."""
        out: dict[str, Any] = {}
        if self.breakdown is not None:
            out["step_breakdown"] = self.breakdown
        if self.top is not None:
            out["top_operations"] = self.top
        return out


def write_profile(run_dir: Path, top: dict[str, Any]) -> Path:
    """``profile.json`` in the run folder, written whole or not at all."""
    path = run_dir / PROFILE_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(top, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path
