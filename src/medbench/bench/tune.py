"""``medbench tune``'s library: probe each documented performance choice of a framework, find the fastest.

For one (framework, model, size, batch), every candidate of :func:`medbench.frameworks.settings.tune_candidates`
(out of the box, then each choice changed alone) is a training probe (:mod:`medbench.bench.train_probe`) in a
fresh process, repeated in rounds over the candidates (A B C A B C ...) so that a slow drift of the machine
does not fall on one of them. The figure of a candidate is the median of its repeats, with their IQR and
range. A choice *beats* out of the box only beyond the noise: its slowest repeat faster than out of the
box's fastest, and its median at least :data:`MIN_GAIN` above; otherwise out of the box stays the best, so
noise is never written into an experiment. When more than one choice beats out of the box, their
combination is probed too (as many repeats), so the best row may be a combination. A probe that fails (a
setting this build cannot honour, a compiler missing) is a row with its reason, never the best.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from medbench.bench.plan import Measurement
from medbench.bench.train_probe import PROBE_MEASUREMENT, ProbeResult, probe_config, run_probe
from medbench.config import set_dotted
from medbench.frameworks.settings import Candidate, tune_candidates
from medbench.timing import RepeatSummary

Probe = Callable[..., ProbeResult]  # run_probe's signature; tests pass a fake
MIN_GAIN = 0.02  # a tuned setting must be this much faster (median) than out of the box to be chosen


@dataclass
class TuneRow:
    """One candidate and its probes (one per repeat)."""

    candidate: Candidate
    results: list[ProbeResult] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.candidate.label

    @property
    def summary(self) -> RepeatSummary | None:
        """img/s over the repeats that completed; None when none did."""
        values = [r.images_per_s for r in self.results if r.ok]
        return RepeatSummary.from_values(values) if values else None

    @property
    def status(self) -> str:
        ok = sum(r.ok for r in self.results)
        return "ok" if ok == len(self.results) else "failed" if not ok else f"{ok}/{len(self.results)} ok"

    @property
    def reason(self) -> str | None:
        return next((r.reason for r in self.results if not r.ok), None)


@dataclass
class TuneResult:
    framework: str
    model: str
    size: int
    batch_size: int
    dataset: str
    threads: int | None
    repeats: int
    rows: list[TuneRow]

    @property
    def baseline(self) -> TuneRow:
        return self.rows[0]

    @property
    def best(self) -> TuneRow | None:
        """The fastest candidate that :func:`beats` out of the box, else out of the box itself; None when
        out of the box failed and nothing else completed."""
        winners = [row for row in self.rows[1:] if beats(row, self.baseline)]
        if winners:
            return max(winners, key=lambda row: row.summary.median)
        if self.baseline.summary is not None:
            return self.baseline
        measured = [row for row in self.rows if row.summary is not None]
        return max(measured, key=lambda row: row.summary.median) if measured else None

    def ratio(self, row: TuneRow) -> float | None:
        """``row``'s median over out of the box's."""
        base, mine = self.baseline.summary, row.summary
        return mine.median / base.median if base and mine and base.median else None

    def best_runtime(self) -> dict[str, Any]:
        """The best candidate's run-config ``runtime`` fields, nested (``{"settings": {"onednn": False}}``)."""
        best = self.best
        return runtime_fields(best.candidate.overrides) if best else {}


def runtime_fields(overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted ``runtime.*`` overrides as the nested ``runtime`` section of a run config."""
    out: dict[str, Any] = {}
    for dotted, value in overrides.items():
        out = set_dotted(out, dotted, value)
    return out.get("runtime", {})


def beats(row: TuneRow, baseline: TuneRow) -> bool:
    """Whether ``row`` is faster than ``baseline`` beyond the noise (see the module docstring)."""
    mine, base = row.summary, baseline.summary
    if mine is None or base is None:
        return False
    return mine.min > base.max and mine.median >= base.median * (1 + MIN_GAIN)


def combination(rows: Sequence[TuneRow], baseline: TuneRow) -> Candidate | None:
    """Every single choice that beats out of the box, together; None unless two or more do."""
    winners = [r for r in rows if r is not baseline and beats(r, baseline)]
    if len(winners) < 2:
        return None
    overrides: dict[str, Any] = {}
    for row in winners:
        for dotted, value in row.candidate.overrides.items():
            if dotted.endswith("xla_flags") and dotted in overrides:  # flags add up; other keys differ
                value = f"{overrides[dotted]} {value}"
            overrides[dotted] = value
    return Candidate(" + ".join(r.label for r in winners), overrides)


def run_tune(
    framework: str,
    model: str = "simple_cnn",
    *,
    size: int = 28,
    batch_size: int = 128,
    dataset: str = "pathmnist",
    threads: int | None = None,
    repeats: int = 3,
    measurement: Measurement = PROBE_MEASUREMENT,
    combine: bool = True,
    timeout_s: float = 900.0,
    echo: Callable[[str], None] = lambda line: None,
    probe: Probe | None = None,
) -> TuneResult:
    """Probes every candidate of ``framework`` ``repeats`` times, interleaved (see the module docstring);
    ``probe`` defaults to :func:`~medbench.bench.train_probe.run_probe` (a fresh process per probe)."""
    probe = probe or run_probe
    rows = [TuneRow(c) for c in tune_candidates(framework)]
    base_runtime = {} if threads is None else {"threads": threads}

    def measure(round_rows: Sequence[TuneRow], repeat: int) -> None:
        for row in round_rows:
            runtime = {**base_runtime, **runtime_fields(row.candidate.overrides)}
            config = probe_config(framework, model, size=size, batch_size=batch_size, dataset=dataset,
                                  runtime=runtime)  # fmt: skip
            result = probe(config, measurement=measurement, timeout_s=timeout_s)
            row.results.append(result)
            echo(_progress(row, result, repeat, repeats))

    for repeat in range(repeats):
        measure(rows, repeat)
    together = combination(rows, rows[0]) if combine else None
    if together is not None:
        rows.append(TuneRow(together))
        for repeat in range(repeats):
            measure(rows[-1:], repeat)
    return TuneResult(framework, model, size, batch_size, dataset, threads, repeats, rows)


def _progress(row: TuneRow, result: ProbeResult, repeat: int, repeats: int) -> str:
    what = f"{result.images_per_s:,.0f} img/s" if result.ok else f"failed: {result.reason}"
    return f"[{repeat + 1}/{repeats}] {row.label}: {what}"
