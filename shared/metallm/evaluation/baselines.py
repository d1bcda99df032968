"""Other routers, built here on the same split, so ``metallm bench`` shows where metallm stands.

Three learned routers from the literature, in numpy, each predicting every model's quality and
cost for a query from the training rows; bench routes with their predictions exactly as with
the router's (greedy on ``quality - p * cost``) and scores them with the same AIQ code:

* **kNN**: the mean outcome of the ``k`` most similar training prompts (cosine).
* **Cluster router**: spherical k-means on the training embeddings; the mean outcome of the
  query's cluster (as in UniRoute-style cluster routers).
* **MLP**: one hidden layer (ReLU), trained with Adam on squared error, stopped early on a
  held-out tenth of the training rows.

Each one's setting (``k``, the number of clusters) is chosen by 5-fold cross-validated AIQ on
the training rows, the same protocol that chooses the router's feature map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from metallm.learning.features import spherical_kmeans
from metallm.learning.metrics import aiq, frontier
from metallm.learning.reward import cost_scale

__all__ = [
    "BASELINES",
    "Baseline",
    "cluster_router",
    "knn_router",
    "mlp_router",
    "predict_baseline",
]

Predictor = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]
]
"""``(train_X, train_Q, train_C, test_X, setting) -> (quality, cost)`` predictions for test_X."""


def _unit(X: np.ndarray) -> np.ndarray:
    return np.asarray(X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12))


def knn_router(
    train_X: np.ndarray, train_Q: np.ndarray, train_C: np.ndarray, test_X: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean quality and cost of the ``k`` training prompts most similar to each test prompt."""
    train, test = _unit(train_X), _unit(test_X)
    k = min(k, train.shape[0])
    quality = np.empty((test.shape[0], train_Q.shape[1]))
    cost = np.empty_like(quality)
    for start in range(0, test.shape[0], 1024):  # bounded memory: 1024 x n similarities at a time
        similarity = test[start : start + 1024] @ train.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        quality[start : start + 1024] = train_Q[nearest].mean(axis=1)
        cost[start : start + 1024] = train_C[nearest].mean(axis=1)
    return quality, cost


