"""Query strategies of the active-learning loop (a registry: name -> strategy).

Every strategy sees the unlabelled pool's sigmoid outputs ``probs`` (N, L) and last-layer
inputs ``features`` (N, D), and returns ``b`` distinct positions into them.

* ``random``: ``b`` positions uniformly at random.
* ``mge`` (multi-label gradient embedding): the norm of the gradient of the BCE loss (summed
  over labels) with respect to the last layer's weights and bias, under the pseudo-labels
  ``yhat = 1[p >= threshold]``. For a dense sigmoid head ``z = W h + c`` the gradient is
  ``dL/dW = (p - yhat) h^T`` and ``dL/dc = p - yhat``, so its norm has the closed form
  ``||p - yhat|| * sqrt(||h||^2 + 1)``. The ``b`` largest are chosen.
* ``mge_clustering``: the ``m > b`` largest MGE scores are clustered into ``b`` groups with
  KMeans++ (scikit-learn) on their features ``h``; the most uncertain sample of each cluster is
  chosen (uncertain and diverse).

Pure NumPy + scikit-learn; the autodiff check of the closed form is in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rstransfer.core.errors import ConfigError


@dataclass(frozen=True)
class Query:
    """What a strategy sees: the unlabelled pool's outputs, and the settings."""

    probs: np.ndarray  # (N, L) sigmoid outputs
    features: np.ndarray  # (N, D) inputs of the last layer
    threshold: float = 0.5
    candidates: int = 0  # m of mge_clustering
    seed: int = 0


def mge_scores(probs: np.ndarray, features: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Closed-form norm of d BCE(sum over labels) / d (W, c) under pseudo-labels, per sample."""
    probs = np.asarray(probs, dtype=np.float64)
    yhat = (probs >= threshold).astype(np.float64)
    h2 = np.sum(np.asarray(features, dtype=np.float64) ** 2, axis=1)
    return np.linalg.norm(probs - yhat, axis=1) * np.sqrt(h2 + 1.0)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest scores (ties broken by position: stable)."""
    return np.argsort(-scores, kind="stable")[:k]


def select_random(q: Query, b: int) -> np.ndarray:
    return np.random.default_rng(q.seed).choice(len(q.probs), size=b, replace=False)


def select_mge(q: Query, b: int) -> np.ndarray:
    return _top(mge_scores(q.probs, q.features, q.threshold), b)


def select_mge_clustering(q: Query, b: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    scores = mge_scores(q.probs, q.features, q.threshold)
    m = min(max(q.candidates, b), len(scores))
    if m <= b:  # too few candidates to cluster: the b most uncertain
        return _top(scores, b)
    cand = _top(scores, m)
    km = KMeans(n_clusters=b, init="k-means++", n_init=1, random_state=q.seed).fit(q.features[cand])
    picked = []
    for c in range(b):
        members = cand[km.labels_ == c]
        if len(members):
            picked.append(members[np.argmax(scores[members])])
    # KMeans can leave a cluster empty on duplicate features: fill with the next most uncertain
    rest = [i for i in cand if i not in set(picked)]
    picked += rest[: b - len(picked)]
    return np.asarray(picked, dtype=np.int64)


STRATEGIES: dict[str, Callable[[Query, int], np.ndarray]] = {
    "random": select_random,
    "mge": select_mge,
    "mge_clustering": select_mge_clustering,
}


def select(strategy: str, q: Query, b: int) -> np.ndarray:
    """``b`` distinct positions into the pool (all of it when it holds <= ``b``)."""
    try:
        fn = STRATEGIES[strategy]
    except KeyError:
        raise ConfigError(f"multilabel.active.strategies: unknown strategy {strategy!r} (valid: {', '.join(STRATEGIES)})") from None
    n = len(q.probs)
    if n <= b:
        return np.arange(n)
    picked = np.asarray(fn(q, b), dtype=np.int64)
    assert len(set(picked.tolist())) == b, f"{strategy} returned duplicate positions"
    return picked
