"""The statistics against scipy/statsmodels, hand-worked examples and their textbook equivalences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from medbench import metrics as mm
from medbench.stats.images import image_test
from medbench.stats.images.bootstrap import metric_from_predictions, paired_bootstrap
from medbench.stats.images.delong import delong_test
from medbench.stats.images.mcnemar import mcnemar_exact
from medbench.stats.seeds import DIFFERENT, EQUIVALENT, UNDECIDED, over_family, paired_over_seeds
from medbench.stats.speed import FASTER, SLOWER, TOO_FEW, UNCLEAR, speed_ratio

# ---- paired over seeds ------------------------------------------------------------------------------------


def test_paired_interval_and_tests_match_scipy_and_statsmodels():
    from statsmodels.stats.weightstats import ttost_paired

    a = np.array([0.865, 0.871, 0.859, 0.868, 0.862])
    b = np.array([0.851, 0.860, 0.842, 0.855, 0.849])
    r = paired_over_seeds(a, b, margin=0.01)
    d = a - b
    low, high = stats.t.interval(0.95, 4, loc=d.mean(), scale=d.std(ddof=1) / math.sqrt(5))
    assert r.mean == pytest.approx(d.mean())
    assert (r.ci_low, r.ci_high) == pytest.approx((low, high))
    assert r.p_difference == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert r.p_equivalence == pytest.approx(ttost_paired(a, b, -0.01, 0.01)[0])
    # 1.36 points apart, tightly: different, and not within the 1-point margin
    assert r.verdict == DIFFERENT


def test_tost_is_the_90_percent_interval_inside_the_margin():
    a = np.array([0.80, 0.81, 0.79, 0.805])
    b = a - np.array([0.002, -0.001, 0.001, 0.0])
    r = paired_over_seeds(a, b, margin=0.01)
    d = a - b
    low, high = stats.t.interval(0.90, 3, loc=d.mean(), scale=d.std(ddof=1) / 2)
    assert low > -0.01 and high < 0.01  # what TOST at 5% means
    assert r.verdict == EQUIVALENT and r.p_equivalence < 0.05


def test_few_noisy_seeds_are_not_enough_and_say_how_many_more():
    from statsmodels.stats.power import TTestPower

    a = np.array([0.864, 0.846, 0.886])
    b = np.array([0.860, 0.850, 0.880])  # differences +0.4, -0.4, +0.6 points: inside the margin, but 3 seeds
    r = paired_over_seeds(a, b, margin=0.01)
    assert r.verdict == UNDECIDED
    d = a - b
    effect = (0.01 - abs(d.mean())) / d.std(ddof=1)
    expected = math.ceil(
        TTestPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, alternative="larger")
    )
    assert r.seeds_needed == expected and r.more_seeds == expected - 3 > 0


def test_one_seed_and_identical_predictions():
    one = paired_over_seeds([0.9], [0.8])
    assert one.verdict == UNDECIDED and one.sd is None and one.seeds_needed is None
    same = paired_over_seeds([0.9, 0.8, 0.85], [0.9, 0.8, 0.85])
    assert same.verdict == EQUIVALENT and same.ci_low == same.ci_high == 0.0
    shifted = paired_over_seeds([0.9, 0.8, 0.85], [0.88, 0.78, 0.83])  # 2 points at every seed
    assert shifted.verdict == DIFFERENT
    with pytest.raises(ValueError):
        paired_over_seeds([0.9, 0.8], [0.9])


# ---- a family of comparisons -------------------------------------------------------------------------------

_B = [0.80, 0.82, 0.81, 0.83, 0.79]


def _plus(differences):
    return [b + d for b, d in zip(_B, differences, strict=True)]


def _shifted(differences):
    return paired_over_seeds(_plus(differences), _B, margin=0.01)


def test_a_p_of_003_among_12_comparisons_is_different_alone_and_not_after_holm():
    marginal_a = _plus([0.030, 0.009, 0.035, 0.004, 0.020])  # about 2 points, paired t p = 0.03
    marginal = paired_over_seeds(marginal_a, _B, margin=0.01)
    assert marginal.p_difference == pytest.approx(0.0296, abs=5e-4) and marginal.p_equivalence > 0.05
    noisy = [_shifted([0.02 * (-1) ** i, -0.01, 0.015, 0.0, 0.005 * i]) for i in range(11)]
    family = [marginal, *noisy]
    assert marginal.verdict == DIFFERENT  # alone, at 0.05
    alone = over_family(family, "none")
    assert alone[0].verdict == DIFFERENT and alone[0].p_difference_adjusted == marginal.p_difference
    holm = over_family(family, "holm")
    assert holm[0].verdict == UNDECIDED and holm[0].p_difference == marginal.p_difference  # raw p kept
    assert holm[0].p_difference_adjusted == pytest.approx(12 * marginal.p_difference)  # the smallest of 12
    assert (holm[0].correction, holm[0].comparisons) == ("holm", 12)
    assert "Holm-adjusted over 12 comparisons" in holm[0].why
    # the seeds needed are sized for alpha / 12, Holm's strictest step
    strict = paired_over_seeds(marginal_a, _B, margin=0.01, alpha=0.05 / 12)
    assert strict.verdict == UNDECIDED and holm[0].seeds_needed == strict.seeds_needed > 5


def test_holm_adjusts_the_t_tests_and_the_tosts_each_over_their_own_family():
    from statsmodels.stats.multitest import multipletests

    family = [
        _shifted([0.030, 0.009, 0.035, 0.004, 0.020]),
        _shifted([0.001, -0.001, 0.002, 0.0, 0.001]),  # well inside the margin: equivalent
        _shifted([0.05, 0.048, 0.052, 0.051, 0.049]),  # 5 points: different
        paired_over_seeds([0.9], [0.8]),  # one seed: no test, no member of the family
    ]
    holm = over_family(family, "holm")
    tested = family[:3]
    for raw in ("p_difference", "p_equivalence"):
        expected = multipletests([getattr(s, raw) for s in tested], method="holm")[1]
        assert [getattr(s, f"{raw}_adjusted") for s in holm[:3]] == pytest.approx(list(expected))
    assert [s.verdict for s in holm] == [UNDECIDED, EQUIVALENT, DIFFERENT, UNDECIDED]
    assert {s.comparisons for s in holm} == {3} and holm[3].p_difference_adjusted is None


def test_none_gives_every_comparison_its_verdict_alone():
    family = [
        _shifted([0.030, 0.009, 0.035, 0.004, 0.020]),
        _shifted([0.02, -0.015, 0.005, 0.01, -0.003]),
        _shifted([0.001, -0.001, 0.002, 0.0, 0.001]),
        paired_over_seeds([0.9, 0.8, 0.85], [0.88, 0.78, 0.83]),  # 2 points at every seed: no spread
    ]
    alone = over_family(family, "none")
    keep = ("verdict", "seeds_needed", "why", "p_difference", "p_equivalence")
    assert [[getattr(s, k) for k in keep] for s in alone] == [[getattr(s, k) for k in keep] for s in family]
    assert all(s.p_difference_adjusted == s.p_difference for s in alone)
    # no spread: p of exactly 0 and 1, which Holm keeps, so its verdict and reason stand
    assert over_family(family, "holm")[3].verdict == DIFFERENT
    assert over_family(family, "holm")[3].why == "the same difference at every seed"


# ---- McNemar -----------------------------------------------------------------------------------------------


def test_mcnemar_is_the_exact_binomial_test_on_discordant_images():
    rng = np.random.default_rng(0)
    a = rng.random(500) < 0.85
    b = a.copy()
    flip = rng.choice(500, 40, replace=False)
    b[flip[:30]] = False
    b[flip[30:]] = True
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    t = mcnemar_exact(a, b)
    assert t.p_value == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert t.difference == pytest.approx(a.mean() - b.mean())
    assert mcnemar_exact(a, a).p_value == 1.0


# ---- DeLong ------------------------------------------------------------------------------------------------


def test_delong_worked_example_by_hand():
    # Two positives, two negatives. Model A: V10 = (1, 1/2), V01 = (1/2, 1), AUC 3/4. Model B: V10 = (1, 0),
    # V01 = (1/2, 1/2), AUC 1/2. Differences: V10 (0, 1/2), V01 (0, 1/2), so S10 = S01 = 1/8 and
    # Var = S10/2 + S01/2 = 1/8; z = (1/4) / sqrt(1/8) = 0.7071, p = 0.4795.
    y = np.array([1, 1, 0, 0])
    a = np.array([0.9, 0.6, 0.7, 0.2])
    b = np.array([0.8, 0.5, 0.6, 0.55])
    t = delong_test(y, a, b, "binary-class")
    assert t.difference == pytest.approx(0.25)
    assert t.statistic == pytest.approx(0.25 / math.sqrt(1 / 8))
    assert t.p_value == pytest.approx(0.4795, abs=1e-4)


def test_delong_sees_no_difference_between_models_that_rank_alike():
    """Same ranking in every column, other scores: the paired terms are identical, the variance is exactly 0,
    and no difference is called significant; a real reordering is tested as before."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, (60, 1))
    a = rng.dirichlet(np.ones(3), 60)
    b = a**2 / (a**2).sum(axis=1, keepdims=True)  # renormalising reorders some images within a column
    same_order = a * 0.5 + 0.25  # a monotone map of every column: the same ranks in every column
    t = delong_test(y, a, same_order, "multi-class")
    assert abs(t.difference) < 1e-12 and t.p_value == 1.0 and t.ci_low <= 0 <= t.ci_high
    assert delong_test(y, a, b, "multi-class").p_value < 1.0


