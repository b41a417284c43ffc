"""One (dataset, size, model) comparison as a section of the report: the table beside the published figures,
curves, confusion matrices, every run, and the notes that explain them, in the order a reader wants them.

The blocks come from ``comparison_tables``, ``comparison_notes`` and ``comparison_figures``; the per-step
loss agreement from ``trajectory``.
"""

from __future__ import annotations

from medbench.report import trajectory
from medbench.report.aggregate import Comparison
from medbench.report.comparison_figures import confusion_figure, curve_figures
from medbench.report.comparison_notes import comparison_notes, provenance_notes
from medbench.report.comparison_tables import recall_table, runs_table, verdict_table
from medbench.report.document import Details, Section
from medbench.report.formatting import FigureNames, slug
from medbench.report.references import Reference, match_references


def comparison_section(c: Comparison, names: FigureNames, references: tuple[Reference, ...]) -> Section:
    """The section of comparison ``c``, beside the published figures for its dataset among ``references``."""
    refs, same_model = match_references(c.key.dataset, c.key.model, c.key.size, c.key.input_size, references)
    blocks: list = [verdict_table(c, refs, same_model), *comparison_notes(c, refs, same_model)]
    recall = recall_table(c)
    if recall is not None:
        blocks.append(recall)
    blocks += curve_figures(c, names)
    agreement = trajectory.figure(c, names)  # per-step loss agreement between frameworks (issue 11)
    if agreement is not None:
        blocks.append(agreement)
    confusion = confusion_figure(c, names)
    if confusion is not None:
        blocks.append(confusion)
    blocks.append(
        Details(
            f"Every run ({sum(len(f.runs) for f in c.frameworks)})", (runs_table(c), *provenance_notes(c))
        )
    )
    return Section(c.title, slug(c.title), blocks, level=3)
