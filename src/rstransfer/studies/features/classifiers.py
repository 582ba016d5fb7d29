"""Classifiers on fixed features: a registry of scikit-learn builders plus the small validation
search that picks their hyper-parameters.

Every entry builds one unfitted estimator from one point of its grid (``features.grids.<name>``
in config). SVMs see standardised features (the scaler is part of the pipeline, so it is fitted
on the same training rows as the classifier and nothing else); the random forest sees the raw
features. Multi-label targets are fitted one-vs-rest.

The search gets the training and validation rows only (never the test rows): every grid point is
fitted on the training rows and scored on the validation rows (OA for single-label, micro-F1 for
multi-label); the best point's model is kept as it is (no refit on train + val), the protocol of
the fine-tuned networks, which select their epoch on the same validation rows.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError


@dataclass(frozen=True)
class Classifier:
    """One registry entry: how to build the estimator for one grid point."""

    name: str
    title: str
    build: Callable[[dict[str, Any], int, int], Any]  # (params, seed, threads) -> estimator
    scale: bool  # standardise the features first (fitted on the training rows)
    linear: bool = False  # a linear probe of the features


def _linear_svm(p: dict[str, Any], seed: int, threads: int) -> Any:
    from sklearn.svm import LinearSVC

    return LinearSVC(C=p["C"], dual="auto", max_iter=1000, random_state=seed)


def _rbf_svm(p: dict[str, Any], seed: int, threads: int) -> Any:
    from sklearn.svm import SVC

    return SVC(kernel="rbf", C=p["C"], gamma=p["gamma"], random_state=seed)


def _random_forest(p: dict[str, Any], seed: int, threads: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=p["n_estimators"], max_depth=p["max_depth"], max_features=p["max_features"],
        n_jobs=threads, random_state=seed,
    )


CLASSIFIERS: dict[str, Classifier] = {
    "linear_svm": Classifier("linear_svm", "linear SVM", _linear_svm, scale=True, linear=True),
    "rbf_svm": Classifier("rbf_svm", "RBF SVM", _rbf_svm, scale=True),
    "random_forest": Classifier("random_forest", "random forest", _random_forest, scale=False),
}

#: the classifier of the linear-probe row every pretrained backbone gets
PROBE = "linear_svm"


def get_classifier(name: str) -> Classifier:
    if name not in CLASSIFIERS:
        raise ConfigError(f"features.classifiers: unknown classifier {name!r} (registered: {', '.join(CLASSIFIERS)})")
    return CLASSIFIERS[name]


def grid_points(name: str, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid`` (``{param: [values]}``) in config order."""
    if not grid or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ConfigError(f"features.grids.{name}: every hyper-parameter needs a non-empty list of values")
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def make_estimator(name: str, params: dict[str, Any], seed: int, multilabel: bool, threads: int = 1) -> Any:
    """The unfitted pipeline for one grid point: [scaler] -> classifier (one-vs-rest if multi-label)."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    entry = get_classifier(name)
    est = entry.build(params, seed, threads)
    if multilabel:
        est = OneVsRestClassifier(est)
    steps = ([("scaler", StandardScaler())] if entry.scale else []) + [("classifier", est)]
    return Pipeline(steps)


def score(y_true: np.ndarray, y_pred: np.ndarray, multilabel: bool) -> float:
    """The selection score: OA (single-label) or micro-F1 (multi-label)."""
    if multilabel:
        from rstransfer.core.metrics import multilabel_scores

        return float(np.nan_to_num(multilabel_scores(y_true, y_pred)["micro_f1"]))
    return float(np.mean(y_true == y_pred))


def fit_one(est: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, float, int]:
    """Fit; return (estimator, seconds, number of convergence warnings)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(x, y)
        seconds = time.perf_counter() - t0
    return est, seconds, sum(issubclass(w.category, ConvergenceWarning) for w in caught)


def search(
    name: str, grid: dict[str, list[Any]], train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
    seed: int, multilabel: bool, threads: int = 1,
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """Validation search over ``grid``: (best fitted estimator, its record, one row per grid point).

    Only ``train`` rows are fitted on and only ``val`` rows are scored; ties keep the earlier point.
    """
    (xt, yt), (xv, yv) = train, val
    if len(xt) == 0 or len(xv) == 0:
        raise ConfigError(f"features: {name} needs training and validation rows (got {len(xt)} / {len(xv)})")
    best: tuple[float, Any, dict[str, Any]] | None = None
    rows: list[dict[str, Any]] = []
    for i, params in enumerate(grid_points(name, grid)):
        est, seconds, n_warn = fit_one(make_estimator(name, params, seed, multilabel, threads), xt, yt)
        val_score = score(yv, est.predict(xv), multilabel)
        rows.append({"point": i, **{f"param_{k}": v for k, v in params.items()}, "val_score": val_score,
                     "fit_seconds": seconds, "convergence_warnings": n_warn})
        if best is None or val_score > best[0]:
            best = (val_score, est, {"params": params, "val_score": val_score, "fit_seconds": seconds,
                                     "convergence_warnings": n_warn, "point": i})
    assert best is not None
    record = {**best[2], "search_seconds": float(sum(r["fit_seconds"] for r in rows)), "grid_points": len(rows),
              "n_train": int(len(xt)), "n_val": int(len(xv))}
    return best[1], record, rows