def _delong_by_definition(y, a, b):
    """The textbook two-sample DeLong (1988), O(m n), with the full covariance matrix."""
    pos, neg = y == 1, y == 0

    def psi(x, z):
        return (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])

    v10 = np.array([psi(s[pos], s[neg]).mean(axis=1) for s in (a, b)])
    v01 = np.array([psi(s[pos], s[neg]).mean(axis=0) for s in (a, b)])
    s = np.cov(v10) / pos.sum() + np.cov(v01) / neg.sum()
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    diff = v10[0].mean() - v10[1].mean()
    return diff, 2 * stats.norm.sf(abs(diff) / math.sqrt(var))


def test_delong_binary_matches_the_textbook_definition_and_mann_whitney():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.4).astype(int)
    a = np.round(y * 0.8 + rng.normal(0, 0.6, 300), 1)  # rounded: ties must count half
    b = np.round(y * 0.6 + 0.5 * a + rng.normal(0, 0.6, 300), 1)
    t = delong_test(y, a, b, "binary-class")
    diff, p = _delong_by_definition(y, a, b)
    assert t.difference == pytest.approx(diff) and t.p_value == pytest.approx(p)
    # AUC is the Mann-Whitney U over m n
    u = stats.mannwhitneyu(a[y == 1], a[y == 0]).statistic
    assert u / ((y == 1).sum() * (y == 0).sum()) == pytest.approx(roc_auc_score(y, a))
    assert float(t.note.split()[1]) == pytest.approx(roc_auc_score(y, a), abs=1e-4)


