"""Pooling over seeds (report.pooling): means, sample spreads, the CI of the best seed, per-class recall;
checked against numbers worked out by hand from the fixture's rows."""

from __future__ import annotations

import math

import pytest

from medbench.report.pooling import Stat


def test_stat_is_mean_and_sample_std_of_the_finite_values():
    stat = Stat.of([0.90, 0.92, None, float("nan"), "x"])
    assert stat.n == 2 and stat.mean == pytest.approx(0.91)
    assert stat.std == pytest.approx(math.sqrt(((0.90 - 0.91) ** 2 + (0.92 - 0.91) ** 2) / 1))
    assert (stat.min, stat.max) == (0.90, 0.92)
    assert Stat.of([0.5]).std is None  # one seed has no spread, rather than a misleading 0
    assert Stat.of([None]) is None


def test_means_and_spreads_over_seeds_match_hand_computation(comparisons):
    c = comparisons[("pathmnist", 28)]
    torch, jax, keras = (c.result(fw) for fw in ("torch", "jax", "keras"))
    assert torch.test_acc.mean == pytest.approx(0.91) and torch.test_acc.std == pytest.approx(0.0141421356)
    assert jax.test_acc.mean == pytest.approx(0.91) and jax.test_acc.std == pytest.approx(0.0070710678)
    assert keras.test_acc.mean == pytest.approx(0.895)
    assert torch.s_per_epoch.mean == pytest.approx(11.0) and torch.s_per_epoch.std == pytest.approx(
        math.sqrt(2)
    )
    assert torch.images_per_s.mean == pytest.approx((89996 / 10 + 89996 / 12) / 2)
    assert torch.test_auc.mean == pytest.approx(0.95 + 0.91 / 20)


def test_the_ci_comes_from_the_seed_with_the_best_validation_auc(comparisons):
    torch = comparisons[("pathmnist", 28)].result("torch")
    assert torch.best_run.seed == 1  # its val AUC is higher, whatever the test set says
    assert (torch.acc_ci.low, torch.acc_ci.high, torch.acc_ci.seed) == pytest.approx((0.91, 0.93, 1))


def test_balanced_accuracy_macro_f1_and_class_recall_are_pooled_over_seeds(comparisons):
    torch = comparisons[("pathmnist", 64)].result("torch")  # ACCs 0.93 and 0.94
    assert torch.test_balanced_acc.mean == pytest.approx(0.925) and torch.test_balanced_acc.n == 2
    assert torch.test_macro_f1.mean == pytest.approx(0.915)
    assert torch.test_macro_f1.std == pytest.approx(0.01 / math.sqrt(2))
    recall = torch.class_recall
    assert recall.names[0] == "adipose" and len(recall.recall) == 9 and not recall.multi_label
    # class i: ACC - i points for seed 0, ACC - 2i points for seed 1
    assert (recall.recall[4].min, recall.recall[4].max) == pytest.approx((0.86, 0.89))
    assert recall.support == (900, 800, 700, 600, 500, 400, 300, 200, 100)
