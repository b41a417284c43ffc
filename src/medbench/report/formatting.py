"""How the report writes numbers, intervals and names: one unit (percent), one dash, stable slugs."""

from __future__ import annotations

import re

from medbench.report.pooling import CI, Stat

DASH = "–"
CI_HINT = "95% percentile bootstrap CI over the test set, of the seed with the best validation AUC"


def pct(stat: Stat | None, digits: int = 1) -> str:
    """A fraction over seeds as percent: ``91.2 ± 0.4``; a single seed shows no spread."""
    if stat is None:
        return DASH
    text = f"{stat.mean * 100:.{digits}f}"
    return f"{text} ± {stat.std * 100:.{digits}f}" if stat.std is not None else text


def pct_value(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value * 100:.{digits}f}"


def ci_text(ci: CI | None, digits: int = 1, *, with_seed: bool = True) -> str:
    """``[90.1, 92.3] (seed 1)``, in percent."""
    if ci is None:
        return DASH
    seed = f" (seed {ci.seed})" if with_seed and ci.seed is not None else ""
    return f"[{ci.low * 100:.{digits}f}, {ci.high * 100:.{digits}f}]{seed}"


def number(stat: Stat | None, digits: int = 2, *, spread: bool = True) -> str:
    """Seconds, images/s ...: ``12.30 ± 0.21``; large values get thousands separators and no decimals."""
    if stat is None:
        return DASH
    d = 0 if stat.mean >= 1000 else digits
    text = f"{stat.mean:,.{d}f}"
    return f"{text} ± {stat.std:,.{d}f}" if spread and stat.std is not None else text


def float_text(value: object, digits: int = 2, suffix: str = "") -> str:
    return f"{value:,.{digits}f}{suffix}" if isinstance(value, (int, float)) else DASH


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("→", "to")).strip("-") or "x"


def when_text(text: str | None) -> str:
    return (text or "")[:16].replace("T", " ")


class FigureNames:
    """Unique figure file stems within one report."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, text: str) -> str:
        base = name = slug(text)
        i = 2
        while name in self._seen:
            name, i = f"{base}-{i}", i + 1
        self._seen.add(name)
        return name
