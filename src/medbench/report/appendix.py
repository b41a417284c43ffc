"""The report's last sections: what failed, the environment of every framework, the references."""

from __future__ import annotations

from collections.abc import Sequence

from medbench.report.aggregate import unfinished_runs
from medbench.report.document import Cell, Details, Note, Row, Section, Table
from medbench.report.environments import group_environments
from medbench.report.formatting import DASH, pct_value, when_text
from medbench.report.references import (
    MEDMNIST_PLUS_NOTE,
    SOURCES,
    UPSAMPLED_NOTE,
    Reference,
)
from medbench.results import RunRecord


def failures_section(runs: Sequence[RunRecord]) -> Section:
    unfinished = unfinished_runs(runs)
    if not unfinished:
        return Section("Failed and interrupted runs", "failures", [Note("None: every run finished.", "good")])
    headers = ("Run", "Kind", "Status", "Framework", "Model", "Dataset", "Size", "Seed", "Started", "Reason")
    rows = tuple(
        Row(
            (
                Cell(r.run_id[:8], "muted", r.run_id),
                Cell(r.kind),
                Cell(r.status, "bad" if r.status == "failed" else "warn"),
                Cell(r.framework or DASH),
                Cell(r.model or DASH),
                Cell(r.dataset or DASH),
                Cell(DASH if r.size is None else str(r.size), numeric=True),
                Cell(DASH if r.seed is None else str(r.seed), numeric=True),
                Cell(when_text(r.created_at)),
                Cell(
                    r.failure_reason
                    or (
                        "still running (or its process died: `medbench results` can mark it)"
                        if r.status == "running"
                        else "no reason recorded"
                    )
                ),
            )
        )
        for r in unfinished
    )
    return Section("Failed and interrupted runs", "failures", [Table(headers, rows, name="failures")])


def environment_section(runs: Sequence[RunRecord]) -> Section:
    machines, stacks = group_environments(runs)
    if not machines:
        return Section("Environment", "environment", [Note("No run recorded its environment.", "muted")])
    m_headers = ("Host", "CPU", "Memory", "GPU", "OS", "Python", "medbench", "Runs", "Frameworks")
    m_rows = tuple(
        Row(
            (
                *(Cell(g.fields[k]) for k in ("host", "CPU", "memory", "GPU", "OS", "Python", "medbench")),
                Cell(str(len(g.runs)), numeric=True),
                Cell(", ".join(g.frameworks)),
            )
        )
        for g in machines
    )
    s_headers = (
        "Framework",
        "Used for",
        "Versions",
        "Device",
        "Threads",
        "Precision",
        "Thread variables",
        "Runs",
    )
    s_rows = tuple(
        Row(
            (
                Cell(g.fields["framework"]),
                Cell(", ".join(g.uses)),
                *(Cell(g.fields[k]) for k in ("versions", "device", "threads", "precision", "variables")),
                Cell(str(len(g.runs)), numeric=True),
            )
        )
        for g in stacks
    )
    blocks = [
        Table(
            m_headers,
            m_rows,
            name="machines",
            caption="Machines (runs with the same hardware and software base)",
        ),
        Table(
            s_headers,
            s_rows,
            name="stacks",
            caption="Framework stacks (versions, device and threads as applied)",
        ),
    ]
    if len(machines) > 1:
        blocks.insert(
            0,
            Note(
                f"Runs come from {len(machines)} different machine setups: compare times within one.", "warn"
            ),
        )
    return Section("Environment", "environment", blocks)


def references_section(datasets: Sequence[str], references: tuple[Reference, ...]) -> Section:
    rows_refs = [r for r in references if r.dataset in datasets]
    blocks: list = [Note(UPSAMPLED_NOTE), Note(MEDMNIST_PLUS_NOTE)]
    blocks += [Note(f"{paper}: {SOURCES[paper]}") for paper in SOURCES]
    blocks.append(
        Note(
            "Status: 'verified-quoted' was found in a source quoting the official value; "
            "'verified-quoted (acc)' only for the ACC; 'read from authors' figure' was read off the "
            "MedMNIST+ plots; 'unverified' must be checked against the paper before it is quoted.",
            "muted",
        )
    )
    if rows_refs:
        headers = ("Paper", "Model", "Dataset", "Size", "Test ACC %", "Test AUC %", "Status", "Note")
        rows = tuple(
            Row(
                (
                    Cell(r.paper, hint=r.source),
                    Cell(r.model),
                    Cell(r.dataset),
                    Cell(r.size_label),
                    Cell(pct_value(r.test_acc), "warn" if r.acc_unverified else "", numeric=True),
                    Cell(pct_value(r.test_auc, 2), "warn" if r.auc_unverified else "", numeric=True),
                    Cell(
                        ("⚠ " if r.acc_unverified or r.auc_unverified else "") + r.status,
                        "warn" if r.acc_unverified or r.auc_unverified else "muted",
                    ),
                    Cell(r.note),
                ),
                kind="ref",
            )
            for r in rows_refs
        )
        blocks.append(
            Details(
                f"All published figures for {', '.join(datasets)} ({len(rows)})",
                (Table(headers, rows, name="references"),),
            )
        )
    return Section("Published references", "references", blocks)
