"""p-values of many comparisons at once: adjusted over their family (Holm), and written for people.

One ``medbench compare`` (or the report's answer) tests every pair of frameworks on every metric: three
frameworks and four metrics are 12 tests, and at alpha 0.05 one of 12 true nulls comes out "significant"
nearly half the time. Holm's step-down (``statsmodels.stats.multitest.multipletests``, method ``"holm"``)
keeps the chance of any false call in the family at alpha, for any dependence between the tests, and rejects
everything Bonferroni rejects and often more. ``"none"`` keeps each test's own p (the verdicts before the
correction existed).

Light on purpose: the CLI's output module imports :func:`p_text`; statsmodels loads only to adjust.
"""

from __future__ import annotations

from collections.abc import Sequence

HOLM = "holm"
NONE = "none"
CORRECTIONS: tuple[str, ...] = (HOLM, NONE)
DEFAULT_CORRECTION = HOLM
P_DIGITS = 4  # decimals people read; a smaller p reads "<0.0001"


def adjust(p_values: Sequence[float], method: str = DEFAULT_CORRECTION) -> list[float]:
    """``p_values`` adjusted over their family, in the same order: compare each with alpha as it is.

    Raises:
        ValueError: for a method not in :data:`CORRECTIONS`, or a p outside [0, 1].
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; use one of: {', '.join(CORRECTIONS)}")
    if any(not 0.0 <= p <= 1.0 for p in p_values):  # also refuses NaN
        raise ValueError(f"p-values must lie in [0, 1]; got {list(p_values)}")
    if method == NONE or not p_values:
        return [float(p) for p in p_values]
    from statsmodels.stats.multitest import multipletests

    # alpha only decides multipletests' reject flags, not the adjusted p-values used here
    return [float(p) for p in multipletests(list(p_values), method="holm")[1]]


def family_text(method: str, comparisons: int) -> str:
    """What the p-values of a table are: ``Holm-adjusted over 12 comparisons`` or ``uncorrected ...``."""
    many = f"{comparisons} comparison{'s' if comparisons != 1 else ''}"
    return f"Holm-adjusted over {many}" if method == HOLM else f"uncorrected for {many}"


def p_text(p: float, digits: int = P_DIGITS) -> str:
    """A p-value for people: ``digits`` decimals, and below what they show ``<0.0001`` (for 4), never
    ``0.0000``, which would claim a p of zero. Only the text is rounded: rows and CSV/JSON keep the value."""
    smallest = 10.0**-digits
    return f"<{smallest:.{digits}f}" if p < smallest else f"{p:.{digits}f}"
