"""Metrics for MedMNIST: the official ACC and AUC, plus extras for comparing frameworks fairly.

The official numbers follow ``getACC``/``getAUC`` of ``medmnist/evaluator.py`` (medmnist 3.0.2), so results
can be set beside the MedMNIST papers and leaderboards. Scores are probabilities: softmax outputs for
multi-class, ordinal and binary tasks, sigmoid outputs for multi-label tasks (see :func:`scores_from_logits`).

=========================  ==============================================  ================================
task                       AUC                                             ACC
=========================  ==============================================  ================================
multi-class, ordinal       mean over classes of one-vs-rest ROC AUC        accuracy of the argmax
binary-class               ROC AUC of the last score column                accuracy of ``score > 0.5``
multi-label, binary-class  mean over labels of ROC AUC                     mean over labels of the accuracy
                                                                           of ``score > 0.5``
=========================  ==============================================  ================================

Where medbench departs from the official code, it is only on inputs that code mishandles:

* **A class (or label) with no positive or no negative sample** leaves its ROC AUC undefined. The official
  code crashes inside scikit-learn. medbench raises :class:`UndefinedMetricError` naming the class; with
  ``on_missing="nan"`` it returns ``auc=nan`` and warns instead (meant for smoke tests on tiny data). It
  never averages over the classes that remain, which would give a number that looks official but is not.
* Only a trailing axis of length one is squeezed (labels ``(N, 1)`` become ``(N,)``), so a single sample is
  not mistaken for a vector of scores, as ``ndarray.squeeze()`` would do.
* Shapes, label values and score ranges are checked, with errors that say what to pass instead: the
  official code silently scores logits, labels out of range and misaligned arrays.

Extras: per-class precision, recall, F1 and support; macro-F1; balanced accuracy; confusion matrices;
expected calibration error; percentile-bootstrap confidence intervals for ACC and AUC.

Modules: :mod:`~medbench.metrics.inputs` (scores from logits, input checks), :mod:`~medbench.metrics.official`
(ACC and AUC), :mod:`~medbench.metrics.extras`, :mod:`~medbench.metrics.bootstrap` and
:mod:`~medbench.metrics.evaluation` (all at once).
"""

from medbench.metrics.bootstrap import BootstrapCI, bootstrap_ci
from medbench.metrics.evaluation import Evaluation, evaluate
from medbench.metrics.extras import (
    ECE_BINS,
    balanced_accuracy,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class_metrics,
)
from medbench.metrics.inputs import (
    MetricsInputError,
    UndefinedMetricError,
    UndefinedMetricWarning,
    scores_from_logits,
    sigmoid,
    softmax,
)
from medbench.metrics.official import official_metrics

__all__ = [
    "ECE_BINS",
    "BootstrapCI",
    "Evaluation",
    "MetricsInputError",
    "UndefinedMetricError",
    "UndefinedMetricWarning",
    "balanced_accuracy",
    "bootstrap_ci",
    "confusion_matrix",
    "evaluate",
    "expected_calibration_error",
    "macro_f1",
    "official_metrics",
    "per_class_metrics",
    "scores_from_logits",
    "sigmoid",
    "softmax",
]