def cluster_router(
    train_X: np.ndarray,
    train_Q: np.ndarray,
    train_C: np.ndarray,
    test_X: np.ndarray,
    clusters: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean quality and cost of each test prompt's k-means cluster (shrunk to the global mean)."""
    clusters = min(clusters, train_X.shape[0])
    centers = spherical_kmeans(train_X, clusters, seed=0)
    train_label = np.argmax(_unit(train_X) @ centers.T, axis=1)
    test_label = np.argmax(_unit(test_X) @ centers.T, axis=1)
    prior = 5.0  # pseudo-rows of the global mean: a small cluster does not swing to extremes
    quality = np.empty((clusters, train_Q.shape[1]))
    cost = np.empty_like(quality)
    for j in range(clusters):
        members = train_label == j
        n = members.sum()
        quality[j] = (train_Q[members].sum(axis=0) + prior * train_Q.mean(axis=0)) / (n + prior)
        cost[j] = (train_C[members].sum(axis=0) + prior * train_C.mean(axis=0)) / (n + prior)
    return quality[test_label], cost[test_label]


def mlp_router(
    train_X: np.ndarray,
    train_Q: np.ndarray,
    train_C: np.ndarray,
    test_X: np.ndarray,
    hidden: int,
    *,
    epochs: int = 200,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A one-hidden-layer MLP of every model's quality and (scaled) cost, early-stopped."""
    rng = np.random.default_rng(seed)
    scale = np.maximum(train_C.mean(axis=0), 1e-12)
    Y = np.hstack([train_Q, train_C / scale])
    order = rng.permutation(train_X.shape[0])
    n_val = max(1, train_X.shape[0] // 10)
    val, fit_rows = order[:n_val], order[n_val:]
    d, m = train_X.shape[1], Y.shape[1]
    params = [
        rng.normal(0, np.sqrt(2 / d), (d, hidden)),
        np.zeros(hidden),
        rng.normal(0, np.sqrt(1 / hidden), (hidden, m)),
        Y[fit_rows].mean(axis=0),
    ]
    moments = [np.zeros_like(p) for p in params]
    squares = [np.zeros_like(p) for p in params]
    lr, decay, batch, step = 2e-3, 1e-4, 128, 0

    def forward(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        H = np.maximum(X @ params[0] + params[1], 0.0)
        return H, H @ params[2] + params[3]

    best, best_params, patience = np.inf, [p.copy() for p in params], 0
    for _ in range(epochs):
        shuffled = rng.permutation(fit_rows)
        for start in range(0, len(shuffled), batch):
            rows = shuffled[start : start + batch]
            X, T = train_X[rows], Y[rows]
            H, out = forward(X)
            grad_out = 2 * (out - T) / len(rows)
            grad_H = (grad_out @ params[2].T) * (H > 0)
            grads = [
                X.T @ grad_H + decay * params[0],
                grad_H.sum(axis=0),
                H.T @ grad_out + decay * params[2],
                grad_out.sum(axis=0),
            ]
            step += 1
            for i, g in enumerate(grads):  # Adam
                moments[i] = 0.9 * moments[i] + 0.1 * g
                squares[i] = 0.999 * squares[i] + 0.001 * g * g
                corrected = moments[i] / (1 - 0.9**step)
                params[i] -= lr * corrected / (np.sqrt(squares[i] / (1 - 0.999**step)) + 1e-8)
        loss = float(((forward(train_X[val])[1] - Y[val]) ** 2).mean())
        if loss < best - 1e-6:
            best, best_params, patience = loss, [p.copy() for p in params], 0
        else:
            patience += 1
            if patience >= 10:
                break
    params = best_params
    out = forward(test_X)[1]
    k = train_Q.shape[1]
    return out[:, :k], np.maximum(out[:, k:] * scale, 0.0)


@dataclass(frozen=True)
class Baseline:
    """A router from the literature: its name, predictor and the settings CV chooses among."""

    name: str
    predict: Predictor
    settings: tuple[int, ...]
    setting_name: str


BASELINES = (
    Baseline("kNN", knn_router, (5, 10, 20, 50, 100), "k"),
    Baseline("cluster router", cluster_router, (8, 16, 32, 64), "clusters"),
    Baseline("MLP", mlp_router, (128,), "hidden units"),
)
"""The routers ``metallm bench`` measures beside metallm's."""


def predict_baseline(
    baseline: Baseline,
    train_X: np.ndarray,
    train_Q: np.ndarray,
    train_C: np.ndarray,
    test_X: np.ndarray,
    cost_weights: Sequence[float] | np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
) -> tuple[int, np.ndarray, np.ndarray]:
    """The setting with the best 5-fold AIQ on the training rows, and its test predictions."""
    n, k = train_Q.shape
    order = np.random.default_rng(seed).permutation(n)
    single = train_C.mean(axis=0)
    scale = cost_scale(np.full(k, n), train_C.sum(axis=0))
    best_setting, best_score = baseline.settings[0], -np.inf
    if len(baseline.settings) > 1:
        for setting in baseline.settings:
            pq, pc = np.empty_like(train_Q), np.empty_like(train_C)
            for fold in np.array_split(order, folds):
                rest = np.setdiff1d(order, fold, assume_unique=True)
                pq[fold], pc[fold] = baseline.predict(
                    train_X[rest], train_Q[rest], train_C[rest], train_X[fold], setting
                )
            points = frontier(pq, pc / scale, train_Q, train_C, cost_weights)
            score = aiq(points, (float(single.min()), float(single.max())))
            if score > best_score:
                best_setting, best_score = setting, score
    quality, cost = baseline.predict(train_X, train_Q, train_C, test_X, best_setting)
    return best_setting, quality, cost
