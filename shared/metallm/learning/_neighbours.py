"""A second opinion on quality: what the most similar prompts got (kNN), blended in.

The linear model generalises smoothly over the embedding space; the outcomes of a prompt's
nearest neighbours keep local detail it smooths away. `NeighbourQuality` holds a bounded
memory of (prompt embedding, outcomes) and predicts each model's quality as the mean outcome of
the ``k`` most similar prompts that model answered. The bandit blends it with the linear
prediction::

    quality = (1 - w * s) * linear + w * s * neighbours,    s = min(n_model, k) / k

where ``n_model`` is how many remembered prompts that model answered, so a model with few
outcomes (a new one) leans on the linear model and its warm start. With ``w`` or ``k`` left
None, `metallm.Router.fit` chooses them by the same cross-validation that chooses the
feature map (``w = 0``, today's linear learner, is one of the choices).

Online: every outcome learned is appended to the memory (the oldest dropped past
``max_rows``, a window that also forgets drift); processes sharing a store fold the same
outcomes in the log's order, so their memories agree, and snapshots carry the memory (about
0.8 KB per remembered prompt for a 384-d embedding). UCB's confidence widths stay the linear
model's. Costs are not blended: the cost model already reads the prompt's length.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from metallm.exceptions import ConfigurationError

__all__ = [
    "BLEND_DIMS",
    "BLEND_ROWS",
    "NEIGHBOUR_KS",
    "NEIGHBOUR_WEIGHTS",
    "NeighbourQuality",
    "default_blend",
    "neighbour_quality",
    "subsample",
    "unit_rows",
]

NEIGHBOUR_KS = (20, 50, 100)
"""The ``k`` values cross-validation chooses among when ``k`` is None."""
NEIGHBOUR_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
"""The blend weights cross-validation chooses among when ``weight`` is None."""
BLEND_ROWS = 2_000
"""The memory of the blend `default_blend` makes: the routing table's rows, sampled."""
BLEND_DIMS = 64
"""Its principal directions: 2,000 x 64 float32 is 0.5 MB read per query. With the table's
rows only (every outcome known) a query is one projection, one scan and one partial sort:
about 25 us alone, 100-130 us inside a 12-model select (the select's other reads leave it
little cache; ``python -m benchmarks.speed``), as much as the cluster map adds over the linear
one. A default fit serves the blend or the cluster map, never both."""


def default_blend() -> NeighbourQuality:
    """The kNN blend a router's tuned fit weighs by default (`Router(blend="default")`).

    ``k`` and weight are chosen by cross-validation over the best linear map; the fit keeps it
    only where it is ahead of the chosen map beyond the folds' noise.

    >>> default_blend()
    NeighbourQuality(k=50, weight=0.5, max_rows=2000, dims=64, online=False, remembered=0)
    """
    return NeighbourQuality(max_rows=BLEND_ROWS, dims=BLEND_DIMS, online=False)


