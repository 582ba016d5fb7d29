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
