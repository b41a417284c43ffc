"""Paired differences over seeds: is framework A's metric different from B's, equivalent, or undecided?

With the shared start and noise, seed *s* of framework A and seed *s* of framework B differ only by the
framework, so the per-seed differences ``a_s - b_s`` are the sample to test. Training randomness (which seed)
is the variation that matters for "is the framework better", so the verdict rests on these differences; the
tests on the test images (:mod:`medbench.stats.images`) are shown beside it.

The verdict, with significance level ``alpha`` (default 0.05) and an equivalence margin (default 1 point):

- *equivalent*: TOST (two one-sided paired t tests, ``statsmodels.stats.weightstats.ttost_paired``) rejects
  ``|mean difference| >= margin``; the same as the (1 - 2 alpha) = 90% interval lying inside ±margin.
- *different*: otherwise, if the paired t test (``scipy.stats.ttest_rel``) rejects a zero mean difference.
- *not enough evidence*: neither; the seeds needed are estimated by a power calculation
  (``statsmodels.stats.power.TTestPower``, power 0.8) from the observed mean and spread.

Equivalence is checked first: a difference that is statistically non-zero but inside the margin (say 0.2
points with tiny spread) is, for choosing a framework, no difference.

One comparison alone (:func:`paired_over_seeds`) is decided on its own p-values. Many at once are decided by
:func:`over_family` on p-values adjusted over their family (:mod:`medbench.stats.pvalues`, Holm by default):
the paired t tests form one family and the TOSTs another, each with one member per (pair, metric) that has
two seeds or more. Both raw and adjusted p are kept.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from medbench.stats.pvalues import HOLM, NONE, adjust, family_text

EQUIVALENT = "equivalent"
DIFFERENT = "different"
UNDECIDED = "not enough evidence"
VERDICTS: tuple[str, ...] = (EQUIVALENT, DIFFERENT, UNDECIDED)

DEFAULT_MARGIN_POINTS = 1.0  # percentage points: "within one point of ACC" is the default
DEFAULT_ALPHA = 0.05
TARGET_POWER = 0.8
MAX_SEEDS = 1000  # a power calculation past this says "not with any practical number of seeds"


@dataclass(frozen=True)
class PairedSeeds:
    """The paired comparison of one metric over ``n`` seeds (differences ``a - b``, as fractions)."""

    n: int
    mean: float
    sd: float | None  # sample standard deviation of the differences; None for one seed
    ci_low: float | None  # (1 - alpha) t interval of the mean difference
    ci_high: float | None
    p_difference: float | None  # paired t test of a zero mean difference
    p_equivalence: float | None  # TOST of |mean| >= margin
    margin: float
    alpha: float
    verdict: str  # from the adjusted p-values below
    seeds_needed: int | None  # total paired seeds a power calculation expects to decide; None if unknown
    why: str  # one phrase: what decided the verdict, or what is missing
    # What the verdict compared with alpha: the two p above adjusted over a family of ``comparisons`` tests
    # by ``correction`` (``none`` and 1: a comparison alone, the raw p).
    p_difference_adjusted: float | None = None
    p_equivalence_adjusted: float | None = None
    correction: str = NONE
    comparisons: int = 1

    @property
    def more_seeds(self) -> int | None:
        return None if self.seeds_needed is None else max(0, self.seeds_needed - self.n)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "more_seeds": self.more_seeds}


def _seeds_needed(mean: float, sd: float, margin: float, alpha: float, power: float) -> int | None:
    """Total paired seeds that give ``power`` to decide, if the observed mean and spread are the truth.

    Inside the margin the verdict to expect is *equivalent*: TOST's power is set by its one-sided test on
    the side nearer the margin, effect ``(margin - |mean|) / sd`` (the other side then nearly always passes).
    Outside, it is *different*: the two-sided paired t test with effect ``|mean| / sd``.
    """
    from statsmodels.stats.power import TTestPower

    if not sd > 0:
        return None
    if abs(mean) < margin:
        effect, alternative = (margin - abs(mean)) / sd, "larger"
    else:
        effect, alternative = abs(mean) / sd, "two-sided"
    if effect <= 0:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter for extreme effects
            n = TTestPower().solve_power(
                effect_size=effect, alpha=alpha, power=power, alternative=alternative
            )
    except (ValueError, RuntimeError):
        return None
    n = float(np.asarray(n).reshape(-1)[0])
    if not math.isfinite(n):
        return None
    return min(MAX_SEEDS, max(2, math.ceil(n)))


def paired_over_seeds(
    a: Sequence[float],
    b: Sequence[float],
    *,
    margin: float = DEFAULT_MARGIN_POINTS / 100,
    alpha: float = DEFAULT_ALPHA,
    power: float = TARGET_POWER,
) -> PairedSeeds:
    """Compares ``a[i]`` with ``b[i]`` (the same seed in two frameworks).

    Args:
        a, b: one metric per seed, as fractions (0.865, not 86.5), in the same seed order.
        margin: the equivalence margin, in the same unit (0.01 = one point).
        alpha: significance level of every test; the interval is a (1 - alpha) one.
        power: the power the seeds-needed estimate aims for.

    Raises:
        ValueError: if ``a`` and ``b`` differ in length or are empty, or margin/alpha are out of range.
    """
    from scipy import stats
    from statsmodels.stats.weightstats import ttost_paired

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(
            f"need two equally long, non-empty lists of per-seed values; got {x.shape}, {y.shape}"
        )
    if not margin > 0 or not 0 < alpha < 1:
        raise ValueError(f"margin must be > 0 and alpha in (0, 1); got {margin}, {alpha}")
    d = x - y
    n, mean = int(d.size), float(d.mean())
    common = {"n": n, "mean": mean, "margin": margin, "alpha": alpha}
    if n < 2:
        return PairedSeeds(
            **common,
            sd=None,
            ci_low=None,
            ci_high=None,
            p_difference=None,
            p_equivalence=None,
            verdict=UNDECIDED,
            seeds_needed=None,
            why="one seed gives no spread: run at least 3 seeds",
        )
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        # Every seed differs by exactly the same amount (e.g. identical predictions): no test is needed,
        # and the t statistics would be 0/0.
        equivalent = abs(mean) < margin
        p_diff, p_eq = 1.0 if mean == 0 else 0.0, 0.0 if equivalent else 1.0
        return PairedSeeds(
            **common,
            sd=0.0,
            ci_low=mean,
            ci_high=mean,
            p_difference=p_diff,
            p_equivalence=p_eq,
            p_difference_adjusted=p_diff,
            p_equivalence_adjusted=p_eq,
            verdict=EQUIVALENT if equivalent or mean == 0 else DIFFERENT,
            seeds_needed=None,
            why="the same difference at every seed",
        )
    low, high = stats.t.interval(1 - alpha, n - 1, loc=mean, scale=sd / math.sqrt(n))
    with warnings.catch_warnings():
        # scipy warns of "catastrophic cancellation" when the differences are tiny beside the values
        # (equal predictions but one image): the differences themselves are exact, and sd > 0 here.
        warnings.simplefilter("ignore", RuntimeWarning)
        p_diff = float(stats.ttest_rel(x, y).pvalue)
        p_eq = float(ttost_paired(x, y, -margin, margin)[0])
    tested = PairedSeeds(
        **common,
        sd=sd,
        ci_low=float(low),
        ci_high=float(high),
        p_difference=p_diff,
        p_equivalence=p_eq,
        verdict=UNDECIDED,
        seeds_needed=None,
        why="",
    )
    return _decided(tested, p_difference=p_diff, p_equivalence=p_eq, power=power)


def _decided(
    s: PairedSeeds,
    *,
    p_difference: float,
    p_equivalence: float,
    correction: str = NONE,
    comparisons: int = 1,
    power: float = TARGET_POWER,
) -> PairedSeeds:
    """``s`` decided on these (adjusted) p-values: TOST first, then the t test, else the seeds needed.

    The seeds needed are sized for a test at alpha / comparisons under Holm: Holm's strictest step tests at
    that level, so the estimate holds whatever the other comparisons of the family turn out to be.
    """
    alpha = s.alpha
    family = "" if correction == NONE else f" ({family_text(correction, comparisons)})"
    if p_equivalence < alpha:
        verdict, needed, why = EQUIVALENT, None, f"TOST p = {p_equivalence:.3g} < {alpha:g}{family}"
    elif p_difference < alpha:
        verdict, needed, why = DIFFERENT, None, f"paired t p = {p_difference:.3g} < {alpha:g}{family}"
    else:
        verdict = UNDECIDED
        level = alpha / comparisons if correction == HOLM else alpha
        needed = _seeds_needed(s.mean, s.sd, s.margin, level, power) if s.sd is not None else None
        why = (
            f"neither TOST (p = {p_equivalence:.3g}) nor the t test (p = {p_difference:.3g}) is below "
            f"{alpha:g}{family}; "
            + (f"about {needed} seeds in all should decide" if needed else "too noisy to say how many seeds")
        )
    return replace(
        s,
        verdict=verdict,
        seeds_needed=needed,
        why=why,
        p_difference_adjusted=p_difference,
        p_equivalence_adjusted=p_equivalence,
        correction=correction,
        comparisons=comparisons,
    )


def over_family(
    results: Sequence[PairedSeeds], correction: str = HOLM, *, power: float = TARGET_POWER
) -> list[PairedSeeds]:
    """``results`` decided together: each one's t-test p adjusted over the family of every t test among them,
    each TOST p over every TOST, by ``correction`` (:data:`medbench.stats.pvalues.CORRECTIONS`). A result
    without a test (one seed) is no member and stays undecided; ``none`` gives each its own verdict.

    Raises:
        ValueError: for an unknown correction.
    """
    tested = [i for i, s in enumerate(results) if s.p_difference is not None and s.p_equivalence is not None]
    p_diff = adjust([results[i].p_difference for i in tested], correction)
    p_eq = adjust([results[i].p_equivalence for i in tested], correction)
    adjusted = dict(zip(tested, zip(p_diff, p_eq, strict=True), strict=True))
    family = {"correction": correction, "comparisons": len(tested)}
    out = []
    for i, s in enumerate(results):
        if i not in adjusted:
            out.append(replace(s, **family))
        elif s.sd == 0.0:
            # no test was needed (p exactly 0 or 1, which any adjustment keeps): the verdict stands
            d, e = adjusted[i]
            out.append(replace(s, p_difference_adjusted=d, p_equivalence_adjusted=e, **family))
        else:
            d, e = adjusted[i]
            out.append(_decided(s, p_difference=d, p_equivalence=e, power=power, **family))
    return out
