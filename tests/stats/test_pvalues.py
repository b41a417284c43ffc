"""p-values over a family (Holm through statsmodels) and as people read them."""

from __future__ import annotations

import pytest
from statsmodels.stats.multitest import multipletests

from medbench.stats.pvalues import CORRECTIONS, adjust, family_text, p_text


def test_holm_is_statsmodels_and_none_keeps_each_p():
    p = [0.03, 0.5, 0.001, 0.04, 0.2, 0.012]
    assert adjust(p, "holm") == pytest.approx(list(multipletests(p, method="holm")[1]))
    # by hand, the smallest first: 6 x 0.001, 5 x 0.012, 4 x 0.03, then the running maximum holds 0.12
    assert adjust(p, "holm")[2] == pytest.approx(0.006) and adjust(p, "holm")[3] == pytest.approx(0.12)
    assert adjust(p, "none") == p and adjust([], "holm") == []


def test_an_unknown_method_or_an_impossible_p_is_refused():
    from medbench.commands.compare import Correction

    assert CORRECTIONS == ("holm", "none") == tuple(c.value for c in Correction)  # what --correction offers
    with pytest.raises(ValueError, match="bonferroni"):
        adjust([0.1], "bonferroni")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust([0.1, float("nan")], "holm")


def test_the_family_is_named_with_its_size():
    assert family_text("holm", 12) == "Holm-adjusted over 12 comparisons"
    assert family_text("none", 1) == "uncorrected for 1 comparison"


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
