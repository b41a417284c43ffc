"""Tests for medbench.metrics: official ACC/AUC by hand-worked cases, extras, bootstrap."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    multilabel_confusion_matrix,
    roc_auc_score,
)

from medbench.data.registry import Task
from medbench.errors import MedbenchError
from medbench.metrics import (
    MetricsInputError,
    UndefinedMetricError,
    UndefinedMetricWarning,
    balanced_accuracy,
    bootstrap_ci,
    confusion_matrix,
    evaluate,
    expected_calibration_error,
    macro_f1,
    official_metrics,
    per_class_metrics,
    scores_from_logits,
    sigmoid,
    softmax,
)
from medbench.metrics import bootstrap as M

MULTI_CLASS = Task.MULTI_CLASS.value
BINARY = Task.BINARY.value
MULTI_LABEL = Task.MULTI_LABEL.value
ORDINAL = Task.ORDINAL.value

# --- hand-worked cases ----------------------------------------------------------------------------------

# Binary. Positives score 0.4 and 0.8, negatives 0.1 and 0.6: of the 4 (positive, negative) pairs the
# positive wins 3 (0.4>0.1, 0.8>0.1, 0.8>0.6) -> AUC 3/4. Predictions (>0.5): 0,1,0,1 -> 2 of 4 right.
BIN_Y = np.array([[0], [0], [1], [1]], dtype=np.uint8)  # (N, 1), as in the npz files
BIN_P = np.array([0.1, 0.6, 0.4, 0.8])

# Multi-class, 3 classes. Argmax: 0, 1, 2, 0 against 0, 1, 2, 1 -> ACC 3/4.
# Class 0: positive 0.7 beats negatives 0.1, 0.3, 0.5 -> 1.
# Class 1: positives 0.5, 0.3 vs negatives 0.2, 0.3 -> wins 1+1+1, one tie 0.5 -> 3.5/4.
# Class 2: positive 0.4 vs negatives 0.1, 0.4, 0.2 -> 1 + 0.5 + 1 = 2.5/3.
MC_Y = np.array([[0], [1], [2], [1]])
MC_P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.5, 0.4],
        [0.3, 0.3, 0.4],
        [0.5, 0.3, 0.2],
    ]
)
MC_AUC = (1 + 3.5 / 4 + 2.5 / 3) / 3

# Multi-label, 2 labels.
# Label 0: y 1,0,1,0; scores 0.9,0.3,0.6,0.5 -> AUC 1; predictions 1,0,1,0 (0.5 is not > 0.5) -> ACC 1.
# Label 1: y 0,1,1,0; scores 0.45,0.6,0.3,0.7 -> positive 0.6 beats 0.45 only, 0.3 beats none -> 1/4;
#          predictions 0,1,0,1 -> ACC 2/4.
ML_Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
ML_P = np.array([[0.9, 0.45], [0.3, 0.6], [0.6, 0.3], [0.5, 0.7]])


def official_reference(y_true: np.ndarray, y_score: np.ndarray, task: str) -> tuple[float, float]:
    """The official semantics written out plainly, one sample and one pair at a time (independent of the
    vectorised code under test); AUC as the share of (positive, negative) pairs ranked right."""

    def pair_auc(target, score):
        pos = [s for t, s in zip(target, score, strict=True) if t]
        neg = [s for t, s in zip(target, score, strict=True) if not t]
        wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
        return wins / (len(pos) * len(neg))

    y, s = y_true.squeeze(), y_score.squeeze()
    if task == MULTI_LABEL:
        cols = range(s.shape[1])
        auc = sum(pair_auc(y[:, i], s[:, i]) for i in cols) / s.shape[1]
        acc = sum(np.mean([int(v > 0.5) == t for v, t in zip(s[:, i], y[:, i], strict=True)]) for i in cols)
        return acc / s.shape[1], auc
    if task == BINARY:
        s = s[:, -1] if s.ndim == 2 else s
        return float(np.mean([int(v > 0.5) == t for v, t in zip(s, y, strict=True)])), pair_auc(y, s)
    auc = sum(pair_auc(y == i, s[:, i]) for i in range(s.shape[1])) / s.shape[1]
    acc = np.mean([int(np.argmax(row)) == t for row, t in zip(s, y, strict=True)])
    return float(acc), auc


def random_case(task: str, n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and informative probabilities with every class present; scores rounded to make ties."""
    rng = np.random.default_rng(seed)
    if task == MULTI_LABEL:
        y = (rng.random((n, k)) < 0.3).astype(np.int64)
        y[:2] = [[0] * k, [1] * k]
        return y, np.round(sigmoid(rng.normal(size=(n, k)) + 1.5 * y - 0.7), 2)
    if task == BINARY:
        k = 2
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    return y[:, None], np.round(softmax(logits), 2)


