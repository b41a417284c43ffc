"""Timing a training run, after big_vision's ``Chrono``: phases, the first (compiling) step, training time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from medbench.timing.sync import Clock, Sync, no_sync

# Phase names whose "<name>_s" key would overwrite one of Chrono.summary()'s own figures.
_RESERVED_PHASES = frozenset({"wall_total", "train", "first_step"})


class Chrono:
    """Times a training run: named phases, the first (compiling) step, steady-state steps, training time.

    Every clock read is preceded by ``sync`` (settable later, because the framework that provides it is
    imported inside the first phase). Rules:

    - ``with chrono.phase(name):`` times a phase (framework import, data load, model build, evaluation,
      checkpointing ...). Phases add up when repeated. A phase is never training: one that runs between
      training steps pauses the training clock. ``pause(name)``/``resume()`` do the same without ``with``.
    - ``with chrono.step(batch_size):`` times one training step. The first ``exclude_first_steps`` steps
      (compilation, autotuning, allocator warm-up) are kept apart from the steady-state statistics.
    - Training time runs from the start of the first step to the end of the last one, minus pauses: data
      loading between steps counts (unless it is wrapped in a phase), evaluation does not.

    Example::

        chrono = Chrono()
        with chrono.phase("framework_import"):
            fw = load_framework("torch")
        chrono.sync = fw.synchronize
        for epoch in range(epochs):
            for images, labels in batches:
                with chrono.step(len(images)):
                    trainer.train_step(images, labels)
            with chrono.phase("evaluation"):
                evaluate(...)
        timings = chrono.summary()
    """

    def __init__(
        self, *, sync: Sync | None = None, clock: Clock = time.perf_counter, exclude_first_steps: int = 1
    ):
        if exclude_first_steps < 0:
            raise ValueError("exclude_first_steps must be >= 0")
        self.sync: Sync | None = sync
        self._clock = clock
        self._exclude = exclude_first_steps
        self._started_at: float | None = None
        self._stopped_at: float | None = None
        self._phases: dict[str, float] = {}
        self._open: list[tuple[str, float]] = []  # a stack, so phases may nest
        self._pauses: list[tuple[float, float]] = []  # outermost phase intervals only: nested ones overlap
        self._excluded: list[float] = []
        self._steady: list[float] = []
        self._steady_images = 0
        self._images = 0
        self._first_step_start: float | None = None
        self._last_step_end: float | None = None

    def _now(self) -> float:
        (self.sync or no_sync)()
        now = self._clock()
        if self._started_at is None:  # the wall total starts with the first reading unless start() came first
            self._started_at = now
        return now

    def start(self) -> None:
        """Starts the wall total now (otherwise the first phase or step starts it)."""
        if self._started_at is not None:
            raise RuntimeError("Chrono already started")
        self._now()

    def stop(self) -> None:
        """Ends the wall total; later summaries report the same figure."""
        if self._open:
            raise RuntimeError(f"phase {self._open[-1][0]!r} is still open")
        self._stopped_at = self._now()

    # ---- phases ----
    def pause(self, name: str) -> None:
        """Opens phase ``name``; training time stops counting until the matching :meth:`resume`."""
        if name in _RESERVED_PHASES:
            raise ValueError(f"phase name {name!r} is reserved for Chrono's own figures")
        self._open.append((name, self._now()))

    def resume(self) -> None:
        """Closes the innermost open phase and adds its time to that phase's total."""
        if not self._open:
            raise RuntimeError("resume() without an open phase")
        end = self._now()
        name, start = self._open.pop()
        self._phases[name] = self._phases.get(name, 0.0) + (end - start)
        if not self._open:
            self._pauses.append((start, end))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Times the ``with`` block as phase ``name`` (kept even if the block raises)."""
        self.pause(name)
        try:
            yield
        finally:
            self.resume()

    # ---- steps ----
    @contextmanager
    def step(self, batch_size: int) -> Iterator[None]:
        """Times one training step over ``batch_size`` images; a step that raises is not recorded."""
        if self._open:
            raise RuntimeError(f"a training step inside phase {self._open[-1][0]!r}: close the phase first")
        start = self._now()
        yield
        end = self._now()
        if self._first_step_start is None:
            self._first_step_start = start
        self._last_step_end = end
        self._images += batch_size
        if len(self._excluded) < self._exclude:
            self._excluded.append(end - start)
        else:
            self._steady.append(end - start)
            self._steady_images += batch_size

    # ---- figures ----
    @property
    def first_step_s(self) -> float | None:
        """The first step, which includes compilation (None before any step, or when none is excluded)."""
        return self._excluded[0] if self._excluded else None

    @property
    def steady_step_times_s(self) -> tuple[float, ...]:
        return tuple(self._steady)

    @property
    def train_s(self) -> float:
        """Training time: first step start to last step end, without the phases (pauses) in between."""
        if self._first_step_start is None or self._last_step_end is None:
            return 0.0
        first, last = self._first_step_start, self._last_step_end
        paused = sum(max(0.0, min(end, last) - max(start, first)) for start, end in self._pauses)
        return last - first - paused

    def phases(self) -> dict[str, float]:
        """Seconds per closed phase, summed over repeats."""
        return dict(self._phases)

    def summary(self) -> dict[str, float | int | None]:
        """Flat, JSON-ready figures for the results store (seconds ``_s``, milliseconds ``_ms``).

        Keys: ``wall_total_s``, ``<phase>_s`` for every phase, ``steps``, ``images``, ``first_step_s``,
        ``steady_steps``, ``steady_step_mean_ms``, ``steady_step_median_ms``, ``steady_images_per_s``
        (images over the summed steady step times: the pure step rate), ``train_s`` and
        ``train_images_per_s`` (all images over training time: data loading and compilation included).
        """
        if self._open:
            raise RuntimeError(f"phase {self._open[-1][0]!r} is still open")
        end = self._stopped_at if self._stopped_at is not None else self._now()
        steady_total = sum(self._steady)
        train = self.train_s
        figures: dict[str, float | int | None] = {"wall_total_s": end - (self._started_at or end)}
        figures.update({f"{name}_s": seconds for name, seconds in self._phases.items()})
        figures.update(
            steps=len(self._excluded) + len(self._steady),
            images=self._images,
            first_step_s=self.first_step_s,
            steady_steps=len(self._steady),
            steady_step_mean_ms=float(np.mean(self._steady)) * 1e3 if self._steady else None,
            steady_step_median_ms=float(np.median(self._steady)) * 1e3 if self._steady else None,
            steady_images_per_s=self._steady_images / steady_total if steady_total > 0 else None,
            train_s=train,
            train_images_per_s=self._images / train if train > 0 else None,
        )
        return figures
