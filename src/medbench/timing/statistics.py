"""Figures worth reporting: percentiles of one run's samples, and the median and spread of repeated runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PERCENTILES: tuple[int, ...] = (50, 90, 99)


def _nonempty(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """``values`` as float64; an empty list has no figures to report."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"cannot summarize an empty list of {what}")
    return array


def summarize(samples: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Count, mean, standard deviation, min, p50, p90, p99 and max of ``samples``, in their own unit.

    Percentiles use numpy's default (linear interpolation). The standard deviation is the sample one
    (``ddof=1``) because the samples estimate a distribution; a single sample has a spread of 0.

    Raises:
        ValueError: if ``samples`` is empty.
    """
    values = _nonempty(samples, "samples")
    p50, p90, p99 = np.percentile(values, PERCENTILES)
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "min": float(values.min()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
    }


@dataclass(frozen=True)
class RepeatSummary:
    """The median of repeated measurements and their spread, to report next to every median.

    A benchmark is repeated (new process, same config) because one run can be lucky; the median is the
    figure, the interquartile range and the min/max say how much to trust it.
    """

    n: int
    median: float
    q25: float
    q75: float
    min: float
    max: float

    @classmethod
    def from_values(cls, values: Sequence[float] | np.ndarray) -> RepeatSummary:
        """Summarises one figure (say images/s) over repeats.

        Raises:
            ValueError: if ``values`` is empty.
        """
        array = _nonempty(values, "repeats")
        q25, median, q75 = np.percentile(array, (25, 50, 75))
        return cls(
            n=int(array.size),
            median=float(median),
            q25=float(q25),
            q75=float(q75),
            min=float(array.min()),
            max=float(array.max()),
        )

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25

    def to_dict(self, prefix: str = "") -> dict[str, float | int]:
        """Flat keys (``{prefix}median``, ``{prefix}q25`` ...) for a results row or a CSV column set."""
        return {
            f"{prefix}n": self.n,
            f"{prefix}median": self.median,
            f"{prefix}q25": self.q25,
            f"{prefix}q75": self.q75,
            f"{prefix}min": self.min,
            f"{prefix}max": self.max,
        }

    def format(self, unit: str = "", digits: int = 3) -> str:
        """For example ``"12.3 ms (IQR 11.9-12.8, range 11.5-13.0, n=5)"``; a single value shows no spread."""

        def fmt(value: float) -> str:
            return f"{value:.{digits}g}"

        suffix = f" {unit}" if unit else ""
        if self.n == 1:
            return f"{fmt(self.median)}{suffix} (n=1)"
        return (
            f"{fmt(self.median)}{suffix} (IQR {fmt(self.q25)}-{fmt(self.q75)}, "
            f"range {fmt(self.min)}-{fmt(self.max)}, n={self.n})"
        )
