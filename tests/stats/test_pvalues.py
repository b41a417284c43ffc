"""p-values as people read them."""

from __future__ import annotations

from medbench.stats.pvalues import p_text


def test_a_p_below_four_decimals_reads_as_an_upper_bound_never_rounded_up_or_down():
    shown = {p: p_text(p) for p in (0.0, 3e-7, 0.00005, 0.00007, 0.000099, 0.0001, 0.03, 0.04567, 1.0)}
    assert shown == {
        0.0: "<0.0001",
        3e-7: "<0.0001",
        0.00005: "<0.0001",  # rounded first to 4 decimals, these read 0.0001 (or 0.0)
        0.00007: "<0.0001",
        0.000099: "<0.0001",
        0.0001: "0.0001",
        0.03: "0.0300",
        0.04567: "0.0457",
        1.0: "1.0000",
    }
    assert p_text(0.004, 2) == "<0.01"
