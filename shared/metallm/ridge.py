"""Per-arm ridge regression statistics with rank-1 updates.

For arm ``k`` over feature rows ``x`` (the embedding plus a bias term) the router keeps

    A_k = diag(penalties) + sum x x^T   (d x d; the penalties are the ridge prior)
    B_k = sum x [quality, cost]          (d x 2)

and the inverse ``A_k^-1`` is maintained by the Sherman-Morrison formula, so one update
costs O(d^2) and no d x d matrix is inverted per query or per update. ``A`` and ``B`` are
plain sums over events, so two routers' statistics (or a log of events) simply add up.

Quality and cost share ``A``: by linearity, the ridge model of the paper's reward
``quality - p * cost`` is exactly ``theta_quality - p * theta_cost`` for every ``p``,
so changing ``p`` (calibration, online budgets) never needs retraining.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RidgeStatistics"]

QUALITY, COST = 0, 1


class RidgeStatistics:
    """Sufficient statistics of ``n_arms`` ridge regressions on ``dim`` features."""

    def __init__(self, n_arms: int, dim: int, penalties: float | np.ndarray) -> None:
        self.n_arms = n_arms
        self.dim = dim
        self.penalties = np.broadcast_to(np.asarray(penalties, dtype=np.float64), (dim,)).copy()
        self.A = np.repeat(np.diag(self.penalties)[None], n_arms, axis=0)
        self.A_inv = np.repeat(np.diag(1.0 / self.penalties)[None], n_arms, axis=0)
        self.B = np.zeros((n_arms, dim, 2))
        # theta stored as (dim, arm, 2): every arm's coefficients in one contiguous
        # (dim, 2k) block, so predicting all arms is one matrix product with no copy.
        self._theta = np.zeros((dim, n_arms, 2))

    @property
    def theta(self) -> np.ndarray:
        """Coefficients (n_arms, dim, 2) for quality and cost (a view)."""
        return self._theta.transpose(1, 0, 2)

    # -- learning ---------------------------------------------------------------------
    def update(self, arm: int, x: np.ndarray, y: np.ndarray) -> None:
        """Add one observation ``y = (quality, cost)`` at features ``x`` to ``arm``."""
        a_inv = self.A_inv[arm]
        ax = a_inv @ x
        denom = 1.0 + float(x @ ax)
        theta = self._theta[:, arm, :]
        residual = y - x @ theta
        self.A[arm] += np.outer(x, x)
        self.B[arm] += np.outer(x, y)
        a_inv -= np.outer(ax, ax / denom)
        # Recursive least squares: theta += A_new^-1 x (y - x^T theta_old).
        theta += np.outer(ax / denom, residual)

    def add_batch(self, arm: int, X: np.ndarray, Y: np.ndarray) -> None:
        """Add many observations to one arm, refactoring its inverse once."""
        if X.shape[0] == 0:
            return
        if X.shape[0] <= 4:
            for x, y in zip(X, Y, strict=False):
                self.update(arm, x, y)
            return
        self.A[arm] += X.T @ X
        self.B[arm] += X.T @ Y
        self.refresh(arm)

    def refresh(self, arm: int | None = None) -> None:
        """Recompute ``A^-1`` and ``theta`` from ``A`` and ``B`` (after a batch or a load)."""
        arms = range(self.n_arms) if arm is None else (arm,)
        for k in arms:
            lower = np.linalg.cholesky(self.A[k])
            lower_inv = np.linalg.solve(lower, np.eye(self.dim))
            self.A_inv[k] = lower_inv.T @ lower_inv
            self._theta[:, k, :] = self.A_inv[k] @ self.B[k]

    def counts(self) -> np.ndarray:
        """Observations per arm (read off the bias feature's diagonal entry)."""
        counts: np.ndarray = np.rint(self.A[:, -1, -1] - self.penalties[-1])
        return counts

    def cost_sums(self) -> np.ndarray:
        """Total observed cost per arm (the bias feature's row of ``B``)."""
        return self.B[:, -1, COST].copy()

    # -- prediction -------------------------------------------------------------------
    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted quality, cost and confidence width ``sqrt(x^T A^-1 x)``, each (n, k)."""
        k, d = self.n_arms, self.dim
        # (n, d) @ (d, k*2): one BLAS call for every arm's quality and cost
        means = (X @ self._theta.reshape(d, k * 2)).reshape(-1, k, 2)
        if X.shape[0] == 1:
            x = X[0]
            quad = ((self.A_inv.reshape(-1, d) @ x).reshape(k, d) @ x)[None, :]
        else:
            quad = np.empty((X.shape[0], self.n_arms))
            for k in range(self.n_arms):
                quad[:, k] = np.einsum("nd,nd->n", X @ self.A_inv[k], X)
        width = np.sqrt(np.maximum(quad, 0.0))
        return means[..., QUALITY], means[..., COST], width
