"""OA / AA / Kappa from the confusion matrix, checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from rstransfer.core.metrics import confusion_matrix, scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_classes", [2, 4, 16])
def test_scores_match_sklearn_on_random_labels(seed: int, n_classes: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    y_true = rng.integers(0, n_classes, n)
    # mostly right, some noise: kappa strictly between 0 and 1
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, n_classes, n))
    cm = confusion_matrix(y_true, y_pred, n_classes)
    s = scores(cm)
    assert s["OA"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert s["AA"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
    assert s["Kappa"] == pytest.approx(cohen_kappa_score(y_true, y_pred), abs=1e-12)
    recall = [np.mean(y_pred[y_true == c] == c) for c in range(n_classes)]
    assert s["per_class_accuracy"] == pytest.approx(recall)
    assert s["support"] == np.bincount(y_true, minlength=n_classes).tolist()


def test_confusion_matrix_rows_are_true_classes() -> None:
    y_true = np.array([0, 0, 0, 1, 2, 2])
    y_pred = np.array([1, 1, 0, 1, 2, 0])
    cm = confusion_matrix(y_true, y_pred, 4)
    assert cm.shape == (4, 4) and cm.dtype == np.int64
    assert cm[0].tolist() == [1, 2, 0, 0]  # true 0: once right, twice called 1
    assert cm[:, 0].tolist() == [1, 0, 1, 0]  # predicted 0: from true 0 and true 2
    assert cm.sum() == 6 and np.trace(cm) == 3
    np.testing.assert_array_equal(cm, sk_confusion_matrix(y_true, y_pred, labels=range(4)))


def test_classes_absent_from_the_test_set_are_skipped_in_aa() -> None:
    y_true = np.array([0, 0, 1, 1, 1, 3])
    y_pred = np.array([0, 2, 1, 1, 0, 3])  # class 2 is predicted but never true
    s = scores(confusion_matrix(y_true, y_pred, 4))
    assert s["per_class_accuracy"][2] is None
    assert s["support"] == [2, 3, 0, 1]
    assert s["AA"] == pytest.approx(np.mean([0.5, 2 / 3, 1.0]))
    with pytest.warns(UserWarning):  # sklearn warns about the class without true samples
        assert s["AA"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert s["Kappa"] == pytest.approx(cohen_kappa_score(y_true, y_pred))


def test_perfect_and_chance_predictions() -> None:
    y = np.array([0, 1, 2, 2, 1, 0])
    perfect = scores(confusion_matrix(y, y, 3))
    assert (perfect["OA"], perfect["AA"], perfect["Kappa"]) == (1.0, 1.0, 1.0)
    single = scores(confusion_matrix(np.zeros(5, int), np.zeros(5, int), 2))  # one class, all right
    assert single["OA"] == 1.0 and single["Kappa"] == 1.0
    wrong = scores(confusion_matrix(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), 2))
    assert wrong["OA"] == 0.0 and wrong["AA"] == 0.0 and wrong["Kappa"] == pytest.approx(-1.0)


def test_multilabel_scores_agree_with_sklearn_where_definitions_agree() -> None:
    """The one multi-label F1 of the project (multilabel and features studies): micro- and per-label
    F1 equal scikit-learn's; macro averages only the labels present in y (an absent label has no F1)."""
    import numpy as np
    from sklearn.metrics import f1_score

    from rstransfer.core.metrics import multilabel_scores

    rng = np.random.default_rng(0)
    y = (rng.random((60, 5)) < 0.3).astype(int)
    y[:, 4] = 0  # a label absent from the truth
    p = rng.random((60, 5))
    s = multilabel_scores(y, p, 0.5)
    pred = (p >= 0.5).astype(int)
    assert s["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro"))
    per = f1_score(y, pred, average=None, zero_division=0)
    assert s["per_label_f1"][:4] == pytest.approx(list(per[:4]))
    assert s["macro_f1"] == pytest.approx(per[:4].mean())  # label 4 absent: not averaged
    assert s["support"][4] == 0 and 0 <= s["sample_f1"] <= 1
