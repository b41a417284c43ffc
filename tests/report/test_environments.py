"""Machines and software stacks grouped for the report's appendix (report.environments)."""

from __future__ import annotations

from medbench.report.environments import group_environments


def test_environments_are_grouped_not_dumped(runs):
    machines, stacks = group_environments(runs)
    assert len(machines) == 1 and machines[0].fields["CPU"].startswith("AMD EPYC 7B13")
    assert [g.fields["framework"] for g in stacks] == ["torch", "jax", "keras"]
    assert stacks[1].fields["versions"] == "flax 0.10.2, jax 0.4.35"
    assert stacks[0].fields["threads"] == "2 (+1 inter-op)"
