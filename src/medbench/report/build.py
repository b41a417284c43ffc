"""Turns stored runs into the report's :class:`~medbench.report.document.Document`.

The order follows what a reader needs to choose a framework: the verdict at a glance first, then the
evidence per dataset (tables beside the published figures, plots, per-seed details), then the inference
benchmark, what failed, the environment, and the references with their sources.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from medbench.report.aggregate import (
    Comparison,
    compare,
)
from medbench.report.appendix import environment_section, failures_section, references_section
from medbench.report.bench import bench_section, inference_summaries
from medbench.report.datasets import dataset_section
from medbench.report.document import Document, Note, Section
from medbench.report.formatting import FigureNames
from medbench.report.glance import glance_notes, glance_table, header_facts, how_to_read
from medbench.report.profiles import profile_section
from medbench.report.references import (
    Reference,
    load_references,
)
from medbench.report.verdicts import answer_section
from medbench.results import RunRecord
from medbench.stats.pvalues import DEFAULT_CORRECTION


def build_document(
    runs: Sequence[RunRecord],
    *,
    store_path: str | Path,
    filters: str = "all runs",
    generated_at: datetime | None = None,
    references: tuple[Reference, ...] | None = None,
    margin_points: float = 1.0,
    correction: str = DEFAULT_CORRECTION,
) -> Document:
    """The whole report for ``runs`` (already filtered by the caller); ``margin_points``: the equivalence
    margin of the verdicts between frameworks, ``correction``: how their p are adjusted over the report's
    comparisons (``holm``, ``none``)."""
    references = load_references() if references is None else references
    generated_at = generated_at or datetime.now(timezone.utc)
    names = FigureNames()
    comparisons = compare(runs)
    by_dataset: dict[str, list[Comparison]] = defaultdict(list)
    for c in comparisons:
        by_dataset[c.key.dataset].append(c)
    datasets = sorted({r.dataset for r in runs if r.dataset})
    summaries = inference_summaries(runs)
    # the answer to the user's question comes before any table
    sections = (
        [answer_section(runs, comparisons, margin_points=margin_points, correction=correction)]
        if comparisons
        else []
    )
    if comparisons:
        glance = [glance_table(comparisons, summaries), *glance_notes(comparisons)]
        sections.append(Section("At a glance", "glance", glance))
    else:
        sections.append(
            Section("At a glance", "glance", [Note("No completed training run matches.", "warn")])
        )
    sections.append(how_to_read())
    for dataset in sorted(by_dataset):
        sections.append(dataset_section(dataset, by_dataset[dataset], names, references))
    bench = bench_section(runs, names)
    if bench is not None:
        sections.append(bench)
    profile = profile_section(runs)
    sections += [profile] if profile is not None else []
    sections += [failures_section(runs), environment_section(runs), references_section(datasets, references)]
    facts = header_facts(runs, store_path=str(store_path), filters=filters, generated_at=generated_at)
    return Document("medbench report: PyTorch vs JAX vs Keras on MedMNIST", facts, sections)
