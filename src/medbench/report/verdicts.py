"""The report's first screen: the user's question answered in words, before any table.

For each comparison (dataset, size, model, variant) three sentences: which framework is most accurate and
whether that is a real difference (:mod:`medbench.stats.pairs`: paired over seeds, TOST within a margin),
which trains fastest and which predicts fastest, each ratio called a difference only when its spread over
repeats allows it. The full pairs and speed tables follow, folded away.
"""

from __future__ import annotations

from collections.abc import Sequence

from medbench.report.aggregate import Comparison
from medbench.report.document import Cell, Details, Note, Row, Section, Table
from medbench.report.pooling import FrameworkResult
from medbench.results import RunRecord
from medbench.stats.latency import LatencyPair, compare_latency
from medbench.stats.pairs import FrameworkPair, compare_frameworks
from medbench.stats.pvalues import DEFAULT_CORRECTION, HOLM, p_text
from medbench.stats.rows import FAMILY_COLUMNS, family_note, family_of, pair_rows, speed_rows
from medbench.stats.seeds import (
    DEFAULT_ALPHA,
    DEFAULT_MARGIN_POINTS,
    DIFFERENT,
    EQUIVALENT,
    MAX_SEEDS,
    PairedSeeds,
)
from medbench.stats.speed import FASTER, SLOWER, Ratio

_P_VALUES = {"p (t)", "p (t) adj.", "p (TOST)", "p (TOST) adj.", "image p (median)", "p (Welch, log)"}
_NUMERIC = {"seeds", "mean A %", "mean B %", "diff pts", "A / B", *_P_VALUES}


def _points(value: float) -> str:
    return f"{value * 100:.1f}"


def _pair_for(
    pairs: Sequence[FrameworkPair], c: Comparison, x: str, y: str
) -> tuple[FrameworkPair, int] | None:
    """The pair of ``x`` and ``y`` in ``c`` and the sign that turns its a - b into x - y."""
    for p in pairs:
        if p.comparison is c and {p.a, p.b} == {x, y}:
            return p, 1 if p.a == x else -1
    return None


def _accuracy_phrase(best: str, other: FrameworkResult, pairs, c: Comparison, margin: float) -> str:
    found = _pair_for(pairs, c, best, other.framework)
    head = f"{other.framework} ({_points(other.test_acc.mean)}%)"
    m = found[0].metric("acc") if found else None
    if m is None:
        return f"{head}: no seeds in common to pair"
    sign, s = found[1], m.seeds
    if s.verdict == EQUIVALENT:
        return f"{head} equivalent within ±{margin:g} point{'s' if margin != 1 else ''}"
    interval = ""
    if s.ci_low is not None:
        low, high = sorted((sign * s.ci_low, sign * s.ci_high))
        interval = f", 95% CI {_points(low)} to {_points(high)}"
    gap = f"{best} ahead by {_points(sign * s.mean)} points{interval}"
    if s.verdict == DIFFERENT:
        return f"{head} really behind ({gap}, over {s.n} paired seeds)"
    return f"{head}: not enough evidence ({gap}; {_more_seeds(s)})"


def _more_seeds(s: PairedSeeds) -> str:
    if s.n < 2:
        return "one seed gives no spread: run at least 3"
    if s.seeds_needed is None:
        return "too noisy to estimate how many more seeds would decide"
    if s.seeds_needed >= MAX_SEEDS:
        return f"not even {MAX_SEEDS} seeds would likely decide"
    return f"about {s.more_seeds} more seeds would decide"


def accuracy_sentence(c: Comparison, pairs: Sequence[FrameworkPair], margin: float) -> str:
    scored = [f for f in c.frameworks if f.test_acc is not None]
    if not scored:
        return "Most accurate: no run stored a test ACC."
    best = max(scored, key=lambda f: f.test_acc.mean)
    lead = f"{best.framework} ({_points(best.test_acc.mean)}% test ACC, mean of {best.test_acc.n} seed(s))"
    if len(scored) == 1:
        return f"Most accurate: only {lead} ran; nothing to compare."
    others = [f for f in scored if f is not best]
    phrases = [_accuracy_phrase(best.framework, o, pairs, c, margin) for o in others]
    verdicts = [(_pair_for(pairs, c, best.framework, o.framework) or (None, 0))[0] for o in others]
    all_equivalent = all(
        p is not None and p.metric("acc") and p.metric("acc").seeds.verdict == EQUIVALENT for p in verdicts
    )
    if all_equivalent:
        return f"Most accurate: no framework stands out; {lead} and " + ", ".join(phrases) + "."
    return f"Most accurate: {lead}; " + "; ".join(phrases) + "."


def _ratio_phrase(other: str, r: Ratio, sign: int) -> tuple[str, bool]:
    """How the faster framework compares with ``other`` (``sign`` -1 when it is ``b`` of the ratio), and
    whether the spread allows calling it a difference."""
    speedup = r.speedup if sign == 1 else 1 / r.speedup
    ci = r.speedup_ci
    interval = ""
    if ci is not None:
        low, high = ci if sign == 1 else (1 / ci[1], 1 / ci[0])
        interval = f", 95% CI {low:.2f} to {high:.2f}"
    if r.verdict in (FASTER, SLOWER):
        return f"{speedup:.2f}x as fast as {other}{interval}", True
    if r.p_value is None:
        return f"{speedup:.2f}x as fast as {other} (too few repeats to tell)", False
    return f"not clearly faster than {other} ({speedup:.2f}x{interval})", False


