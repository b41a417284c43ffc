"""Trajectory agreement: how many training steps two frameworks' losses stay together, and where they part.

With a shared start and shared noise (``init = noise = "shared"``), runs of one seed in two frameworks see the
same weights, batches, masks and learning rates, so their per-step training losses (stored as the run's
``trajectory`` metric, the first ``recipe.trajectory_steps`` steps) agree until float rounding makes them
drift. For every pair of frameworks whose runs share seed and config (the framework aside), this module
gives

* ``steps_within``: how many steps from the first the loss stays within ``1e-4`` relative, and
* ``first_past``: the first step (1-based) where it differs by more than ``1e-2`` relative (``None``: not within
  the recorded steps),

with the relative difference ``|a - b| / max(|a|, |b|)`` per step, and one plot of that difference against
the step on a log scale. Numpy and matplotlib only; no framework, no store.
"""

from __future__ import annotations

import io
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TIGHT = 1e-4  # "agree": float32 rounding of a loss near 1 is ~1e-7, so 1e-4 is agreement well past rounding
LOOSE = 1e-2  # "parted": one percent of the loss


@dataclass(frozen=True)
class Agreement:
    """Two loss trajectories, step by step."""

    steps: int  # compared: the shorter of the two
    steps_within: int  # leading steps with relative difference <= tight
    first_past: int | None  # first step (1-based) with relative difference > loose; None: none of them
    max_relative: float
    tight: float = TIGHT
    loose: float = LOOSE


@dataclass(frozen=True)
class PairAgreement:
    """One pair of frameworks on one seed (and otherwise equal config)."""

    frameworks: tuple[str, str]
    seed: int | None
    agreement: Agreement
    relative: tuple[float, ...]  # per step, for the plot

    @property
    def label(self) -> str:
        seed = "" if self.seed is None else f", seed {self.seed}"
        return f"{self.frameworks[0]} vs {self.frameworks[1]}{seed}"


def relative_difference(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """``|a - b| / max(|a|, |b|)`` per step over the common length (0 where both are 0)."""
    n = min(len(a), len(b))
    x, y = np.asarray(a[:n], dtype=np.float64), np.asarray(b[:n], dtype=np.float64)
    scale = np.maximum(np.abs(x), np.abs(y))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(scale > 0, np.abs(x - y) / scale, 0.0)
    # a NaN (diverged) loss on either side is as far apart as it gets
    return np.where(np.isnan(x) | np.isnan(y), np.inf, rel)


def compare(
    a: Sequence[float], b: Sequence[float], *, tight: float = TIGHT, loose: float = LOOSE
) -> Agreement:
    """The agreement of two per-step loss trajectories (see the module docstring)."""
    rel = relative_difference(a, b)
    outside = np.flatnonzero(rel > tight)
    past = np.flatnonzero(rel > loose)
    return Agreement(
        steps=len(rel),
        steps_within=int(outside[0]) if len(outside) else len(rel),
        first_past=int(past[0]) + 1 if len(past) else None,
        max_relative=float(rel.max()) if len(rel) else 0.0,
        tight=tight,
        loose=loose,
    )


def _pair_key(run: Any) -> str:
    """Equal for runs of one seed and config, whatever their framework."""
    from medbench.config import config_hash

    config = dict(run.config or {})
    config.pop("framework", None)
    return config_hash(config)


def pairwise(runs: Iterable[Any], *, tight: float = TIGHT, loose: float = LOOSE) -> list[PairAgreement]:
    """Every pair of frameworks among ``runs`` (store records) that share seed and config otherwise.

    Runs without a stored ``trajectory`` (older runs, failed ones) are left out.
    """
    groups: dict[str, dict[str, Any]] = defaultdict(dict)
    for run in runs:
        trajectory = (run.metrics or {}).get("trajectory")
        if run.framework and trajectory:
            groups[_pair_key(run)].setdefault(run.framework, run)  # the first of repeats
    pairs = []
    for by_framework in groups.values():
        for fa, fb in itertools.combinations(sorted(by_framework), 2):
            a, b = by_framework[fa].metrics["trajectory"], by_framework[fb].metrics["trajectory"]
            pairs.append(
                PairAgreement(
                    (fa, fb),
                    by_framework[fa].seed,
                    compare(a, b, tight=tight, loose=loose),
                    tuple(relative_difference(a, b).tolist()),
                )
            )
    return sorted(pairs, key=lambda p: (p.seed is None, p.seed or 0, p.frameworks))


def plot(pairs: Sequence[PairAgreement], *, title: str) -> bytes:
    """PNG: the relative loss difference of each pair against the step, log y, the two thresholds drawn."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.5), dpi=110)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.16, top=0.9)
    ax = fig.add_subplot()
    floor = 1e-9  # equal losses (difference 0) sit on the floor instead of vanishing from a log axis
    for pair in pairs:
        rel = np.maximum(np.asarray(pair.relative), floor)
        ax.plot(np.arange(1, len(rel) + 1), rel, linewidth=1.2, label=pair.label)
    for level, text in ((TIGHT, "1e-4"), (LOOSE, "1e-2")):
        ax.axhline(level, color="#777777", linestyle="--", linewidth=0.8)
        ax.annotate(text, (1, level), fontsize=7, color="#555555", va="bottom")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("training step", fontsize=9)
    ax.set_ylabel("|Δ loss| / loss", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    if pairs:
        ax.legend(fontsize=7, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})  # same data, same bytes
    return buffer.getvalue()


def summary(pairs: Sequence[PairAgreement]) -> str:
    """One sentence per pair: steps within 1e-4 and the first step past 1e-2."""
    parts = []
    for p in pairs:
        a = p.agreement
        past = f"first past 1e-2 at step {a.first_past}" if a.first_past else f"never past 1e-2 in {a.steps}"
        parts.append(f"{p.label}: within 1e-4 for {a.steps_within} of {a.steps} steps, {past}")
    return "; ".join(parts)


def figure(comparison: Any, names) -> Any | None:
    """The report's trajectory figure of one comparison (``report.comparison.comparison_section``), or ``None``
    when fewer than two frameworks stored trajectories of the same seed and config."""
    from medbench.report.document import Figure

    runs = [run for f in comparison.frameworks for run in f.runs]
    pairs = pairwise(runs)
    if not pairs:
        return None
    title = f"Loss agreement between frameworks · {comparison.title}"
    caption = (
        "Relative difference of the per-step training loss between frameworks on the same seed (same start, "
        "batches and noise when the runs use init = noise = shared), log scale. " + summary(pairs) + "."
    )
    return Figure(names(f"{comparison.title} trajectory"), caption, plot(pairs, title=title), title)


def table(pairs: Sequence[PairAgreement]) -> list[Mapping[str, Any]]:
    """Rows (pair, seed, steps, steps within 1e-4, first step past 1e-2, max relative difference)."""
    return [
        {
            "pair": "/".join(p.frameworks),
            "seed": p.seed,
            "steps": p.agreement.steps,
            "steps_within_1e-4": p.agreement.steps_within,
            "first_step_past_1e-2": p.agreement.first_past,
            "max_relative": p.agreement.max_relative,
        }
        for p in pairs
    ]
