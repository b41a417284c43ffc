"""The framework pairs as plain rows (a dict per row, with the column names) for any renderer: the CLI's
table, CSV and JSON (``medbench compare``, ``medbench run``) and the report's folded tables.

p-values are kept as computed: a renderer rounds them for people (:func:`medbench.stats.pvalues.p_text`),
while CSV and JSON get every digit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from medbench.report.aggregate import Comparison
from medbench.stats.latency import LatencyPair
from medbench.stats.pairs import FrameworkPair
from medbench.stats.pvalues import DEFAULT_CORRECTION, family_text
from medbench.stats.seeds import DEFAULT_ALPHA, MAX_SEEDS, PairedSeeds
from medbench.stats.speed import Ratio

# What a row is about: the keys of :func:`_subject`, first in both tables.
_SUBJECT_COLUMNS: tuple[str, ...] = ("dataset", "size", "model", "variant")
# How the verdicts' p were adjusted, and over how many tests: the same on every row, for scripts; a table
# for people says it once, in its title (:func:`family_note`).
FAMILY_COLUMNS: tuple[str, ...] = ("correction", "comparisons")
PAIR_COLUMNS: tuple[str, ...] = (
    *_SUBJECT_COLUMNS,
    "pair",
    "metric",
    "seeds",
    "mean A %",
    "mean B %",
    "diff pts",
    "95% CI pts",
    "p (t)",
    "p (t) adj.",
    "p (TOST)",
    "p (TOST) adj.",
    "image test",
    "image p (median)",
    "verdict",
    "more seeds",
    *FAMILY_COLUMNS,
)
SPEED_COLUMNS: tuple[str, ...] = (
    *_SUBJECT_COLUMNS,
    "pair",
    "measure",
    "repeats",
    "A / B",
    "95% CI",
    "p (Welch, log)",
    "verdict",
    "note",
)


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _p(value: float | None) -> float | None:
    """A p-value as it is (never rounded here), or None."""
    return None if value is None or not math.isfinite(value) else float(value)


def _ci(low: float | None, high: float | None, scale: float = 1.0, digits: int = 2) -> str:
    if low is None or high is None:
        return "-"
    return f"[{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def _subject(c: Comparison) -> dict[str, Any]:
    return {
        "dataset": c.key.dataset,
        "size": c.key.size_label,
        "model": c.key.model,
        "variant": c.variant_label,
    }


def more_seeds_text(s: PairedSeeds) -> str:
    if s.verdict != "not enough evidence":
        return ""
    if s.n < 2:
        return "run >= 3 seeds"
    if s.seeds_needed is None:
        return "unknown"
    if s.seeds_needed >= MAX_SEEDS:
        return f"over {MAX_SEEDS} in all"
    return str(s.more_seeds)


def pair_rows(
    pairs: Sequence[FrameworkPair], *, alpha: float = DEFAULT_ALPHA
) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per (pair, metric): plain values, for any renderer (table, CSV, JSON)."""
    rows = []
    for p in pairs:
        for m in p.metrics:
            s = m.seeds
            image = "-"
            if m.image_tests:
                image = f"{m.image_method}: p<{alpha:g} in {m.image_significant(alpha)}/{len(m.image_tests)} seeds"
            elif m.image_note:
                image = m.image_note
            rows.append(
                {
                    **_subject(p.comparison),
                    "pair": f"{p.a} - {p.b}",
                    "metric": m.label,
                    "seeds": s.n,
                    "mean A %": _r(m.mean_a * 100, 2),
                    "mean B %": _r(m.mean_b * 100, 2),
                    "diff pts": _r(s.mean * 100, 2),
                    "95% CI pts": _ci(s.ci_low, s.ci_high, 100),
                    "p (t)": _p(s.p_difference),
                    "p (t) adj.": _p(s.p_difference_adjusted),
                    "p (TOST)": _p(s.p_equivalence),
                    "p (TOST) adj.": _p(s.p_equivalence_adjusted),
                    "image test": image,
                    "image p (median)": _p(m.image_p_median),
                    "verdict": s.verdict,
                    "more seeds": more_seeds_text(s),
                    "correction": s.correction,
                    "comparisons": s.comparisons,
                }
            )
    return list(PAIR_COLUMNS), rows


def family_of(pairs: Sequence[FrameworkPair]) -> tuple[str, int]:
    """(correction, comparisons) of the verdicts of ``pairs``, one family (``compare_frameworks`` makes it)."""
    decided = next((m.seeds for p in pairs for m in p.metrics), None)
    return (decided.correction, decided.comparisons) if decided else (DEFAULT_CORRECTION, 0)


def family_note(pairs: Sequence[FrameworkPair]) -> str:
    """How the verdicts of ``pairs`` were reached: ``p Holm-adjusted over 12 comparisons`` (t tests and
    TOSTs each a family of that size), or ``p uncorrected for 12 comparisons``."""
    return "p " + family_text(*family_of(pairs))


def _ratio_cells(r: Ratio) -> dict[str, Any]:
    return {
        "repeats": f"{r.n_a} / {r.n_b}",
        "A / B": _r(r.ratio, 3),
        "95% CI": _ci(r.ci_low, r.ci_high, digits=3),
        "p (Welch, log)": _p(r.p_value),
        "verdict": r.verdict,
    }


def speed_rows(
    pairs: Sequence[FrameworkPair], latency: Sequence[LatencyPair] = ()
) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per (pair, timing): training img/s and s/epoch over seeds, inference latency over repeats."""
    rows = []
    for p in pairs:
        for label, r in p.speed.items():
            note = "" if p.same_machine else "runs on different machines: ratio not comparable"
            rows.append(
                {
                    **_subject(p.comparison),
                    "pair": f"{p.a} / {p.b}",
                    "measure": label,
                    **_ratio_cells(r),
                    "note": note,
                }
            )
    for lp in latency:
        rows.append(
            {
                "dataset": "-",
                "size": str(lp.size),
                "model": lp.model,
                "variant": "",
                "pair": f"{lp.a} / {lp.b}",
                "measure": "latency p50 (batch 1)",
                **_ratio_cells(lp.ratio),
                "note": f"{lp.engine_a} {lp.median_a_ms:.3g} ms vs {lp.engine_b} {lp.median_b_ms:.3g} ms",
            }
        )
    return list(SPEED_COLUMNS), rows
