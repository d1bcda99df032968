"""The routers bench measures beside metallm's: each learns what it should on data made to fit it."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.baselines import (
    BASELINES,
    cluster_router,
    knn_router,
    mlp_router,
    predict_baseline,
)


def _two_topics(n=600, d=12, seed=0):
    """Two directions of embeddings: model 0 is right on the first, model 1 on the second."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, n)
    centers = np.eye(d)[:2] * 3
    X = centers[topic] + rng.normal(size=(n, d)) * 0.3
    Q = np.stack([topic == 0, topic == 1], axis=1).astype(float)
    C = np.stack([np.full(n, 0.001), np.full(n, 0.01)], axis=1)
    return X, Q, C, topic


@pytest.mark.parametrize(
    "predict,setting", [(knn_router, 10), (cluster_router, 4), (mlp_router, 32)]
)
def test_each_baseline_learns_which_model_is_right_where(predict, setting):
    X, Q, C, topic = _two_topics()
    quality, cost = predict(X[:400], Q[:400], C[:400], X[400:], setting)
    chosen = quality.argmax(axis=1)
    assert (chosen == (topic[400:] == 1)).mean() > 0.95
    assert quality.shape == cost.shape == (200, 2) and (cost >= 0).all()
    np.testing.assert_allclose(cost.mean(axis=0), [0.001, 0.01], rtol=0.2)


def test_knn_averages_exactly_the_nearest_rows():
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    Q = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    C = np.ones((3, 2))
    quality, _ = knn_router(X, Q, C, np.array([[1.0, 0.05]]), 2)
    np.testing.assert_allclose(quality, [[0.5, 0.0]])


def test_the_setting_is_chosen_by_cross_validation_on_training_rows_only():
    X, Q, C, _ = _two_topics()
    knn = next(b for b in BASELINES if b.name == "kNN")
    setting, quality, _ = predict_baseline(knn, X[:400], Q[:400], C[:400], X[400:], [0.0, 1.0])
    assert setting in knn.settings and quality.shape == (200, 2)
