"""Query strategies of the multilabel study: the closed-form MGE against autodiff, KMeans++
selection, the registry against the schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from rstransfer.studies.multilabel import STRATEGY_NAMES
from rstransfer.studies.multilabel.active import STRATEGIES, Query, mge_scores, select

SCHEMA = Path(__file__).resolve().parents[1] / "src/rstransfer/studies/multilabel/schema.yaml"


def test_registry_matches_schema_enum() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    enum = schema["properties"]["active"]["properties"]["strategies"]["items"]["enum"]
    assert list(STRATEGIES) == enum == list(STRATEGY_NAMES)


def test_closed_form_mge_equals_autodiff_gradient_norm() -> None:
    import tensorflow as tf

    from rstransfer.core.keras import keras

    rng = np.random.default_rng(0)
    n, d, labels = 12, 9, 5
    h = rng.normal(size=(n, d)).astype(np.float32) * 2
    head = keras.layers.Dense(labels, activation=None, name="predictions")
    head.build((None, d))
    head.set_weights([rng.normal(size=(d, labels)).astype(np.float32), rng.normal(size=labels).astype(np.float32)])
    probs = tf.sigmoid(head(h)).numpy()
    pseudo = (probs >= 0.5).astype(np.float32)
    expected = []
    for i in range(n):
        with tf.GradientTape() as tape:
            logits = head(h[i : i + 1])
            loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=pseudo[i : i + 1], logits=logits))
        gw, gb = tape.gradient(loss, [head.kernel, head.bias])
        expected.append(np.sqrt(np.sum(gw.numpy() ** 2) + np.sum(gb.numpy() ** 2)))
    np.testing.assert_allclose(mge_scores(probs, h), expected, rtol=1e-4)
    # confident outputs have (nearly) no gradient, uncertain ones the largest
    assert mge_scores(np.array([[0.999, 0.001]]), np.ones((1, 3)))[0] < 0.01
    assert mge_scores(np.array([[0.5, 0.49]]), np.ones((1, 3)))[0] > 0.9


def _clustered_pool(rng: np.random.Generator, b: int, per: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """b well separated feature clusters of ``per`` samples with random uncertainty."""
    centres = rng.normal(size=(b, 6)) * 50
    features = np.concatenate([c + rng.normal(size=(per, 6)) for c in centres]).astype(np.float32)
    probs = rng.uniform(0.0, 1.0, size=(b * per, 4)).astype(np.float32)
    cluster = np.repeat(np.arange(b), per)
    return features, probs, cluster


def test_kmeans_selection_one_most_uncertain_per_cluster() -> None:
    rng = np.random.default_rng(3)
    b, per = 5, 8
    features, probs, cluster = _clustered_pool(rng, b, per)
    pool = np.arange(1000, 1000 + b * per)
    labelled = pool[::7][:4]
    unlabelled = np.setdiff1d(pool, labelled)
    keep = np.isin(pool, unlabelled)
    f, p, c = features[keep], probs[keep], cluster[keep]
    q = Query(p, f, 0.5, candidates=len(p), seed=0)  # m = all: every cluster is a candidate cluster
    picked_pos = select("mge_clustering", q, b)
    picked = unlabelled[picked_pos]
    assert len(set(picked.tolist())) == b
    assert not set(picked.tolist()) & set(labelled.tolist())
    assert set(picked.tolist()) <= set(pool.tolist())
    scores = mge_scores(p, f)
    assert sorted(c[picked_pos].tolist()) == list(range(b))  # one per cluster
    for k in range(b):
        members = np.flatnonzero(c == k)
        assert picked_pos[c[picked_pos] == k][0] == members[np.argmax(scores[members])]


def test_kmeans_selection_only_among_the_m_most_uncertain() -> None:
    rng = np.random.default_rng(4)
    features, probs, _ = _clustered_pool(rng, 4, 10)
    q = Query(probs, features, 0.5, candidates=12, seed=1)
    picked = select("mge_clustering", q, 4)
    top12 = np.argsort(-mge_scores(probs, features), kind="stable")[:12]
    assert len(set(picked.tolist())) == 4 and set(picked.tolist()) <= set(top12.tolist())


def test_mge_and_random() -> None:
    rng = np.random.default_rng(5)
    probs = rng.uniform(size=(30, 3)).astype(np.float32)
    feats = rng.normal(size=(30, 4)).astype(np.float32)
    q = Query(probs, feats, seed=2)
    top = select("mge", q, 6)
    assert set(top.tolist()) == set(np.argsort(-mge_scores(probs, feats))[:6].tolist())
    r1, r2 = select("random", q, 6), select("random", Query(probs, feats, seed=3), 6)
    assert len(set(r1.tolist())) == 6 and not np.array_equal(np.sort(r1), np.sort(r2))
    assert sorted(select("random", Query(probs[:4], feats[:4]), 6).tolist()) == [0, 1, 2, 3]
    with pytest.raises(Exception, match="unknown strategy 'entropy'"):
        select("entropy", q, 3)
