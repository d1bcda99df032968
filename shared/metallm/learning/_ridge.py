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
    """Sufficient statistics of ``n_arms`` ridge regressions on ``dim`` features.

    Args:
        n_arms: The models.
        dim: The features.
        penalties: The ridge penalty of each feature (or one for all).
        targets: Values learned per observation (quality and cost: 2).
        widths: Keep what confidence widths need.
        discount: How much older observations weigh (1: all alike).
    """

    def __init__(
        self,
        n_arms: int,
        dim: int,
        penalties: float | np.ndarray,
        *,
        targets: int = 2,
        widths: bool = True,
        discount: float = 1.0,
    ) -> None:
        self.n_arms = n_arms
        self.discount = discount
        """Each update multiplies what every arm learned before by this (1: no forgetting; the
        prior, ``diag(penalties)``, is kept whole): a model not chosen for a while forgets too,
        so its uncertainty grows back and it is tried again."""
        self.pending = np.zeros(n_arms, dtype=np.int64)
        """Updates whose forgetting an arm has not applied yet (applied when it is next updated,
        or when any arm has waited ``n_arms`` updates: every arm's statistics are then current
        to within ``n_arms`` updates at a cost of about one refactoring per update)."""
        self.dim = dim
        self.targets = targets
        """Regressions per arm over the same features: 2 (quality, cost), or 1 (a cost model)."""
        self.penalties = np.broadcast_to(np.asarray(penalties, dtype=np.float64), (dim,)).copy()
        self.A = np.repeat(np.diag(self.penalties)[None], n_arms, axis=0)
        self.A_inv = np.repeat(np.diag(1.0 / self.penalties)[None], n_arms, axis=0)
        # A float32 copy of every A^-1, stacked (k*dim, dim), read by routing: the width is
        # only an exploration bonus (float32 keeps it to ~1e-7 relative), and half the
        # bytes keep a 10-arm 64-d router's matrices in a core's L2 cache.
        # (widths=False: a model whose widths are never asked for, e.g. a cost model, skips it.)
        self._widths = widths
        self._A_inv32 = (
            self.A_inv.reshape(-1, dim).astype(np.float32)
            if widths
            else np.empty((0, dim), np.float32)
        )
        self.B = np.zeros((n_arms, dim, targets))
        # theta stored as (dim, targets, arm): every arm's coefficients in one contiguous
        # (dim, targets * k) block, so predicting all arms is one matrix product whose result
        # is already split into a quality row and a cost row.
        self._theta = np.zeros((dim, targets, n_arms))
        self._theta_flat = self._theta.reshape(dim, targets * n_arms)  # a view: updates show

    def __getstate__(self) -> dict[str, object]:
        """Pickled and deep-copied without the flat view of theta (a copy would not be a view)."""
        state = self.__dict__.copy()
        del state["_theta_flat"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._theta_flat = self._theta.reshape(self.dim, self.targets * self.n_arms)

    def add_arm(self) -> None:
        """One more arm, knowing nothing yet (its prior: the penalties)."""
        d = self.dim
        self.A = np.concatenate([self.A, np.diag(self.penalties)[None]])
        self.A_inv = np.concatenate([self.A_inv, np.diag(1.0 / self.penalties)[None]])
        if self._widths:
            self._A_inv32 = np.concatenate(
                [self._A_inv32, np.diag(1.0 / self.penalties).astype(np.float32)]
            )
        self.B = np.concatenate([self.B, np.zeros((1, d, self.targets))])
        self.pending = np.concatenate([self.pending, np.zeros(1, dtype=np.int64)])
        theta = np.zeros((d, self.targets, self.n_arms + 1))
        theta[:, :, : self.n_arms] = self._theta
        self._theta = theta
        self._theta_flat = self._theta.reshape(d, self.targets * (self.n_arms + 1))
        self.n_arms += 1

    @property
    def theta(self) -> np.ndarray:
        """Coefficients (n_arms, dim, targets), quality and cost (a view)."""
        return self._theta.transpose(2, 0, 1)

    def means(self, X: np.ndarray) -> np.ndarray:
        """Every target's prediction for every arm, (n, targets, k): one matrix product.

        Args:
            X: (n, dim) features.
        """
        return (X @ self._theta_flat).reshape(-1, self.targets, self.n_arms)

    def means_one(self, x: np.ndarray) -> np.ndarray:
        """Every target's prediction for every arm for one feature vector, (targets, k).

        Args:
            x: (dim,) features.
        """
        out: np.ndarray = np.dot(x, self._theta_flat).reshape(self.targets, self.n_arms)
        return out

    # -- learning ---------------------------------------------------------------------
    def update(self, arm: int, x: np.ndarray, y: np.ndarray) -> None:
        """Add one observation ``y`` (``(quality, cost)``, one value per target) at ``x`` to ``arm``.

        Args:
            arm: The arm.
            x: (dim,) features.
            y: One value per target.
        """
        if self.discount != 1.0:  # every arm forgets a little, keeping its prior
            self.pending += 1
            self._forget(arm)
            self.A[arm] += np.outer(x, x)
            self.B[arm] += np.outer(x, y)
            self.refresh(arm)
            if self.pending.max() >= self.n_arms:  # the arms not chosen lately catch up
                for waiting in np.flatnonzero(self.pending):
                    self._forget(int(waiting))
                    self.refresh(int(waiting))
            return
        a_inv = self.A_inv[arm]
        ax = a_inv @ x
        denom = 1.0 + float(x @ ax)
        theta = self._theta[:, :, arm]
        residual = y - x @ theta
        self.A[arm] += np.outer(x, x)
        self.B[arm] += np.outer(x, y)
        a_inv -= np.outer(ax, ax / denom)
        if self._widths:
            self._A_inv32[arm * self.dim : (arm + 1) * self.dim] = a_inv
        # Recursive least squares: theta += A_new^-1 x (y - x^T theta_old).
        theta += np.outer(ax / denom, residual)

    def correct(self, arm: int, x: np.ndarray, target: int, delta: float) -> None:
        """Change one target of an observation already learned at ``x`` by ``delta``.

        A grade replaced by a later one (a person overriding a judge) moves the regression as
        if the new value had been learned instead: ``B += delta * x`` for that target, and the
        coefficients by ``A^-1 delta x``; ``A`` (the features seen) does not change. With
        discounting, the replaced value had been discounted since; the change is applied
        whole (it moves the statistics towards the newer grade a little more than exactly).

        Args:
            arm: The arm that answered.
            x: (dim,) the observation's features.
            target: Which value (0: quality).
            delta: New value minus old.
        """
        step = delta * np.asarray(x, dtype=np.float64)
        self.B[arm][:, target] += step
        self._theta[:, target, arm] += self.A_inv[arm] @ step

    def mean_of(self, arm: int, x: np.ndarray, target: int = 0) -> float:
        """One arm's prediction of one target at ``x`` (quality: 0).

        Args:
            arm: The arm.
            x: (dim,) features.
            target: Which value.
        """
        return float(np.dot(x, self._theta[:, target, arm]))

    def shift(self, arm: int, delta: float, target: int = 0) -> None:
        """Move one target of everything ``arm`` learned by ``delta``, as if each value had been so.

        ``sum x`` over the arm's observations is the bias feature's column of ``A`` (less the
        prior), so this is exact: ``B += delta * sum x``, and the coefficients move by the
        change to the intercept it implies.

        Args:
            arm: The arm.
            delta: Added to every value learned.
            target: Which value (0: quality).
        """
        self._forget(arm)
        column = self.A[arm][:, -1].copy()
        column[-1] -= self.penalties[-1]
        self.B[arm][:, target] += delta * column
        self._theta[:, target, arm] = self.A_inv[arm] @ self.B[arm][:, target]

    def shrink(self, arm: int, keep: float) -> float:
        """Shrink what ``arm`` learned to about ``keep`` observations' worth; how much went.

        ``A - prior`` and ``B`` are scaled alike, so the arm's predictions stay about where
        they were while their weight (and so its confidence) falls: new observations decide.

        Args:
            arm: The arm.
            keep: Observations' worth to keep (nothing is shrunk if it has fewer).
        """
        self._forget(arm)
        seen = float(self.A[arm, -1, -1] - self.penalties[-1])
        if seen <= keep:
            return 0.0
        factor = keep / seen
        prior = np.diag(self.penalties)
        self.A[arm] = prior + factor * (self.A[arm] - prior)
        self.B[arm] = factor * self.B[arm]
        self.refresh(arm)
        return seen - keep

    def _forget(self, arm: int) -> None:
        """Apply the arm's pending forgetting: ``prior + discount**n (A - prior)``, ``B`` alike."""
        n = int(self.pending[arm])
        if n:
            factor = self.discount**n
            prior = np.diag(self.penalties)
            self.A[arm] = prior + factor * (self.A[arm] - prior)
            self.B[arm] = factor * self.B[arm]
            self.pending[arm] = 0

    def add_batch(self, arm: int, X: np.ndarray, Y: np.ndarray) -> None:
        """Add many observations to one arm, refactoring its inverse once.

        Args:
            arm: The arm.
            X: (n, dim) features.
            Y: (n, targets) values.
        """
        if X.shape[0] == 0:
            return
        if self.discount != 1.0:  # the i-th of n rows is worth discount^(n-1-i) at the end
            self._forget(arm)
            n = X.shape[0]
            weights = self.discount ** np.arange(n - 1, -1, -1, dtype=np.float64)
            prior = np.diag(self.penalties)
            self.A[arm] = prior + self.discount**n * (self.A[arm] - prior) + (X.T * weights) @ X
            self.B[arm] = self.discount**n * self.B[arm] + (X.T * weights) @ Y
            self.refresh(arm)
            return
        if X.shape[0] <= 4:
            for x, y in zip(X, Y, strict=False):
                self.update(arm, x, y)
            return
        self.A[arm] += X.T @ X
        self.B[arm] += X.T @ Y
        self.refresh(arm)

    def refresh(self, arm: int | None = None) -> None:
        """Recompute ``A^-1`` and ``theta`` from ``A`` and ``B`` (after a batch or a load).

        Args:
            arm: The arm (None: every arm).
        """
        arms = range(self.n_arms) if arm is None else (arm,)
        for k in arms:
            lower = np.linalg.cholesky(self.A[k])
            lower_inv = np.linalg.solve(lower, np.eye(self.dim))
            self.A_inv[k] = lower_inv.T @ lower_inv
            self._theta[:, :, k] = self.A_inv[k] @ self.B[k]
            if self._widths:
                self._A_inv32[k * self.dim : (k + 1) * self.dim] = self.A_inv[k]

    def counts(self) -> np.ndarray:
        """Observations per arm (read off the bias feature's diagonal entry)."""
        counts: np.ndarray = np.rint(self.A[:, -1, -1] - self.penalties[-1])
        return counts

    def cost_sums(self) -> np.ndarray:
        """Total observed cost per arm (the bias feature's row of ``B``)."""
        return self.B[:, -1, COST].copy()

    # -- prediction -------------------------------------------------------------------
    def predict(
        self, X: np.ndarray, *, fast_width: bool = False, widths: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Predicted quality, cost and confidence width ``sqrt(x^T A^-1 x)``, each (n, k).

        Costs are never below zero (a linear model can extrapolate past it; no call is paid
        for). ``fast_width`` computes the width in float32, as routing does; ``widths=False``
        skips it (None): the means alone cost a hundredth of the widths.

        Args:
            X: (n, dim) features.
            fast_width: Compute widths in float32, as routing does.
            widths: Compute widths at all (False: None).
        """
        k, d = self.n_arms, self.dim
        # (n, d) @ (d, k*2): one BLAS call for every arm's quality and cost
        means = (X @ self._theta_flat).reshape(-1, 2, k)
        cost = np.maximum(means[:, COST], 0.0)
        if not widths:
            return means[:, QUALITY], cost, None
        quad = np.empty((X.shape[0], self.n_arms), dtype=np.float32 if fast_width else np.float64)
        Z = X.astype(np.float32) if fast_width else X
        for arm in range(self.n_arms):
            a_inv = self._A_inv32[arm * d : (arm + 1) * d] if fast_width else self.A_inv[arm]
            quad[:, arm] = np.einsum("nd,nd->n", Z @ a_inv, Z)
        width = np.sqrt(np.maximum(quad, 0.0, out=quad), out=quad)
        return means[:, QUALITY], cost, width

    def predict_one(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For one feature vector: ``(means, quad)``, in three matrix products (the routing fast path).

        ``means`` is (2, k) (a quality row and a cost row) and ``quad = x^T A^-1 x`` per arm (float32).

        Args:
            x: (dim,) features.
        """
        k, d = self.n_arms, self.dim
        means = np.dot(x, self._theta_flat).reshape(2, k)  # np.dot: less call overhead than @
        np.maximum(means[COST], 0.0, out=means[COST])  # costs are never below zero
        x32 = x.astype(np.float32)
        quad: np.ndarray = np.dot(np.dot(self._A_inv32, x32).reshape(k, d), x32)
        return means, quad
