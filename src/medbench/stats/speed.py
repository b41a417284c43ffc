"""Speed ratios between frameworks, called a difference only when their spread over repeats allows it.

Timings are positive and spread multiplicatively (a noisy neighbour slows a run by a factor, not by a fixed
number of seconds), so a ratio is compared on logarithms: the ratio of geometric means
``exp(mean log a - mean log b)`` with the (1 - alpha) Welch interval of the difference of log means
(``scipy.stats.ttest_ind(equal_var=False)``: the repeats of two frameworks are independent and their spreads
differ). Training repeats are the seeds (a timing does not depend on the seed), inference repeats are the
benchmark's repeats of a cell. A ratio whose interval contains 1 is *no clear difference*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

FASTER = "faster"
SLOWER = "slower"
UNCLEAR = "no clear difference"
TOO_FEW = "too few repeats"


@dataclass(frozen=True)
class Ratio:
    """``ratio`` = a / b (geometric means); ``speedup`` > 1 means the first is faster, whatever the unit."""

    ratio: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_a: int
    n_b: int
    higher_is_better: bool
    verdict: str  # faster / slower (the first than the second), no clear difference, too few repeats

    @property
    def speedup(self) -> float:
        return self.ratio if self.higher_is_better else 1.0 / self.ratio

    @property
    def speedup_ci(self) -> tuple[float, float] | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        if self.higher_is_better:
            return self.ci_low, self.ci_high
        return 1.0 / self.ci_high, 1.0 / self.ci_low

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup, "speedup_ci": self.speedup_ci}


def _positive(values: Sequence[float]) -> np.ndarray:
    x = np.asarray([v for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v > 0], float)
    return x


def speed_ratio(
    a: Sequence[float], b: Sequence[float], *, higher_is_better: bool, alpha: float = 0.05
) -> Ratio | None:
    """The ratio of ``a`` to ``b`` (repeats of one timing in two frameworks); None if either side is empty.

    Args:
        a, b: the repeats, e.g. images/s of each seed; non-positive and non-finite values are dropped.
        higher_is_better: True for throughputs (img/s), False for times (s/epoch, latency).
        alpha: the interval is a (1 - alpha) one and the test's level.
    """
    from scipy import stats

    la, lb = np.log(_positive(a)), np.log(_positive(b))
    if la.size == 0 or lb.size == 0:
        return None
    diff = float(la.mean() - lb.mean())
    common = {
        "ratio": math.exp(diff),
        "n_a": int(la.size),
        "n_b": int(lb.size),
        "higher_is_better": higher_is_better,
    }
    if la.size < 2 or lb.size < 2:
        return Ratio(**common, ci_low=None, ci_high=None, p_value=None, verdict=TOO_FEW)
    if la.var() == 0 and lb.var() == 0:  # identical repeats on each side: the ratio is exact
        p, low, high = (1.0 if diff == 0 else 0.0), diff, diff
    else:
        result = stats.ttest_ind(la, lb, equal_var=False)
        ci = result.confidence_interval(1 - alpha)
        p, low, high = float(result.pvalue), float(ci.low), float(ci.high)
    if p < alpha:
        first_higher = diff > 0
        verdict = FASTER if first_higher == higher_is_better else SLOWER
    else:
        verdict = UNCLEAR
    return Ratio(**common, ci_low=math.exp(low), ci_high=math.exp(high), p_value=p, verdict=verdict)