def subsample(n: int, max_rows: int, seed: int = 0) -> np.ndarray:
    """The rows a memory of ``max_rows`` keeps of ``n``: all, or a seeded uniform sample.

    Args:
        n: Rows offered.
        max_rows: The memory's size.
        seed: The sample's seed.

    Returns:
        Row indices, in order.
    """
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (what the memory holds and queries are)."""
    X = np.asarray(X, dtype=np.float32)
    unit: np.ndarray = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return unit


def _most_similar(similarity: np.ndarray, count: int) -> np.ndarray:
    """Column indices of the ``count`` largest similarities of each row (in no order)."""
    m = similarity.shape[1]
    if count < m:
        return np.argpartition(-similarity, count - 1, axis=1)[:, :count]
    return np.broadcast_to(np.arange(m), similarity.shape)


def neighbour_quality(
    memory: np.ndarray,
    outcomes: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    complete: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean outcome per model of the ``k`` remembered prompts most similar to each query.

    ``memory`` (m, d) unit vectors, ``outcomes`` (m, a) with NaN where a model's outcome is
    unknown, ``queries`` (n, d) unit vectors. Returns the means (n, a) and the support
    ``min(known, k) / k`` (n, a) (0 and 0 for a model with nothing remembered).

    Exact, and fast when models know few of the remembered prompts: the ``8 k`` most similar
    prompts are found once per query and each model takes its ``k`` nearest known among them;
    only a query where a model knows fewer than ``k`` of those is searched again for that model.
    With ``complete`` (each model's outcome known for every remembered prompt, as a fitted
    table gives, or for none, as for a model that joined or drifted since) the ``k`` nearest
    are one partial sort per query, shared by every model.

    >>> memory = np.eye(3, dtype=np.float32)
    >>> outcomes = np.array([[1.0, np.nan], [0.0, 1.0], [0.0, 0.0]])
    >>> means, support = neighbour_quality(memory, outcomes, memory[:1], k=1)
    >>> means.tolist(), support.tolist()
    ([[1.0, 1.0]], [[1.0, 1.0]])
    """
    n, arms = queries.shape[0], outcomes.shape[1]
    m = memory.shape[0]
    means = np.zeros((n, arms))
    support = np.zeros((n, arms))
    if m == 0 or n == 0:
        return means, support
    if complete:  # every outcome known (a fitted table): one partial sort serves every model
        kk_all = min(k, m)
        known = ~np.isnan(outcomes[0])  # a column is known for every row or for none
        values = np.where(known, outcomes, 0.0)
        for start in range(0, n, 256):
            similarity = queries[start : start + 256] @ memory.T
            nearest = _most_similar(similarity, kk_all)
            means[start : start + similarity.shape[0]] = values[nearest].mean(axis=1)
        support[:] = np.where(known, kk_all / k, 0.0)
        return means, support
    known = ~np.isnan(outcomes)
    kk = np.minimum(k, known.sum(axis=0))  # per model: how many neighbours it averages
    values = np.where(known, outcomes, 0.0)
    shortlist = min(m, 8 * k)
    for start in range(0, n, 256):  # bounded memory: 256 x m similarities at a time
        similarity = queries[start : start + 256] @ memory.T
        stop = start + similarity.shape[0]
        candidates = _most_similar(similarity, shortlist)
        order = np.argsort(-np.take_along_axis(similarity, candidates, axis=1), axis=1)
        candidates = np.take_along_axis(candidates, order, axis=1)  # most similar first
        is_known = known[candidates]  # (queries, shortlist, models): every model at once
        taken = is_known & (np.cumsum(is_known, axis=1) <= kk)
        means[start:stop] = (values[candidates] * taken).sum(axis=1) / np.maximum(kk, 1)
        support[start:stop] = kk / k
        # too few known among the shortlist: search that model's rows for that query
        for query, arm in zip(*np.nonzero(taken.sum(axis=1) < kk), strict=True):
            rows = np.flatnonzero(known[:, arm])
            nearest = np.argpartition(-similarity[query, rows], kk[arm] - 1)[: kk[arm]]
            means[start + query, arm] = outcomes[rows, arm][nearest].mean()
    return means, support