# --- official ACC and AUC -------------------------------------------------------------------------------


def test_binary_hand_computed():
    assert official_metrics(BIN_Y, BIN_P, BINARY) == {"acc": 0.5, "auc": 0.75}


def test_binary_takes_the_last_column():
    two_columns = np.stack([1 - BIN_P, BIN_P], axis=1)
    assert official_metrics(BIN_Y, two_columns, BINARY) == {"acc": 0.5, "auc": 0.75}
    # Column 0 ranks the samples the opposite way: it would give AUC 0 and ACC 0.
    scores = np.array([[0.2, 0.7], [0.9, 0.4]])
    assert official_metrics([1, 0], scores, BINARY) == {"acc": 1.0, "auc": 1.0}


def test_binary_accepts_n_by_1_scores():
    assert official_metrics(BIN_Y, BIN_P[:, None], BINARY) == {"acc": 0.5, "auc": 0.75}


def test_binary_threshold_is_strict():
    # A positive scored exactly 0.5 is predicted negative, so it is wrong.
    assert official_metrics([1, 0], [0.5, 0.2], BINARY)["acc"] == 0.5
    assert official_metrics([0, 0, 1], [0.5, 0.2, 0.9], BINARY)["acc"] == 1.0


def test_multi_class_hand_computed():
    result = official_metrics(MC_Y, MC_P, MULTI_CLASS)
    assert result["acc"] == 0.75
    assert result["auc"] == pytest.approx(MC_AUC, abs=1e-12)


def test_ordinal_uses_the_multi_class_rule():
    assert official_metrics(MC_Y, MC_P, ORDINAL) == official_metrics(MC_Y, MC_P, MULTI_CLASS)
    assert official_metrics(MC_Y, MC_P, Task.ORDINAL)["acc"] == 0.75


def test_labels_n_by_1_and_flat_agree():
    assert official_metrics(MC_Y, MC_P, MULTI_CLASS) == official_metrics(MC_Y.ravel(), MC_P, MULTI_CLASS)
    assert official_metrics(BIN_Y, BIN_P, BINARY) == official_metrics(BIN_Y.ravel(), BIN_P, BINARY)


def test_single_sample_is_not_squeezed_away():
    # ndarray.squeeze() would turn (1, 3) scores into (3,); only the trailing label axis may go.
    with pytest.warns(UndefinedMetricWarning):  # one sample cannot hold every class
        result = official_metrics([[2]], [[0.1, 0.2, 0.7]], MULTI_CLASS, on_missing="nan")
    assert result["acc"] == 1.0


