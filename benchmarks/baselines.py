"""Other routers, built on the same split, so ``python -m benchmarks.bench`` shows where metallm stands.

Three learned routers from the literature, in numpy, each predicting every model's quality and
cost for a query from the training rows; bench routes with their predictions exactly as with
the router's (greedy on ``quality - p * cost``) and scores them with the same AIQ code:

* **kNN**: the mean outcome of the ``k`` most similar training prompts (cosine).
* **Cluster router**: spherical k-means on the training embeddings; the mean outcome of the
  query's cluster (as in UniRoute-style cluster routers).
* **MLP**: one hidden layer (ReLU), trained with Adam on squared error, stopped early on a
  held-out tenth of the training rows; the mean of three trained from different seeds.

Each one's setting (``k``, the number of clusters) is chosen by 5-fold cross-validated AIQ on
the training rows, the same protocol that chooses the router's feature map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from metallm.exceptions import ConfigurationError
from metallm.learning._features import spherical_kmeans
from metallm.learning._metrics import aiq, frontier
from metallm.learning._reward import cost_scale

__all__ = [
    "BASELINES",
    "MLP",
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


class MLP:
    """``outputs`` regressions of ``inputs`` features through ``hidden`` ReLU units (numpy).

    One hidden layer (ReLU), trained with Adam on squared error and stopped early on a
    held-out tenth of the rows.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> net = MLP(3, 1, hidden=16).train(X, (X[:, :1] > 0).astype(float), seed=0)
    >>> bool(net.predict(np.array([[2.0, 0, 0]]))[0, 0] > 0.5)
    True
    """

    def __init__(self, inputs: int, outputs: int, *, hidden: int = 128, seed: int = 0) -> None:
        if min(inputs, outputs, hidden) < 1:
            raise ConfigurationError("an MLP needs at least one input, output and hidden unit")
        rng = np.random.default_rng(seed)
        self.W1 = rng.normal(0.0, np.sqrt(2.0 / inputs), (inputs, hidden))
        self.b1 = np.zeros(hidden)
        self.W2 = rng.normal(0.0, np.sqrt(1.0 / hidden), (hidden, outputs))
        self.b2 = np.zeros(outputs)

    @property
    def params(self) -> list[np.ndarray]:
        """The weights, in a fixed order (W1, b1, W2, b2)."""
        return [self.W1, self.b1, self.W2, self.b2]

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = np.maximum(X @ self.W1 + self.b1, 0.0)
        return hidden, hidden @ self.W2 + self.b2

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs (n, outputs) for inputs (n, inputs)."""
        return self._forward(X)[1]

    def predict_one(self, x: np.ndarray) -> np.ndarray:
        """Outputs (outputs,) for one input (inputs,)."""
        hidden = np.maximum(np.dot(x, self.W1) + self.b1, 0.0)
        out: np.ndarray = np.dot(hidden, self.W2) + self.b2
        return out

    def train(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        *,
        epochs: int = 200,
        batch: int = 128,
        rate: float = 2e-3,
        decay: float = 1e-4,
        patience: int = 10,
        seed: int = 0,
    ) -> MLP:
        """Fit to (X, Y) with Adam, stopping when a held-out tenth stops improving; returns self."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(X.shape[0])
        n_val = max(1, X.shape[0] // 10)
        val, rows = order[:n_val], order[n_val:]
        if len(rows) == 0:
            rows = val
        self.b2 = Y[rows].mean(axis=0).astype(np.float64)
        params = self.params
        moments = [np.zeros_like(p) for p in params]
        squares = [np.zeros_like(p) for p in params]
        best, kept, waited, step = np.inf, [p.copy() for p in params], 0, 0
        for _ in range(epochs):
            shuffled = rng.permutation(rows)
            for start in range(0, len(shuffled), batch):
                chunk = shuffled[start : start + batch]
                grads = self._gradients(X[chunk], Y[chunk], decay)
                step += 1
                for p, g, m, v in zip(params, grads, moments, squares):
                    m *= 0.9
                    m += 0.1 * g
                    v *= 0.999
                    v += 0.001 * g * g
                    p -= rate * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
            loss = float(((self.predict(X[val]) - Y[val]) ** 2).mean())
            if loss < best - 1e-6:
                best, kept, waited = loss, [p.copy() for p in params], 0
            else:
                waited += 1
                if waited >= patience:
                    break
        for p, k in zip(params, kept):
            p[...] = k
        return self

    def _gradients(self, X: np.ndarray, Y: np.ndarray, decay: float) -> list[np.ndarray]:
        hidden, out = self._forward(X)
        grad_out = 2.0 * (out - Y) / X.shape[0]
        grad_hidden = (grad_out @ self.W2.T) * (hidden > 0)
        return [
            X.T @ grad_hidden + decay * self.W1,
            grad_hidden.sum(axis=0),
            hidden.T @ grad_out + decay * self.W2,
            grad_out.sum(axis=0),
        ]


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
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One-hidden-layer MLPs of every model's quality and (scaled) cost, early-stopped.

    The mean of three, trained from three seeds: one alone swung by up to 0.01 AIQ with its seed.
    """
    scale = np.maximum(train_C.mean(axis=0), 1e-12)
    k = train_Q.shape[1]
    targets = np.hstack([train_Q, train_C / scale])
    out = np.mean(
        [
            MLP(train_X.shape[1], 2 * k, hidden=hidden, seed=seed + i)
            .train(train_X, targets, seed=seed + i)
            .predict(test_X)
            for i in range(3)
        ],
        axis=0,
    )
    return out[:, :k], np.maximum(out[:, k:] * scale, 0.0)


@dataclass(frozen=True)
class Baseline:
    """A router from the literature: its name, predictor and the settings CV chooses among."""

    name: str
    predict: Predictor
    settings: tuple[int, ...]
    setting_name: str

    def fitted(
        self,
        train_X: np.ndarray,
        train_Q: np.ndarray,
        train_C: np.ndarray,
        test_X: np.ndarray,
        cost_weights: Sequence[float] | np.ndarray,
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """`predict_baseline` for this router (what ``metallm``'s ``run_bench`` calls)."""
        return predict_baseline(self, train_X, train_Q, train_C, test_X, cost_weights)


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