def training_sentence(c: Comparison, pairs: Sequence[FrameworkPair]) -> str:
    timed = [f for f in c.frameworks if f.images_per_s is not None]
    if not timed:
        return "Fastest to train: no training speed was recorded."
    best = max(timed, key=lambda f: f.images_per_s.mean)
    lead = f"{best.framework} ({best.images_per_s.mean:,.0f} img/s)"
    if len(timed) == 1:
        return f"Fastest to train: only {lead} was timed."
    if c.machines > 1:
        return f"Fastest to train: not compared, the runs come from {c.machines} different machines."
    phrases, clear = [], True
    for o in timed:
        if o is best:
            continue
        found = _pair_for(pairs, c, best.framework, o.framework)
        r = found[0].speed.get("train img/s") if found else None
        if r is None:
            phrases.append(f"{o.framework}: no timings to compare")
            clear = False
            continue
        phrase, decided = _ratio_phrase(o.framework, r, found[1])
        phrases.append(phrase)
        clear = clear and decided
    head = (
        f"Fastest to train: {lead}, "
        if clear
        else f"Fastest to train: no clear winner; {lead} leads by the mean, "
    )
    return head + "; ".join(phrases) + " (steady training images/s over seeds)."


def prediction_sentence(c: Comparison, latency: Sequence[LatencyPair]) -> str:
    here = [lp for lp in latency if lp.model == c.key.model and lp.size == c.key.input_size]
    if not here:
        return (
            f"Fastest to predict: no inference benchmark of {c.key.model} at {c.key.input_size} px in this "
            "selection (`medbench bench`, or `[measure.bench]` in the experiment)."
        )
    best: dict[str, tuple[str, float]] = {}
    for lp in here:
        best[lp.a] = (lp.engine_a, lp.median_a_ms)
        best[lp.b] = (lp.engine_b, lp.median_b_ms)
    fastest = min(best, key=lambda fw: best[fw][1])
    engine, ms = best[fastest]
    phrases, clear = [], True
    for lp in here:
        if fastest not in (lp.a, lp.b):
            continue
        other, other_engine = (lp.b, lp.engine_b) if lp.a == fastest else (lp.a, lp.engine_a)
        phrase, decided = _ratio_phrase(f"{other} ({other_engine})", lp.ratio, 1 if lp.a == fastest else -1)
        phrases.append(phrase)
        clear = clear and decided
    lead = f"{fastest} ({engine}, {ms:.3g} ms median p50 latency at batch 1)"
    head = (
        f"Fastest to predict: {lead}, " if clear else f"Fastest to predict: no clear winner; {lead} leads, "
    )
    return head + "; ".join(phrases) + " (over the benchmark's repeats)."


def _cell_text(column: str, value: object) -> str:
    if value in (None, ""):
        return "–"
    return p_text(value) if column in _P_VALUES else str(value)


def _table(columns: Sequence[str], rows: Sequence[dict], name: str, caption: str) -> Table:
    columns = [col for col in columns if col not in FAMILY_COLUMNS]  # the caption says them once
    body = tuple(
        Row(tuple(Cell(_cell_text(col, row.get(col)), numeric=col in _NUMERIC) for col in columns))
        for row in rows
    )
    return Table(tuple(columns), body, name=name, caption=caption)


def _family_sentence(pairs: Sequence[FrameworkPair]) -> str:
    correction, n = family_of(pairs)
    if correction == HOLM:
        return (
            f"Both tests' p are Holm-adjusted over the {n} (pair, metric) comparisons of this report with two "
            "seeds or more (the t tests one family, the TOSTs another), and the seeds needed sized for the "
            "strictest step; the tests on the test images and the speed ratios are not adjusted."
        )
    return f"The p are not corrected for the {n} comparisons made: read one near the level with that in mind."


def answer_section(
    runs: Sequence[RunRecord],
    comparisons: Sequence[Comparison],
    *,
    margin_points: float = DEFAULT_MARGIN_POINTS,
    alpha: float = DEFAULT_ALPHA,
    correction: str = DEFAULT_CORRECTION,
) -> Section:
    """ "The answer": three sentences per comparison, then the pairs and speed tables (folded). The
    verdicts of every comparison in the report are one family for ``correction``."""
    pairs = compare_frameworks(
        runs, margin_points=margin_points, alpha=alpha, comparisons=comparisons, correction=correction
    )
    latency = compare_latency(runs, alpha=alpha)
    blocks: list = []
    for i, c in enumerate(comparisons):
        sentences = [
            Note(accuracy_sentence(c, pairs, margin_points)),
            Note(training_sentence(c, pairs)),
            Note(prediction_sentence(c, latency)),
        ]
        blocks.append(Section(c.title, f"answer-{i + 1}", sentences, level=3))
    blocks.append(
        Note(
            f"Accuracy verdicts pair runs of the same seed (same start, batches and noise): equivalent = TOST at "
            f"{alpha:g} within ±{margin_points:g} point(s) (the 90% interval inside the margin), different = paired "
            f"t test at {alpha:g}, else not enough evidence with the seeds a power calculation expects to decide. "
            f"{_family_sentence(pairs)} "
            "Speed ratios are of geometric means, with a Welch interval on the logarithms of the repeats.",
            "muted",
        )
    )
    columns, rows = pair_rows(pairs, alpha=alpha)
    if rows:
        caption = (
            f"A - B paired by seed; the verdicts rest on the adj. columns, {family_note(pairs)}; "
            "image test: per seed on the same test images, unadjusted"
        )
        blocks.append(
            Details(
                f"Every pair of frameworks, every metric ({len(rows)})",
                (_table(columns, rows, "pairs", caption),),
            )
        )
    speed_columns, speed = speed_rows(pairs, latency)
    if speed:
        blocks.append(
            Details(
                f"Speed ratios ({len(speed)})",
                (_table(speed_columns, speed, "speed-ratios", "ratio of geometric means"),),
            )
        )
    return Section("The answer", "answer", blocks)