def test_multi_label_hand_computed_mean_over_labels():
    result = official_metrics(ML_Y, ML_P, MULTI_LABEL)
    assert result["acc"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["auc"] == pytest.approx((1.0 + 0.25) / 2)


def test_multi_label_threshold_is_strict():
    # Label 0 of sample 3 is scored exactly 0.5 with truth 0: with >= it would count as wrong (ACC 0.75).
    per_label = confusion_matrix(ML_Y, ML_P, MULTI_LABEL)
    assert per_label[0].tolist() == [[2, 0], [0, 2]]


@pytest.mark.parametrize("task, k", [(MULTI_CLASS, 5), (ORDINAL, 4), (BINARY, 2), (MULTI_LABEL, 6)])
def test_random_case_matches_plain_reference(task, k):
    y, s = random_case(task, 200, k)
    acc, auc = official_reference(y, s, task)
    result = official_metrics(y, s, task)
    assert result["acc"] == pytest.approx(acc, abs=1e-12)
    assert result["auc"] == pytest.approx(auc, abs=1e-12)


def test_random_case_matches_sklearn():
    y, s = random_case(MULTI_CLASS, 300, 5, seed=1)
    s = s / s.sum(axis=1, keepdims=True)  # sklearn's multi-class AUC insists on rows summing to 1
    result = official_metrics(y, s, MULTI_CLASS)
    assert result["auc"] == pytest.approx(roc_auc_score(y.ravel(), s, multi_class="ovr", average="macro"))
    assert result["acc"] == pytest.approx(np.mean(s.argmax(1) == y.ravel()))
    y, s = random_case(MULTI_LABEL, 300, 4, seed=2)
    assert official_metrics(y, s, MULTI_LABEL)["auc"] == pytest.approx(roc_auc_score(y, s, average="macro"))


# --- undefined AUC --------------------------------------------------------------------------------------


def test_missing_class_raises_a_clear_value_error():
    y = np.array([0, 1, 0, 1])  # class 2 never occurs
    with pytest.raises(UndefinedMetricError, match="class 2 has 0 positive") as info:
        official_metrics(y, MC_P, MULTI_CLASS)
    assert isinstance(info.value, ValueError) and isinstance(info.value, MedbenchError)
    assert info.value.fix


def test_binary_with_one_class_and_empty_label_raise():
    with pytest.raises(UndefinedMetricError, match="positive class has 2 positive and 0 negative"):
        official_metrics([1, 1], [0.3, 0.9], BINARY)
    y = ML_Y.copy()
    y[:, 1] = 0
    with pytest.raises(UndefinedMetricError, match="label 1"):
        official_metrics(y, ML_P, MULTI_LABEL)


def test_missing_class_can_give_nan_with_a_warning():
    y = np.array([0, 1, 0, 1])
    with pytest.warns(UndefinedMetricWarning, match="class 2"):
        result = official_metrics(y, MC_P, MULTI_CLASS, on_missing="nan")
    assert np.isnan(result["auc"])
    assert result["acc"] == 0.5  # ACC stays defined: argmax 0, 1, 2, 0 against 0, 1, 0, 1


# --- input checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y, s, task, kwargs, match",
    [
        (MC_Y, MC_P[:3], MULTI_CLASS, {}, "4 samples"),
        (MC_Y, MC_P, MULTI_CLASS, {"n_classes": 4}, "3 columns but"),
        (MC_Y, MC_P[:, 0], MULTI_CLASS, {}, "must have shape"),
        (np.array([0, 1, 3, 1]), MC_P, MULTI_CLASS, {}, "Labels must lie in 0..2"),
        (np.array([0, 1, 2, 1]), MC_P * 3, MULTI_CLASS, {}, "look like logits"),
        (np.array([0, 1, 2, 1]), MC_P * np.nan, MULTI_CLASS, {}, "NaN"),
        (np.array([0.0, 1.5, 2, 1]), MC_P, MULTI_CLASS, {}, "integers"),
        (BIN_Y, np.ones((4, 3)) / 3, BINARY, {}, r"\(N,\), \(N, 1\) or \(N, 2\)"),
        (BIN_Y, BIN_P, BINARY, {"n_classes": 3}, "2 columns but"),
        (np.array([0, 2, 1, 1]), BIN_P, BINARY, {}, "0..1"),
        (ML_Y, ML_P[:, :1], MULTI_LABEL, {}, "Labels have 2 columns but scores have 1"),
        (ML_Y[:, 0], ML_P, MULTI_LABEL, {}, r"\(N, L\)"),
        (MC_Y, MC_P, "multiclass", {}, "Unknown task"),
        (np.zeros((0, 1)), np.zeros((0, 3)), MULTI_CLASS, {}, "empty"),
    ],
)
def test_bad_inputs_raise_metrics_input_error(y, s, task, kwargs, match):
    with pytest.raises(MetricsInputError, match=match) as info:
        official_metrics(y, s, task, **kwargs)
    assert isinstance(info.value, ValueError) and info.value.fix


# --- logits ---------------------------------------------------------------------------------------------


