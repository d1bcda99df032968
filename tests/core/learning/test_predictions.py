"""Predictions: never a negative cost, widths only when asked, a projection fitted by fit()."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import ProjectedFeatures, Router


def _data(n=400, d=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    quality = (X[:, :2] > 0).astype(float)
    # cost falls steeply along one direction: a linear fit goes below zero at the far end
    cost = np.stack([np.maximum(0.001 - 0.002 * X[:, 2], 0.0), np.full(n, 0.0005)], axis=1)
    return X, quality, cost


def test_predicted_costs_are_never_below_zero_in_any_path():
    X, quality, cost = _data()
    router = Router(["a", "b"], embedder=None, seed=0).fit(X, quality, cost, tune=False)
    far = np.zeros((5, X.shape[1]))
    far[:, 2] = np.linspace(3, 10, 5)  # where the linear cost model extrapolates below zero
    stats = router.bandit.stats
    raw = router.bandit.features.transform(far) @ stats._theta_flat
    assert (raw.reshape(-1, 2, 2)[:, 1, 0] < 0).any()  # the unclipped model does go negative
    prediction = router.predict(far)
    assert (prediction.cost >= 0).all()
    assert prediction.cost[-1, 0] == 0.0
    # routing scores use the clipped cost too: a negative cost would add p * |cost| to the score
    _, scores, bonus, *_ = router.bandit.score_one(far[-1], cost_weight=10.0, scale=1.0)
    assert scores[0] - bonus[0] == pytest.approx(prediction.quality[-1, 0], abs=1e-9)
    chosen, batch_scores, batch_bonus, *_ = router.bandit.score_many(
        far, cost_weight=10.0, scale=1.0
    )
    np.testing.assert_allclose(
        (batch_scores - batch_bonus)[:, 0], prediction.quality[:, 0] - 10.0 * prediction.cost[:, 0]
    )


def test_predict_without_widths_gives_the_same_means_and_no_widths():
    X, quality, cost = _data()
    router = Router(["a", "b"], embedder=None, seed=0).fit(X, quality, cost, tune=False)
    full, fast = router.predict(X[:50]), router.predict(X[:50], widths=False)
    assert fast.width is None and full.width is not None and full.width.shape == (50, 2)
    np.testing.assert_allclose(fast.quality, full.quality)
    np.testing.assert_allclose(fast.cost, full.cost)


def test_fit_without_tuning_fits_the_projection_on_the_data():
    X, quality, cost = _data()
    router = Router(["a", "b"], embedder=None, features=ProjectedFeatures(4), seed=0)
    assert not router.bandit.features.learned  # cold: a random projection
    router.fit(X, quality, cost, tune=False)
    fitted = router.bandit.features
    assert fitted.learned
    _, _, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    # the same principal subspace as PCA (up to the sign of each direction)
    np.testing.assert_allclose(np.abs(fitted.projection.T @ vt[:4].T), np.eye(4), atol=1e-8)
