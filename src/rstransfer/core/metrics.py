"""Classification metrics from a confusion matrix (rows = true class, columns = predicted)."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return cm


def scores(cm: np.ndarray) -> dict[str, Any]:
    """OA, AA (mean per-class recall over classes present), Cohen's kappa, per-class accuracy."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    support = cm.sum(axis=1)
    diag = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, diag / support, np.nan)
    oa = diag.sum() / total if total else float("nan")
    pe = (cm.sum(axis=0) * support).sum() / total**2 if total else float("nan")
    kappa = (oa - pe) / (1 - pe) if pe != 1 else 1.0
    return {
        "OA": float(oa),
        "AA": float(np.nanmean(per_class)),
        "Kappa": float(kappa),
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "support": support.astype(int).tolist(),
    }


def f1_per_class(cm: np.ndarray) -> list[float | None]:
    """F1 per class (None where the class is neither present nor predicted)."""
    cm = np.asarray(cm, dtype=np.float64)
    support, predicted, diag = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)
    return [None if (s + p) == 0 else float(2 * d / (s + p)) for d, s, p in zip(diag, support, predicted, strict=True)]


def confusion_csv(names: list[str], cm: np.ndarray) -> str:
    """The confusion matrix as CSV (rows = true class, columns = predicted), class names as labels."""
    rows = np.asarray(cm).astype(int).tolist()
    return "true\\pred," + ",".join(names) + "\n" + "".join(
        f"{n}," + ",".join(map(str, r)) + "\n" for n, r in zip(names, rows, strict=True)
    )


def multilabel_scores(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Multi-label scores of outputs ``p`` (sigmoid scores or 0/1 predictions) against 0/1 labels ``y``
    (both (N, L)): micro-, macro- (over labels present in ``y``), sample-F1, mAP, per-label F1.
    The one definition every study uses, so their F1 figures compare."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= threshold
    tp = (y & pred).sum(axis=0).astype(float)
    fp = (~y & pred).sum(axis=0).astype(float)
    fn = (y & ~pred).sum(axis=0).astype(float)
    present = y.sum(axis=0) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_label = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        per_sample_den = (y | pred).sum(axis=1) + (y & pred).sum(axis=1)
        per_sample = np.where(per_sample_den > 0, 2 * (y & pred).sum(axis=1) / np.maximum(per_sample_den, 1), 1.0)
    micro_den = 2 * tp.sum() + fp.sum() + fn.sum()
    return {
        "micro_f1": float(2 * tp.sum() / micro_den) if micro_den else float("nan"),
        "macro_f1": float(np.nanmean(np.where(present, np.nan_to_num(per_label), np.nan))) if present.any() else float("nan"),
        "sample_f1": float(per_sample.mean()),
        "mAP": mean_average_precision(y, np.asarray(p)),
        "per_label_f1": [None if np.isnan(v) else float(v) for v in per_label],
        "support": y.sum(axis=0).astype(int).tolist(),
    }


def mean_average_precision(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    present = y.sum(axis=0) > 0
    if not present.any():
        return float("nan")
    return float(average_precision_score(y[:, present], p[:, present], average="macro"))