def test_softmax_and_sigmoid_are_stable_and_consistent():
    x = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow would warn
        p = softmax(x)
        q = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(q, [0.0, 0.5, 1.0])
    z = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(softmax(np.stack([np.zeros_like(z), z], axis=1))[:, 1], sigmoid(z))
    np.testing.assert_allclose(sigmoid(z), 1 / (1 + np.exp(-z)))


def test_scores_from_logits_per_task():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 3.0]])
    np.testing.assert_allclose(scores_from_logits(logits, MULTI_CLASS), softmax(logits))
    np.testing.assert_allclose(scores_from_logits(logits, ORDINAL), softmax(logits))
    np.testing.assert_allclose(scores_from_logits(logits, MULTI_LABEL), sigmoid(logits))
    np.testing.assert_allclose(scores_from_logits(logits[:, :2], BINARY), softmax(logits[:, :2]))
    # A single binary logit goes through a sigmoid: a softmax over one column would always be 1.
    np.testing.assert_allclose(scores_from_logits(logits[:, :1], BINARY), sigmoid(logits[:, :1]))
    with pytest.raises(MetricsInputError, match="one logit per class"):
        scores_from_logits(logits[:, :1], MULTI_CLASS)


# --- extras ---------------------------------------------------------------------------------------------


def test_per_class_report_hand_computed():
    # Predictions 0, 1, 2, 0 against 0, 1, 2, 1.
    r = per_class_metrics(MC_Y, MC_P, MULTI_CLASS)
    np.testing.assert_allclose(r["precision"], [0.5, 1.0, 1.0])
    np.testing.assert_allclose(r["recall"], [1.0, 0.5, 1.0])
    np.testing.assert_allclose(r["f1"], [2 / 3, 2 / 3, 1.0])
    assert r["support"].tolist() == [1, 2, 1]
    assert macro_f1(MC_Y, MC_P, MULTI_CLASS) == pytest.approx(7 / 9)
    assert balanced_accuracy(MC_Y, MC_P, MULTI_CLASS) == pytest.approx(5 / 6)


def test_per_class_zero_division_is_zero_and_multi_label_is_per_label():
    # Class 2 neither occurs nor is predicted: its precision, recall and F1 count as 0.
    r = per_class_metrics([0, 1], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]], MULTI_CLASS)
    assert r["f1"].tolist() == [1.0, 1.0, 0.0]
    r = per_class_metrics(ML_Y, ML_P, MULTI_LABEL)
    np.testing.assert_allclose(r["precision"], [1.0, 0.5])  # label 1 predicted for samples 1 and 3
    np.testing.assert_allclose(r["recall"], [1.0, 0.5])
    assert r["support"].tolist() == [2, 2]


def test_balanced_accuracy_ignores_classes_absent_from_y_true():
    # Class 2 never occurs: mean recall over classes 0 (1/1) and 1 (0/1), as scikit-learn does.
    p = [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1]]
    assert balanced_accuracy([0, 1], p, MULTI_CLASS) == 0.5


def test_extras_match_sklearn_on_a_random_case():
    y, s = random_case(MULTI_CLASS, 300, 6, seed=3)
    y, pred = y.ravel(), s.argmax(axis=1)
    assert macro_f1(y, s, MULTI_CLASS) == pytest.approx(f1_score(y, pred, average="macro"))
    assert balanced_accuracy(y, s, MULTI_CLASS) == pytest.approx(balanced_accuracy_score(y, pred))
    y, s = random_case(MULTI_LABEL, 300, 5, seed=4)
    pred = (s > 0.5).astype(int)
    np.testing.assert_array_equal(confusion_matrix(y, s, MULTI_LABEL), multilabel_confusion_matrix(y, pred))
    expected = np.mean([balanced_accuracy_score(y[:, i], pred[:, i]) for i in range(5)])
    assert balanced_accuracy(y, s, MULTI_LABEL) == pytest.approx(expected)


