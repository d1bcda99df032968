"""What a fit serves: `choose_capacity` from a routing table's rows alone."""

from __future__ import annotations

import numpy as np

from metallm.learning import ClusterFeatures, EmbeddingFeatures, NeighbourQuality, ProjectedFeatures
from metallm.learning._capacity import choose_capacity
from metallm.learning._tuning import is_linear


def _sectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which of two models is right alternates over 8 directions: local structure."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    good = (np.floor(np.arctan2(X[:, 1], X[:, 0]) / (np.pi / 4)) % 2 == 0).astype(float)
    return X, np.stack([good, 1 - good], axis=1), np.tile([0.001, 0.002], (n, 1))


def test_an_untuned_fit_serves_the_map_in_use_fitted_and_no_blend() -> None:
    X, Q, C = _sectors(300, seed=0)
    capacity = choose_capacity(X, X, Q, C, features=ProjectedFeatures(2), tune=False)
    assert isinstance(capacity.features, ProjectedFeatures) and capacity.features.fitted
    assert capacity.neighbours is None and capacity.tuning is None
    assert capacity.blend_choice is None


def test_the_callers_blend_is_served_over_the_chosen_map_with_k_and_weight_chosen() -> None:
    X, Q, C = _sectors(600, seed=1)
    own = NeighbourQuality()  # k and weight unset: chosen on the folds
    capacity = choose_capacity(
        X, X, Q, C, features=EmbeddingFeatures(), tune=True, neighbours=own,
        candidates=[ClusterFeatures(16, dims=None), EmbeddingFeatures()],
    )  # fmt: skip
    assert capacity.neighbours is own and len(own) == 600
    choice = capacity.blend_choice
    assert choice is not None and (own.k, own.weight) == (choice.k, choice.weight)
    assert capacity.tuning is not None and capacity.tuning.predictions == ()


def test_an_offered_blend_is_weighed_on_a_fresh_copy_and_served_only_over_a_linear_map() -> None:
    X, Q, C = _sectors(900, seed=2)
    offered = NeighbourQuality(max_rows=2_000, dims=3, online=False)
    capacity = choose_capacity(
        X, X, Q, C, features=EmbeddingFeatures(), tune=True, blend=offered,
        candidates=[EmbeddingFeatures(), ClusterFeatures(2, dims=None)],
    )  # fmt: skip
    assert len(offered) == 0  # the template is not filled; a fresh copy is
    served, choice = capacity.neighbours, capacity.blend_choice
    assert served is not None and served is not offered and served.offered and len(served) == 900
    assert choice is not None and choice.kept and is_linear(capacity.features)
    assert capacity.features.fitted
    # offered beside a caller's memory, the offer wins and the caller's is not served
    mine = NeighbourQuality(k=5, weight=1.0)
    again = choose_capacity(
        X, X, Q, C, features=EmbeddingFeatures(), tune=True, blend=offered, neighbours=mine,
        candidates=[EmbeddingFeatures(), ClusterFeatures(2, dims=None)],
    )  # fmt: skip
    assert again.neighbours is not mine and len(mine) == 0