def _multiclass(seed=2, n=600, k=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    base = rng.normal(0, 1, (n, k))
    logits_a = base + 1.2 * np.eye(k)[y]
    logits_b = base + rng.normal(0, 0.8, (n, k)) + 1.0 * np.eye(k)[y]
    return y, mm.softmax(logits_a), mm.softmax(logits_b)


def test_delong_multiclass_difference_is_the_official_auc_and_its_variance_the_bootstraps():
    y, a, b = _multiclass()
    t = delong_test(y, a, b, "multi-class")
    official = (
        mm.official_metrics(y, a, "multi-class")["auc"] - mm.official_metrics(y, b, "multi-class")["auc"]
    )
    assert t.difference == pytest.approx(official)

    def mean_auc(labels, scores):  # Mann-Whitney U / (m n) per one-vs-rest column, from scipy's midranks
        aucs = []
        for k in range(scores.shape[1]):
            pos = labels == k
            m, n = pos.sum(), (~pos).sum()
            aucs.append((stats.rankdata(scores[:, k])[pos].sum() - m * (m + 1) / 2) / (m * n))
        return np.mean(aucs)

    assert mean_auc(y, a) == pytest.approx(mm.official_metrics(y, a, "multi-class")["auc"])
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(300):  # a paired bootstrap, stratified by class as DeLong conditions on the class counts
        idx = np.concatenate([rng.choice(np.flatnonzero(y == c), (y == c).sum()) for c in range(4)])
        boot.append(mean_auc(y[idx], a[idx]) - mean_auc(y[idx], b[idx]))
    delong_se = (t.ci_high - t.ci_low) / (2 * stats.norm.ppf(0.975))
    assert delong_se == pytest.approx(np.std(boot, ddof=1), rel=0.15)


def test_delong_multilabel_and_binary_two_column_follow_the_official_auc():
    rng = np.random.default_rng(5)
    y = (rng.random((400, 3)) < 0.35).astype(int)
    a = np.clip(0.6 * y + rng.random((400, 3)) * 0.7, 0, 1)
    b = np.clip(0.4 * y + rng.random((400, 3)) * 0.7, 0, 1)
    t = delong_test(y, a, b, "multi-label, binary-class")
    official = mm.official_metrics(y, a, "multi-label, binary-class")["auc"]
    assert t.difference == pytest.approx(
        official - mm.official_metrics(y, b, "multi-label, binary-class")["auc"]
    )
    assert t.p_value < 0.001  # a clearly better model
    yb = y[:, 0]
    two = np.stack([1 - a[:, 0], a[:, 0]], axis=1)  # softmax-style: the last column is the positive class
    assert delong_test(yb, two, b[:, 0], "binary-class").p_value == pytest.approx(
        delong_test(yb, a[:, 0], b[:, 0], "binary-class").p_value
    )


# ---- bootstrap metrics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["multi-class", "binary-class", "multi-label, binary-class"])
def test_fast_metrics_equal_medbench_metrics(task):
    rng = np.random.default_rng(3)
    n = 200
    if task == "multi-label, binary-class":
        y = (rng.random((n, 3)) < 0.3).astype(int)
        s = rng.random((n, 3))
    elif task == "binary-class":
        y = rng.integers(0, 2, n)
        s = mm.softmax(rng.normal(0, 1, (n, 2)))
    else:
        y = rng.integers(0, 5, n)
        y[y == 4] = 3  # class 4 never in y_true: macro-F1 still counts it, balanced ACC does not
        s = mm.softmax(rng.normal(0, 1, (n, 5)))
    from medbench.stats.images.outputs import hard_predictions, n_outputs

    pred, k = hard_predictions(s, task), n_outputs(s, task)
    assert metric_from_predictions(y, pred, task, "acc", n_classes=k) == pytest.approx(
        mm.official_metrics(y, s, task, on_missing="nan")["acc"]
    )
    assert metric_from_predictions(y, pred, task, "balanced_acc", n_classes=k) == pytest.approx(
        mm.balanced_accuracy(y, s, task)
    )
    assert metric_from_predictions(y, pred, task, "macro_f1", n_classes=k) == pytest.approx(
        mm.macro_f1(y, s, task)
    )


def test_paired_bootstrap_sees_a_real_difference_and_none_between_equals():
    y, a, b = _multiclass(n=2000)
    worse = b.copy()
    t = paired_bootstrap(y, a, worse, "multi-class", "macro_f1", n_boot=500)
    assert t.difference > 0 and t.p_value < 0.01 and t.ci_low > 0
    same = paired_bootstrap(y, a, a, "multi-class", "balanced_acc", n_boot=200)
    assert same.difference == 0 and same.p_value == 1.0
    assert image_test("acc", y, a, b, "multi-class").method == "McNemar exact"
    assert image_test("acc", (a > 0.3).astype(int), a, b, "multi-label, binary-class").method.startswith(
        "paired"
    )


# ---- speed -----------------------------------------------------------------------------------------------


def test_speed_ratio_is_welch_on_logs():
    a = [2100.0, 2150.0, 2080.0]
    b = [790.0, 770.0, 800.0]
    r = speed_ratio(a, b, higher_is_better=True)
    res = stats.ttest_ind(np.log(a), np.log(b), equal_var=False)
    ci = res.confidence_interval(0.95)
    assert r.ratio == pytest.approx(math.exp(np.mean(np.log(a)) - np.mean(np.log(b))))
    assert (r.ci_low, r.ci_high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert r.verdict == FASTER and r.speedup > 2.5
    assert speed_ratio([10.0, 11.0], [5.0, 5.2], higher_is_better=False).verdict == SLOWER  # seconds
    assert speed_ratio([10.0, 14.0, 9.0], [11.0, 9.5, 13.0], higher_is_better=False).verdict == UNCLEAR
    assert speed_ratio([10.0], [5.0, 6.0], higher_is_better=False).verdict == TOO_FEW


def test_all_metrics_share_one_bootstrap_and_an_undefined_auc_is_a_reason():
    from medbench.stats.images import image_tests

    y, a, b = _multiclass(n=300)
    y = np.where(y == 3, 2, y)  # class 3 never in the test labels: its one-vs-rest AUC is undefined
    tests = image_tests(("acc", "auc", "balanced_acc", "macro_f1"), y, a, b, "multi-class", n_boot=300)
    assert isinstance(tests["auc"], str) and "no positive" in tests["auc"]
    assert tests["acc"].method == "McNemar exact"
    alone = paired_bootstrap(y, a, b, "multi-class", "macro_f1", n_boot=300)
    assert tests["macro_f1"] == alone  # the same resamples, whether one metric is asked for or several