def test_confusion_matrix_rows_true_columns_predicted():
    assert confusion_matrix(MC_Y, MC_P, MULTI_CLASS).tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert confusion_matrix(BIN_Y, BIN_P, BINARY).tolist() == [[1, 1], [1, 1]]
    # Label 1: truth 0,1,1,0, predictions 0,1,0,1 -> tn 1, fp 1, fn 1, tp 1.
    assert confusion_matrix(ML_Y, ML_P, MULTI_LABEL)[1].tolist() == [[1, 1], [1, 1]]


def test_ece_is_zero_for_perfect_one_hot():
    y = np.array([0, 2, 1, 2])
    assert expected_calibration_error(y, np.eye(3)[y], MULTI_CLASS) == 0.0
    assert expected_calibration_error([0, 1], [0.0, 1.0], BINARY) == 0.0


def test_ece_averages_within_bins():
    # Four predictions at confidence 0.8, three right: one bin with |0.75 - 0.8| = 0.05.
    # (Averaging |correct - confidence| per sample instead would give 0.35.)
    p = np.array([[0.8, 0.1, 0.1]] * 4)
    assert expected_calibration_error([0, 0, 0, 1], p, MULTI_CLASS) == pytest.approx(0.05)
    # Add two wrong predictions at confidence 0.6 (another bin): 4/6 * 0.05 + 2/6 * 0.6.
    p2 = np.vstack([p, [[0.6, 0.4, 0.0]] * 2])
    assert expected_calibration_error([0, 0, 0, 1, 1, 1], p2, MULTI_CLASS) == pytest.approx(0.7 / 3)


def test_ece_binary_uses_top_label_confidence():
    # Confidences max(p, 1-p): 0.82, 0.9, 0.7, 0.62 in four bins; right, right, wrong, wrong.
    ece = expected_calibration_error([0, 1, 1, 0], [0.18, 0.9, 0.3, 0.62], BINARY)
    assert ece == pytest.approx((0.18 + 0.1 + 0.7 + 0.62) / 4)
    # With one bin everything pools: |2/4 - mean confidence 0.76|.
    assert expected_calibration_error(
        [0, 1, 1, 0], [0.18, 0.9, 0.3, 0.62], BINARY, n_bins=1
    ) == pytest.approx(0.26)


# --- bootstrap ------------------------------------------------------------------------------------------


def test_weighted_auc_equals_sklearn_on_resamples():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 1)  # many ties
    column = M._AucColumn.build(y, s)
    counts = M._resample_counts(rng, 20, 60)
    got = column.auc(counts)
    for row, value in zip(counts, got, strict=True):
        idx = np.repeat(np.arange(60), row)
        assert value == pytest.approx(roc_auc_score(y[idx], s[idx]), abs=1e-12)


def test_bootstrap_matches_a_plain_loop_over_the_same_resamples():
    y, s = random_case(MULTI_CLASS, 80, 3, seed=6)
    ci = bootstrap_ci(y, s, MULTI_CLASS, n_boot=50, seed=11, confidence=0.9)
    # For small n all resamples are drawn in one chunk, so these are the same draws.
    counts = M._resample_counts(np.random.default_rng(11), 50, 80)
    accs, aucs = [], []
    for row in counts:
        idx = np.repeat(np.arange(80), row)
        acc, auc = official_reference(y[idx], s[idx], MULTI_CLASS)
        accs.append(acc)
        aucs.append(auc)
    assert ci["acc"].low == pytest.approx(np.percentile(accs, 5))
    assert ci["acc"].high == pytest.approx(np.percentile(accs, 95))
    assert ci["auc"].low == pytest.approx(np.percentile(aucs, 5))
    assert ci["auc"].high == pytest.approx(np.percentile(aucs, 95))
    assert ci["auc"].n_skipped == 0 and ci["auc"].n_boot == 50


@pytest.mark.parametrize("task, k", [(MULTI_CLASS, 4), (BINARY, 2), (MULTI_LABEL, 3)])
def test_bootstrap_ci_contains_estimate_and_is_seeded(task, k):
    y, s = random_case(task, 400, k, seed=7)
    point = official_metrics(y, s, task)
    ci = bootstrap_ci(y, s, task, n_boot=300, seed=1)
    for key in ("acc", "auc"):
        assert ci[key].low < point[key] < ci[key].high
    assert bootstrap_ci(y, s, task, n_boot=300, seed=1) == ci
    assert bootstrap_ci(y, s, task, n_boot=300, seed=2) != ci


