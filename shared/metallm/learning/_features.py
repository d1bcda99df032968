"""Feature maps: what the per-arm linear models see of a query embedding.

* `EmbeddingFeatures` — the embedding plus a bias term (the MetaLLM paper's model).
* `ClusterFeatures` — adds soft memberships of the query in ``k`` clusters of past
  prompts (spherical k-means on the training prompts). Each model's weight on a cluster is
  then its accuracy on that kind of prompt, which a single linear function of the embedding
  cannot express when strengths are scattered over topics.

* `PromptLengthFeatures` — wraps any of them and gives the cost models the prompt's
  length, carried as the last element of the query vector (see `with_prompt_length`):
  a model's cost is mostly its price times the prompt's length, which an embedding does not know.

Each map also sets the ridge penalty of each feature block (the prior precision): the bias
is penalised lightly so predictions start at each model's mean quality and cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from metallm.exceptions import ConfigurationError, DimensionMismatchError

__all__ = [
    "BIAS_L2",
    "ClusterFeatures",
    "EmbeddingFeatures",
    "FeatureMap",
    "ProjectedFeatures",
    "PromptLengthFeatures",
    "feature_map_from_state",
    "prompt_length_column",
    "quality_dimension",
    "with_prompt_length",
]

LENGTH_UNIT = 1000.0
"""The prompt-length feature is the length in thousands of characters."""


def prompt_length_column(texts: Any) -> np.ndarray:
    """The prompt-length feature (n, 1) of ``texts``: characters / 1000, the whole text counted."""
    return np.array([[len(t) / LENGTH_UNIT] for t in texts], dtype=np.float64).reshape(-1, 1)


def with_prompt_length(embeddings: np.ndarray, texts: Any) -> np.ndarray:
    """``embeddings`` (n, d) with the prompt-length feature of ``texts`` as column d + 1.

    What a router with `PromptLengthFeatures` reads when given vectors, not text.

    Args:
        embeddings: (n, d).
        texts: The n texts they embed.

    >>> with_prompt_length(np.zeros((1, 2)), ["x" * 500]).tolist()
    [[0.0, 0.0, 0.5]]
    """
    return np.hstack([np.asarray(embeddings, dtype=np.float64), prompt_length_column(texts)])


BIAS_L2 = 1.0


@runtime_checkable
class FeatureMap(Protocol):
    """Turns (n, d) embeddings into (n, m) features, the last column a constant 1.

    (`PromptLengthFeatures` appends a cost-only column after its inner map's bias.)
    """

    name: ClassVar[str]

    @property
    def fitted(self) -> bool:
        """False while the map still needs `fit` (a cold router fits it lazily)."""
        ...

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> FeatureMap:
        """A map fitted on these (training) embeddings; pure maps return themselves.

        Args:
            embeddings: Training embeddings (n, d).
            seed: Seed of any randomness (a projection, k-means).
        """
        ...

    def dimension(self, embedding_dim: int) -> int:
        """Number of features for embeddings of this size.

        Args:
            embedding_dim: The embeddings' size.
        """
        ...

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Features (n, m) of embeddings (n, d).

        Args:
            embeddings: The embeddings.
        """
        ...

    def transform_one(self, embedding: np.ndarray) -> np.ndarray:
        """Features (m,) of one embedding (d,): the routing fast path (a 1-d product is cheaper).

        Args:
            embedding: The embedding.
        """
        ...

    def penalties(self, embedding_dim: int) -> np.ndarray:
        """Ridge penalty of each feature (the diagonal of the prior precision).

        Args:
            embedding_dim: The embeddings' size.
        """
        ...

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Header fields and arrays for the saved state."""
        ...


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class EmbeddingFeatures:
    """``[embedding, 1]`` with penalty ``l2`` on the embedding (the paper's linear model).

    Args:
        l2: The ridge penalty on the embedding.
    """

    l2: float = 1.0
    name: ClassVar[str] = "EmbeddingFeatures"

    def __post_init__(self) -> None:
        _check_positive("l2", self.l2)

    @property
    def fitted(self) -> bool:
        """False while the map still needs `fit`."""
        return True

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> EmbeddingFeatures:
        """A map fitted on these (training) embeddings."""
        return self

    def dimension(self, embedding_dim: int) -> int:
        """Number of features for embeddings of this size."""
        return embedding_dim + 1

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Features (n, m) of embeddings (n, d)."""
        return np.hstack([embeddings, np.ones((embeddings.shape[0], 1))])

    def transform_one(self, embedding: np.ndarray) -> np.ndarray:
        """Features (m,) of one embedding (d,)."""
        return np.append(embedding, 1.0)

    def penalties(self, embedding_dim: int) -> np.ndarray:
        """The ridge penalty of each feature (the prior precision)."""
        return np.concatenate([np.full(embedding_dim, self.l2), [BIAS_L2]])

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Header and arrays to save the map with (see `feature_map_from_state`)."""
        return {"name": self.name, "l2": self.l2}, {}


@dataclass(frozen=True, eq=False)
class ProjectedFeatures:
    """``[projection of the embedding to dims, 1]``: a compact map for fast routing.

    Fitted on training embeddings it is PCA (the top ``dims`` principal directions); cold, it
    is a seeded random orthonormal projection, which keeps distances (Johnson-Lindenstrauss).
    With ``dims=64`` each arm's matrix is 65 x 65 instead of 385 x 385 for MiniLM, so a
    routing decision reads 35x less memory.

    Args:
        dims: The projection's size.
        l2: The ridge penalty on the projection.
        seed: Seed of the cold random projection.
        projection: A projection already fitted (None: random until ``fit``).
        mean: The training embeddings' mean, subtracted first (PCA).
    """

    dims: int = 64
    l2: float = 1.0
    seed: int = 0
    projection: np.ndarray | None = field(default=None, repr=False)
    mean: np.ndarray | None = field(default=None, repr=False)
    _affine: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)
    """The fitted map as ``(W, shift)`` (see `_affine_map`), made once."""
    name: ClassVar[str] = "ProjectedFeatures"

    def __post_init__(self) -> None:
        if self.dims < 1:
            raise ConfigurationError("dims must be at least 1")
        _check_positive("l2", self.l2)
        if self.projection is not None and self.mean is not None:
            object.__setattr__(
                self, "_affine", _affine(self.projection, self.mean @ self.projection)
            )

    @property
    def fitted(self) -> bool:
        """False while the map still needs `fit`."""
        return True  # a cold map projects at random until fit() finds the principal directions

    @property
    def learned(self) -> bool:
        """True once fitted on embeddings (PCA); a cold map projects at random."""
        return self.projection is not None

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> ProjectedFeatures:
        """A map fitted on these (training) embeddings."""
        mean = embeddings.mean(axis=0)
        _, _, vt = np.linalg.svd(embeddings - mean, full_matrices=False)
        dims = min(self.dims, vt.shape[0])
        return ProjectedFeatures(dims, self.l2, self.seed, vt[:dims].T.copy(), mean)

    def _affine_map(self, embedding_dim: int) -> tuple[np.ndarray, np.ndarray]:
        """``(W, shift)`` with ``[(x - mean) P, 1] = x W + shift``: one product and one sum per batch."""
        fitted = self._affine
        if fitted is not None:
            if fitted[0].shape[0] != embedding_dim:
                raise DimensionMismatchError(
                    f"embedding has {embedding_dim} dimensions, the projection {fitted[0].shape[0]}"
                )
            return fitted
        cached = _RANDOM_PROJECTIONS.get((embedding_dim, self.dims, self.seed))
        if cached is None:
            gaussian = np.random.default_rng(self.seed).normal(
                size=(embedding_dim, min(self.dims, embedding_dim))
            )
            q, _ = np.linalg.qr(gaussian)
            cached = _affine(q, np.zeros(q.shape[1]))
            _RANDOM_PROJECTIONS[(embedding_dim, self.dims, self.seed)] = cached
        return cached

    def dimension(self, embedding_dim: int) -> int:
        """Number of features for embeddings of this size."""
        return min(self.dims, embedding_dim) + 1

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Features (n, m) of embeddings (n, d)."""
        weights, shift = self._affine_map(embeddings.shape[-1])
        out: np.ndarray = np.dot(embeddings, weights)
        out += shift
        return out

    def transform_one(self, embedding: np.ndarray) -> np.ndarray:
        """Features (m,) of one embedding (d,)."""
        return self.transform(embedding)  # np.dot and the shift work on one vector alike

    def penalties(self, embedding_dim: int) -> np.ndarray:
        """The ridge penalty of each feature (the prior precision)."""
        return np.concatenate([np.full(min(self.dims, embedding_dim), self.l2), [BIAS_L2]])

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Header and arrays to save the map with (see `feature_map_from_state`)."""
        header = {"name": self.name, "dims": self.dims, "l2": self.l2, "seed": self.seed}
        arrays = (
            {}
            if self.projection is None or self.mean is None
            else {"projection": self.projection, "mean": self.mean}
        )
        return header, arrays


def _affine(projection: np.ndarray, projected_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The projection with a zero column appended for the bias, and the shift ``[-mean P, 1]``."""
    weights = np.zeros((projection.shape[0], projection.shape[1] + 1))
    weights[:, :-1] = projection
    return weights, np.append(-projected_mean, 1.0)


_RANDOM_PROJECTIONS: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}


@dataclass(frozen=True, eq=False)
class RandomFeatures:
    """``[PCA of the embedding, random ReLU features of it, 1]``: a nonlinear model, still ridge.

    The ridge statistics, rank-1 updates, confidence widths, exact propensities, saving and
    store sync all work unchanged: only the features are nonlinear in the embedding. Each of
    the ``random`` features is ``max(0, w . u + b)`` of the standardised projection ``u``
    (``w`` Gaussian, ``b`` uniform in [-1, 1], seeded), so the models can bend where a linear
    one cannot (Rahimi and Recht's random features, with ReLUs). `fit` finds the projection
    (PCA on training embeddings) and draws the random weights; a cold map is not usable.

    Args:
        dims: The projection's size.
        random: How many random ReLU features.
        l2: The ridge penalty on the projection.
        random_l2: The ridge penalty on the random features.
        seed: Seed of the random weights.
        projection: The fitted projection (None: ``fit`` makes it).
        mean: The training embeddings' mean.
        weights: The random weights, already divided by the projection's scale.
        offsets: The random offsets.
    """

    dims: int = 64
    random: int = 192
    l2: float = 1.0
    random_l2: float = 3.0
    seed: int = 0
    projection: np.ndarray | None = field(default=None, repr=False)
    mean: np.ndarray | None = field(default=None, repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    offsets: np.ndarray | None = field(default=None, repr=False)
    name: ClassVar[str] = "RandomFeatures"

    def __post_init__(self) -> None:
        if self.dims < 1 or self.random < 1:
            raise ConfigurationError("dims and random must be at least 1")
        _check_positive("l2", self.l2)
        _check_positive("random_l2", self.random_l2)

    @property
    def fitted(self) -> bool:
        """False until `fit` drew the projection and the random weights."""
        return self.projection is not None and self.weights is not None

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> RandomFeatures:
        """A map fitted on these (training) embeddings: PCA, then the seeded random weights."""
        pca = ProjectedFeatures(self.dims, self.l2).fit(embeddings)
        assert pca.projection is not None and pca.mean is not None
        projected = (embeddings - pca.mean) @ pca.projection
        scale = float(np.sqrt((projected**2).sum(axis=1).mean())) or 1.0
        rng = np.random.default_rng(self.seed)
        weights = rng.normal(size=(projected.shape[1], self.random)) / scale
        offsets = rng.uniform(-1.0, 1.0, size=self.random)
        return RandomFeatures(self.dims, self.random, self.l2, self.random_l2, self.seed,
                              pca.projection, pca.mean, weights, offsets)  # fmt: skip

    def dimension(self, embedding_dim: int) -> int:
        """Number of features for embeddings of this size."""
        dims = self.projection.shape[1] if self.projection is not None else self.dims
        return min(dims, embedding_dim) + self.random + 1

    def _parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.fitted:
            raise ConfigurationError("RandomFeatures must be fitted first: router.fit(...)")
        assert self.projection is not None and self.mean is not None
        assert self.weights is not None and self.offsets is not None
        return self.projection, self.mean, self.weights, self.offsets

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Features (n, m) of embeddings (n, d)."""
        projection, mean, weights, offsets = self._parts()
        if embeddings.shape[-1] != projection.shape[0]:
            raise DimensionMismatchError(
                f"embedding has {embeddings.shape[-1]} dimensions, the projection "
                f"{projection.shape[0]}"
            )
        z = np.dot(embeddings - mean, projection)
        relu = np.maximum(np.dot(z, weights) + offsets, 0.0)
        ones = np.ones((*z.shape[:-1], 1))
        return np.concatenate([z, relu, ones], axis=-1)

    def transform_one(self, embedding: np.ndarray) -> np.ndarray:
        """Features (m,) of one embedding (d,)."""
        return self.transform(embedding)

    def penalties(self, embedding_dim: int) -> np.ndarray:
        """The ridge penalty of each feature (the prior precision)."""
        dims = self.dimension(embedding_dim) - self.random - 1
        return np.concatenate(
            [np.full(dims, self.l2), np.full(self.random, self.random_l2), [BIAS_L2]]
        )

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Header and arrays to save the map with (see `feature_map_from_state`)."""
        header = {"name": self.name, "dims": self.dims, "random": self.random, "l2": self.l2,
                  "random_l2": self.random_l2, "seed": self.seed}  # fmt: skip
        arrays = {}
        if self.fitted:
            projection, mean, weights, offsets = self._parts()
            arrays = {"projection": projection, "mean": mean, "rf_weights": weights,
                      "rf_offsets": offsets}  # fmt: skip
        return header, arrays


@dataclass(frozen=True, eq=False)
class ClusterFeatures:
    """``[soft cluster memberships, embedding (or its projection), 1]``.

    Memberships are a softmax of cosine similarities to ``clusters`` centroids at
    ``temperature``; ``cluster_l2`` and ``embedding_l2`` penalise the two blocks.
    The centroids come from `fit` (spherical k-means on training embeddings). With ``dims``
    the embedding block is its top ``dims`` principal directions (PCA, also from `fit`): the
    per-model matrices shrink from ``(clusters + 385)^2`` to ``(clusters + dims + 1)^2``, which
    keeps a 12-model router's select and record inside their time budgets.

    Args:
        clusters: How many centroids.
        temperature: The softmax's temperature (lower: harder memberships).
        cluster_l2: The ridge penalty on the memberships.
        embedding_l2: The ridge penalty on the embedding.
        centroids: Centroids already fitted (None: ``fit`` makes them).
        dims: Project the embedding block to this many principal directions (None: keep it).
        projection: The fitted projection (with ``dims``).
        mean: The training embeddings' mean (with ``dims``).
    """

    clusters: int = 32
    temperature: float = 0.05
    cluster_l2: float = 3.0
    embedding_l2: float = 30.0
    centroids: np.ndarray | None = field(default=None, repr=False)
    dims: int | None = None
    projection: np.ndarray | None = field(default=None, repr=False)
    mean: np.ndarray | None = field(default=None, repr=False)
    name: ClassVar[str] = "ClusterFeatures"

    def __post_init__(self) -> None:
        if self.clusters < 1:
            raise ConfigurationError("clusters must be at least 1")
        for label in ("temperature", "cluster_l2", "embedding_l2"):
            _check_positive(label, getattr(self, label))
        if self.centroids is not None and self.centroids.shape[0] != self.clusters:
            raise ConfigurationError(
                f"{self.centroids.shape[0]} centroids for {self.clusters} clusters"
            )
        if self.dims is not None and self.dims < 1:
            raise ConfigurationError("dims must be at least 1 (or None: the whole embedding)")

    @property
    def fitted(self) -> bool:
        """False while the map still needs `fit`."""
        return self.centroids is not None and (self.dims is None or self.projection is not None)

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> ClusterFeatures:
        """A map fitted on these (training) embeddings."""
        centroids = spherical_kmeans(embeddings, self.clusters, seed=seed)
        projection = mean = None
        if self.dims is not None:
            pca = ProjectedFeatures(self.dims).fit(embeddings)
            projection, mean = pca.projection, pca.mean
        return ClusterFeatures(self.clusters, self.temperature, self.cluster_l2,
                               self.embedding_l2, centroids, self.dims, projection, mean)  # fmt: skip

    def _block(self, embedding_dim: int) -> int:
        """The embedding block's size."""
        if self.projection is not None:
            return int(self.projection.shape[1])
        return embedding_dim if self.dims is None else min(self.dims, embedding_dim)

    def dimension(self, embedding_dim: int) -> int:
        """Number of features for embeddings of this size."""
        return self.clusters + self._block(embedding_dim) + 1

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Features (n, m) of embeddings (n, d)."""
        if self.centroids is None:
            raise ConfigurationError("ClusterFeatures needs fit() on training embeddings first")
        if embeddings.shape[1] != self.centroids.shape[1]:
            raise DimensionMismatchError(
                f"embedding has {embeddings.shape[1]} dimensions, the clusters {self.centroids.shape[1]}"
            )
        unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        logits = unit @ self.centroids.T / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        member = np.exp(logits)
        member /= member.sum(axis=1, keepdims=True)
        block = embeddings
        if self.dims is not None:
            if self.projection is None or self.mean is None:
                raise ConfigurationError("ClusterFeatures needs fit() on training embeddings first")
            block = np.dot(embeddings - self.mean, self.projection)
        return np.hstack([member, block, np.ones((embeddings.shape[0], 1))])

    def transform_one(self, embedding: np.ndarray) -> np.ndarray:
        """Features (m,) of one embedding (d,)."""
        features: np.ndarray = self.transform(embedding[None])[0]
        return features

    def penalties(self, embedding_dim: int) -> np.ndarray:
        """The ridge penalty of each feature (the prior precision)."""
        return np.concatenate(
            [
                np.full(self.clusters, self.cluster_l2),
                np.full(self._block(embedding_dim), self.embedding_l2),
                [BIAS_L2],
            ]
        )

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Header and arrays to save the map with (see `feature_map_from_state`)."""
        header = {
            "name": self.name,
            "clusters": self.clusters,
            "temperature": self.temperature,
            "cluster_l2": self.cluster_l2,
            "embedding_l2": self.embedding_l2,
        }
        arrays = {} if self.centroids is None else {"centroids": self.centroids}
        if self.dims is not None:  # absent otherwise: files written before it stay alike
            header["dims"] = self.dims
            if self.projection is not None and self.mean is not None:
                arrays.update(projection=self.projection, mean=self.mean)
        return header, arrays


def spherical_kmeans(
    embeddings: np.ndarray, k: int, *, seed: int = 0, iterations: int = 30
) -> np.ndarray:
    """``k`` unit-norm centroids of the directions of ``embeddings`` (k-means++ start)."""
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    n = unit.shape[0]
    if n < k:
        raise ConfigurationError(f"{n} embeddings cannot make {k} clusters")
    rng = np.random.default_rng(seed)
    centroids = [unit[rng.integers(n)]]
    closest = 1.0 - unit @ centroids[0]
    for _ in range(1, k):  # k-means++ on cosine distance
        weights = np.maximum(closest, 0) ** 2
        total = weights.sum()
        pick = rng.integers(n) if total <= 0 else rng.choice(n, p=weights / total)
        centroids.append(unit[pick])
        closest = np.minimum(closest, 1.0 - unit @ unit[pick])
    centers = np.array(centroids)
    for _ in range(iterations):
        labels = np.argmax(unit @ centers.T, axis=1)
        moved = centers.copy()
        for j in range(k):
            members = unit[labels == j]
            if len(members):
                mean = members.sum(axis=0)
                moved[j] = mean / max(np.linalg.norm(mean), 1e-12)
        if np.allclose(moved, centers):
            break
        centers = moved
    return centers


@dataclass(frozen=True)
class PromptLengthFeatures:
    """``[inner features of the embedding, prompt length]``, the length only for the cost model.

    The vector's last element is the prompt's length (thousands of characters; the router
    appends it when it embeds text, vectors given directly must carry it:
    `with_prompt_length`). Each model's cost model reads the inner features and the
    length (penalty ``l2``), so a long prompt is predicted to cost more on a model priced per
    token; its quality model reads the inner features only (`quality_dimension`): the
    length helped cost predictions on both shared tables and hurt quality ones.

    Args:
        inner: The map of the embedding part.
        l2: The ridge penalty on the length.

    >>> fmap = PromptLengthFeatures(EmbeddingFeatures())
    >>> fmap.transform(np.array([[0.6, 0.8, 1.5]])).tolist()
    [[0.6, 0.8, 1.0, 1.5]]
    """

    inner: FeatureMap
    l2: float = 1.0
    name: ClassVar[str] = "PromptLengthFeatures"

    def __post_init__(self) -> None:
        _check_positive("l2", self.l2)
        if isinstance(self.inner, PromptLengthFeatures):
            raise ConfigurationError(
                "PromptLengthFeatures wraps a map of the embedding, not itself"
            )

    @property
    def fitted(self) -> bool:
        """Whether the inner map is fitted."""
        return self.inner.fitted

    @property
    def learned(self) -> bool:
        """Whether the inner map was fitted on data (see `ProjectedFeatures.learned`)."""
        return bool(getattr(self.inner, "learned", True))

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> PromptLengthFeatures:
        """The inner map fitted on the embedding part of these vectors."""
        return PromptLengthFeatures(self.inner.fit(embeddings[:, :-1], seed=seed), self.l2)

    def dimension(self, embedding_dim: int) -> int:
        """Number of features for vectors of this size (the embedding's, and the length)."""
        return self.inner.dimension(embedding_dim - 1) + 1

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Features (n, m): the inner map's (ending with its bias), then the length."""
        return np.hstack([self.inner.transform(embeddings[:, :-1]), embeddings[:, -1:]])

    def transform_one(self, embedding: np.ndarray) -> np.ndarray:
        """Features (m,) of one vector."""
        return np.append(self.inner.transform_one(embedding[:-1]), embedding[-1])

    def penalties(self, embedding_dim: int) -> np.ndarray:
        """The inner map's penalties, then ``l2`` for the length."""
        return np.append(self.inner.penalties(embedding_dim - 1), self.l2)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Header and arrays to save the map with (the inner map's, nested)."""
        header, arrays = self.inner.to_state()
        return {"name": self.name, "l2": self.l2, "inner": header}, arrays


def quality_dimension(features: FeatureMap, embedding_dim: int) -> int:
    """How many leading features the quality model reads (all, except a cost-only length).

    >>> quality_dimension(PromptLengthFeatures(EmbeddingFeatures()), 5)
    5
    """
    full = features.dimension(embedding_dim)
    return full - 1 if reads_prompt_length(features) else full


def reads_prompt_length(features: FeatureMap) -> bool:
    """Whether vectors for ``features`` carry the prompt's length as their last element.

    Args:
        features: A feature map.
    """
    return isinstance(features, PromptLengthFeatures)


def feature_map_from_state(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> FeatureMap:
    """Rebuild a feature map from `FeatureMap.to_state` output."""
    params = dict(header)
    name = params.pop("name", None)
    if name == PromptLengthFeatures.name:
        inner = params.pop("inner", None)
        if not isinstance(inner, dict):
            raise ConfigurationError("PromptLengthFeatures state has no inner map")
        return PromptLengthFeatures(feature_map_from_state(inner, arrays), **params)
    if name == EmbeddingFeatures.name:
        return EmbeddingFeatures(**params)
    if name == ClusterFeatures.name:
        return ClusterFeatures(
            **params,
            centroids=arrays.get("centroids"),
            projection=arrays.get("projection") if params.get("dims") is not None else None,
            mean=arrays.get("mean") if params.get("dims") is not None else None,
        )
    if name == ProjectedFeatures.name:
        return ProjectedFeatures(
            **params, projection=arrays.get("projection"), mean=arrays.get("mean")
        )
    if name == RandomFeatures.name:
        return RandomFeatures(**params, projection=arrays.get("projection"),
                              mean=arrays.get("mean"), weights=arrays.get("rf_weights"),
                              offsets=arrays.get("rf_offsets"))  # fmt: skip
    raise ConfigurationError(f"unknown feature map {name!r}")


def reading_prompt_length(features: FeatureMap) -> FeatureMap:
    """``features`` made to read the prompt's length too (unchanged when it already does).

    Args:
        features: A feature map.
    """
    return features if reads_prompt_length(features) else PromptLengthFeatures(features)