class NeighbourQuality:
    """A bounded memory of outcomes whose nearest neighbours give a second opinion on quality.

    Args:
        k: How many similar prompts to average (None: chosen by ``fit``'s cross-validation
            among `NEIGHBOUR_KS`; 50 until then).
        weight: The blend weight ``w`` in [0, 1] (None: chosen by cross-validation among
            `NEIGHBOUR_WEIGHTS`; 0.5 until then).
        max_rows: Prompts remembered; past it the oldest is dropped for each new one.
        dims: Remember and compare prompts in their top ``dims`` principal directions, found by
            `fit` (None: the whole embedding). A 384-d memory of 2,000 prompts is 3 MB read
            per query; 64 directions read a sixth of it.
        online: Remember each outcome learned online too (False: the memory is the fitted
            table's rows, every model's outcome known, so a query is one scan and one
            partial sort, about 25 us for 2,000 x 64; online outcomes teach the linear model).

    >>> from metallm import Router
    >>> second_opinion = NeighbourQuality(k=1, weight=1.0)
    >>> router = Router(["small", "large"], embedder=None, neighbours=second_opinion)
    >>> X = [[1.0, 0.0], [0.0, 1.0]]
    >>> _ = router.partial_fit(X, ["large", "small"], quality=[1.0, 1.0], cost=[0.01, 0.001])
    >>> _ = router.partial_fit(X, ["small", "large"], quality=[0.0, 0.0], cost=[0.001, 0.01])
    >>> prediction = router.predict([[0.9, 0.1]], widths=False)
    >>> prediction.quality.round(2).tolist()  # its nearest remembered prompt: large was right
    [[0.0, 1.0]]
    """

    def __init__(
        self,
        k: int | None = None,
        weight: float | None = None,
        *,
        max_rows: int = 10_000,
        dims: int | None = None,
        online: bool = True,
    ) -> None:
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigurationError(f"k must be a positive integer or None, got {k!r}")
        if weight is not None and not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
            raise ConfigurationError(f"weight must be in [0, 1] or None, got {weight!r}")
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ConfigurationError(f"max_rows must be a positive integer, got {max_rows!r}")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
            raise ConfigurationError(f"dims must be a positive integer or None, got {dims!r}")
        self.dims = dims
        self.online = bool(online)
        self._complete = True
        """Each model's outcome known for every remembered prompt or for none (the fast path
        of `neighbour_quality`)."""
        self._known = np.ones(0, dtype=bool)
        """Per model, on the fast path: whether its outcomes are known (False: none are)."""
        self.offered = False
        """Whether a fit offered it (`fresh`): the next tuned fit weighs it again, may drop it."""
        self._projection: np.ndarray | None = None  # (embedding, dims), set by fit
        self._mean: np.ndarray | None = None
        self._offset: np.ndarray | None = None  # mean @ projection: one query's shift
        self.k_setting, self.weight_setting = k, weight
        self.k = k if k is not None else 50
        self.weight = float(weight) if weight is not None else 0.5
        self.max_rows = max_rows
        self._memory = np.empty((0, 0), dtype=np.float32)
        self._outcomes = np.empty((0, 0), dtype=np.float32)
        self._size = 0
        self._next = 0  # where the next row goes once the memory is full (the oldest)

    def __repr__(self) -> str:
        dims = "" if self.dims is None else f", dims={self.dims}"
        online = "" if self.online else ", online=False"
        return (
            f"NeighbourQuality(k={self.k}, weight={self.weight}, max_rows={self.max_rows}"
            f"{dims}{online}, remembered={self._size})"
        )

    def __len__(self) -> int:
        return self._size

    def fresh(self) -> NeighbourQuality:
        """An empty memory with the same settings (what a fit that offers the blend starts from)."""
        made = NeighbourQuality(
            self.k_setting,
            self.weight_setting,
            max_rows=self.max_rows,
            dims=self.dims,
            online=self.online,
        )
        made.offered = True
        return made

    @property
    def active(self) -> bool:
        """Whether it changes predictions (a weight above 0 and something remembered)."""
        return self.weight > 0.0 and self._size > 0

    # -- memory --------------------------------------------------------------------------
    def clear(self, arms: int | None = None) -> None:
        """Forget every remembered prompt (keeps k, weight and, unless given, the models).

        Args:
            arms: The number of models from now on (None: as before).
        """
        arms = self._outcomes.shape[1] if arms is None else arms
        self._memory = np.empty((0, self._memory.shape[1]), dtype=np.float32)
        self._outcomes = np.empty((0, arms), dtype=np.float32)
        self._size = self._next = 0
        self._check_complete()

    def vectors(self, embeddings: np.ndarray) -> np.ndarray:
        """What the memory holds of ``embeddings`` (n, d): unit rows, projected once fitted.

        Args:
            embeddings: (n, d) prompt embeddings.
        """
        if self._projection is None or self._mean is None:
            return unit_rows(embeddings)
        X = np.asarray(embeddings, dtype=np.float32)
        return unit_rows((X - self._mean) @ self._projection)

    def _fit_projection(self, embeddings: np.ndarray) -> None:
        """Find the ``dims`` principal directions of these embeddings (no-op without ``dims``).

        Args:
            embeddings: (n, d) training embeddings.
        """
        if self.dims is None:
            return
        X = np.asarray(embeddings, dtype=np.float64)
        mean = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
        self._use_projection(mean, vt[: self.dims].T)

    def _use_projection(self, mean: np.ndarray, projection: np.ndarray) -> None:
        self._mean = np.asarray(mean, dtype=np.float32)
        self._projection = np.ascontiguousarray(projection, dtype=np.float32)
        self._offset = self._mean @ self._projection

    def fit(self, embeddings: np.ndarray, quality: np.ndarray) -> None:
        """Remember these rows (every model's outcome known): ``max_rows`` of them at most.

        Past ``max_rows`` a uniform sample is kept (seeded, in the rows' order), not the last
        rows: a table's order is not time (it is often grouped by source), and the last rows
        of a grouped table would be some sources only. Cross-validation scores the blend with
        the same cap (`subsample`).

        Args:
            embeddings: (n, d).
            quality: (n, k): every model's outcome of each row.
        """
        keep = subsample(embeddings.shape[0], self.max_rows)
        self._fit_projection(embeddings)
        self._memory = self.vectors(embeddings[keep])
        self._outcomes = np.asarray(quality[keep], dtype=np.float32).copy()
        self._size = self._memory.shape[0]
        self._next = 0
        self._check_complete()

    def _check_complete(self) -> None:
        """Whether each model's outcomes are known for every remembered prompt or for none."""
        known = ~np.isnan(self._outcomes[: self._size])
        self._known = np.asarray(known.all(axis=0))
        self._complete = bool((self._known | ~known.any(axis=0)).all())

    def add(
        self, embeddings: np.ndarray, arms: np.ndarray, quality: np.ndarray, n_arms: int
    ) -> None:
        """Remember rows where one model's outcome each is known (``arms``, ``quality``: (n,)).

        Nothing when it does not learn online (``online=False``).

        Args:
            embeddings: (n, d).
            arms: The model of each row.
            quality: Its outcome.
            n_arms: The models in the pool.
        """
        if not self.online:
            if self._outcomes.shape[1] < n_arms:
                self.add_arms(n_arms - self._outcomes.shape[1])
            return
        unit = self.vectors(np.atleast_2d(embeddings))
        if self._outcomes.shape[1] < n_arms:
            self.add_arms(n_arms - self._outcomes.shape[1])
        if self._memory.shape[1] != unit.shape[1]:
            if self._size:
                raise ConfigurationError(
                    f"embedding has {unit.shape[1]} dimensions, the remembered ones "
                    f"{self._memory.shape[1]}"
                )
            self._memory = np.empty((0, unit.shape[1]), dtype=np.float32)
        rows = np.full((unit.shape[0], n_arms), np.nan, dtype=np.float32)
        rows[np.arange(unit.shape[0]), np.asarray(arms, dtype=int)] = quality
        for vector, outcome in zip(unit, rows):
            self._append(vector, outcome)
        self._complete = self._complete and n_arms == 1 and bool(self._known[:1].all())

    def _append(self, vector: np.ndarray, outcome: np.ndarray) -> None:
        if self._size < self.max_rows:
            if self._size == self._memory.shape[0]:  # grow by doubling up to max_rows
                grown = min(self.max_rows, max(256, 2 * self._size))
                memory = np.empty((grown, vector.shape[0]), dtype=np.float32)
                outcomes = np.full((grown, outcome.shape[0]), np.nan, dtype=np.float32)
                memory[: self._size] = self._memory[: self._size]
                outcomes[: self._size] = self._outcomes[: self._size]
                self._memory, self._outcomes = memory, outcomes
            self._memory[self._size], self._outcomes[self._size] = vector, outcome
            self._size += 1
            return
        self._memory[self._next], self._outcomes[self._next] = vector, outcome
        self._next = (self._next + 1) % self.max_rows

    def add_arms(self, count: int = 1) -> None:
        """Room for ``count`` more models, with nothing known of them yet.

        Args:
            count: How many models joined.
        """
        extra = np.full((self._outcomes.shape[0], count), np.nan, dtype=np.float32)
        self._outcomes = np.hstack([self._outcomes, extra])
        if self._complete:  # a column known for none keeps the fast path
            self._known = np.concatenate([self._known, np.zeros(count, dtype=bool)])

    def forget(self, arm: int) -> None:
        """Forget every remembered outcome of one model (a drift alarm: they predate a change).

        Its predictions lean on the linear model alone until the memory learns it again (an
        online memory) or the next fit (a table's rows).

        Args:
            arm: The model's index.
        """
        if arm < self._outcomes.shape[1]:
            self._outcomes[:, arm] = np.nan
            self._check_complete()

    # -- predicting ----------------------------------------------------------------------
    def blend(self, linear_quality: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """``linear_quality`` (n, a) blended with the neighbours' opinion of ``embeddings`` (n, d).

        Args:
            linear_quality: (n, a) predictions of the linear models.
            embeddings: (n, d) the queries' embeddings.
        """
        if not self.active:
            return linear_quality
        means, support = neighbour_quality(
            self._memory[: self._size],
            self._outcomes[: self._size, : linear_quality.shape[1]],
            self.vectors(embeddings),
            self.k,
            complete=self._complete,
        )
        share = self.weight * support
        blended: np.ndarray = (1.0 - share) * linear_quality + share * means
        return blended

    def blend_one(self, linear_quality: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """`blend` for one query, in as few numpy calls as a select can afford.

        With every outcome of the memory known (a fitted table's rows) the query is one
        matrix-vector product and one partial sort: it is projected but not scaled to unit
        length, which changes no similarity's rank. Otherwise it is `blend` on a batch of one.

        Args:
            linear_quality: (a,) the linear models' predictions.
            embedding: (d,) the query's embedding.

        Returns:
            (a,) the blended predictions.

        >>> memory = NeighbourQuality(k=1, weight=1.0)
        >>> memory.fit(np.eye(2), np.array([[1.0, 0.0], [0.0, 1.0]]))
        >>> memory.blend_one(np.array([0.5, 0.5]), np.array([0.2, 0.9])).tolist()
        [0.0, 1.0]
        """
        if not self.active:
            return linear_quality
        if not self._complete:
            one: np.ndarray = self.blend(linear_quality[None], embedding[None])[0]
            return one
        m, arms = self._size, linear_quality.shape[0]
        query = np.asarray(embedding, dtype=np.float32)
        if self._projection is not None and self._offset is not None:
            query = query @ self._projection - self._offset
        kk = min(self.k, m)
        outcomes = self._outcomes[:m, :arms]
        if kk < m:
            outcomes = outcomes[np.argpartition(self._memory[:m] @ query, m - kk)[m - kk :]]
        share: float | np.ndarray = self.weight * kk / self.k
        sums = outcomes.sum(axis=0)
        if not self._known[:arms].all():  # a model known for none: the linear model alone
            share = np.where(self._known[:arms], share, 0.0)
            sums = np.where(self._known[:arms], sums, 0.0)
        blended: np.ndarray = (1.0 - share) * linear_quality + (share / kk) * sums
        return blended

    # -- state ---------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Header and arrays (oldest row first; vectors as float16) to save."""
        order = np.roll(np.arange(self._size), -self._next) if self._size else np.arange(0)
        header: dict[str, Any] = {
            "k": self.k,
            "weight": self.weight,
            "k_setting": self.k_setting,
            "weight_setting": self.weight_setting,
            "max_rows": self.max_rows,
        }
        arrays: dict[str, np.ndarray] = {
            "neighbours_memory": self._memory[order].astype(np.float16),
            "neighbours_outcomes": self._outcomes[order].copy(),
        }
        if self.offered:  # absent otherwise: files written before it stay alike
            header["offered"] = True
        if not self.online:
            header["online"] = False
        if self.dims is not None:
            header["dims"] = self.dims
            if self._projection is not None and self._mean is not None:
                arrays.update(neighbours_projection=self._projection, neighbours_mean=self._mean)
        return header, arrays

    @classmethod
    def from_state(
        cls, header: dict[str, Any], arrays: dict[str, np.ndarray], n_arms: int
    ) -> NeighbourQuality:
        """The memory `to_state` wrote; ValueError says what is wrong with it."""
        try:
            dims = header.get("dims")
            made = cls(
                header["k_setting"],
                header["weight_setting"],
                max_rows=int(header["max_rows"]),
                dims=None if dims is None else int(dims),
                online=bool(header.get("online", True)),
            )
            made.offered = bool(header.get("offered", False))
            if "neighbours_projection" in arrays:
                made._use_projection(arrays["neighbours_mean"], arrays["neighbours_projection"])
            made.k, made.weight = int(header["k"]), float(header["weight"])
            memory = np.asarray(arrays["neighbours_memory"], dtype=np.float32)
            outcomes = np.asarray(arrays["neighbours_outcomes"], dtype=np.float32)
        except (KeyError, TypeError, ValueError, ConfigurationError) as e:
            raise ValueError(f"the neighbours' state is incomplete or invalid ({e!r})") from e
        if memory.ndim != 2 or outcomes.shape != (memory.shape[0], n_arms):
            raise ValueError(
                f"the neighbours' arrays {memory.shape} and {outcomes.shape} do not fit {n_arms} models"
            )
        if not np.isfinite(memory).all():
            raise ValueError("the neighbours' memory contains NaN or inf")
        known = outcomes[~np.isnan(outcomes)]
        if known.size and not (np.isfinite(known).all() and known.min() >= 0 and known.max() <= 1):
            raise ValueError("the neighbours' outcomes are not qualities in [0, 1]")
        if memory.shape[0] > made.max_rows:
            raise ValueError(
                f"{memory.shape[0]} rows remembered, more than max_rows {made.max_rows}"
            )
        projection, mean = made._projection, made._mean
        if projection is not None and (
            mean is None
            or projection.ndim != 2
            or mean.shape != (projection.shape[0],)
            or (memory.shape[0] and memory.shape[1] != projection.shape[1])
            or not (np.isfinite(projection).all() and np.isfinite(mean).all())
        ):
            raise ValueError("the neighbours' projection does not fit its memory")
        made._memory, made._outcomes, made._size = memory, outcomes, memory.shape[0]
        made._check_complete()
        made._next = 0  # rows are oldest first: a full memory overwrites row 0 next
        return made