def test_bootstrap_ci_narrows_with_more_samples():
    small = bootstrap_ci(*random_case(MULTI_CLASS, 100, 4, seed=8), MULTI_CLASS, n_boot=300)
    large = bootstrap_ci(*random_case(MULTI_CLASS, 3000, 4, seed=8), MULTI_CLASS, n_boot=300)
    for key in ("acc", "auc"):
        assert large[key].high - large[key].low < 0.5 * (small[key].high - small[key].low)


def test_bootstrap_skips_and_counts_resamples_without_a_class():
    y = np.array([1] + [0] * 9)  # the one positive is missing from ~(9/10)^10 = 35% of resamples
    s = np.linspace(0.05, 0.95, 10)[::-1]
    with pytest.warns(UndefinedMetricWarning, match="undefined in"):
        ci = bootstrap_ci(y, s, BINARY, n_boot=400, seed=0)
    assert 0.25 * 400 < ci["auc"].n_skipped < 0.45 * 400
    assert ci["acc"].n_skipped == 0
    assert ci["auc"].low == ci["auc"].high == 1.0  # the positive outscores every negative


def test_bootstrap_rejects_bad_parameters():
    with pytest.raises(MetricsInputError, match="n_boot"):
        bootstrap_ci(BIN_Y, BIN_P, BINARY, n_boot=0)
    with pytest.raises(MetricsInputError, match="confidence"):
        bootstrap_ci(BIN_Y, BIN_P, BINARY, confidence=95)


# --- evaluate -------------------------------------------------------------------------------------------


def test_evaluate_from_logits_matches_official_and_serialises():
    y, _ = random_case(MULTI_CLASS, 120, 3, seed=9)
    logits = np.random.default_rng(9).normal(size=(120, 3)) + 2 * np.eye(3)[y.ravel()]
    names = ("a", "b", "c")
    e = evaluate(y, logits, MULTI_CLASS, bootstrap=100, seed=3, class_names=names)
    point = official_metrics(y, softmax(logits), MULTI_CLASS)
    assert (e.acc, e.auc) == (point["acc"], point["auc"])
    assert e.acc_ci is not None and e.acc_ci.low <= e.acc <= e.acc_ci.high
    d = e.to_dict()
    json.dumps(d, allow_nan=False)  # plain types only
    assert d["task"] == MULTI_CLASS and d["n_samples"] == 120
    fields = ("acc", "auc", "ece", "macro_f1", "balanced_accuracy")
    assert [d[f] for f in fields] == [getattr(e, f) for f in fields]
    assert d["per_class"]["f1"] == e.f1.tolist() and d["acc_ci"]["low"] == e.acc_ci.low
    assert d["per_class"]["name"] == list(names)
    assert sum(d["per_class"]["support"]) == 120
    assert type(d["acc"]) is float and type(d["confusion_matrix"][0][0]) is int
    assert d["auc_ci"]["n_boot"] == 100 and d["ece_bins"] == 15
    assert np.sum(d["confusion_matrix"]) == 120


def test_evaluate_scores_and_no_bootstrap():
    e = evaluate(MC_Y, MC_P, ORDINAL, from_logits=False)
    assert e.acc == 0.75 and e.auc == pytest.approx(MC_AUC)
    assert e.acc_ci is None and e.to_dict()["auc_ci"] is None
    assert e.class_names == ("0", "1", "2")
    assert e.macro_f1 == pytest.approx(7 / 9)


def test_evaluate_checks_class_names_and_reports_nan_as_none():
    with pytest.raises(MetricsInputError, match="3 columns but"):
        evaluate(MC_Y, MC_P, MULTI_CLASS, from_logits=False, class_names=["a", "b"])
    with pytest.warns(UndefinedMetricWarning):
        e = evaluate([0, 1, 0, 1], MC_P, MULTI_CLASS, from_logits=False, on_missing="nan")
    assert e.to_dict()["auc"] is None
    json.dumps(e.to_dict(), allow_nan=False)
