"""Feature maps and the cross-validated choice among them."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import (
    ClusterFeatures,
    ConfigurationError,
    EmbeddingFeatures,
    ProjectedFeatures,
    Router,
)
from metallm.learning import RandomFeatures
from metallm.learning._features import spherical_kmeans
from metallm.learning._tuning import HARM_TOLERANCE, tune_features


def _unit(n, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_embedding_features_add_a_bias_with_its_own_light_penalty():
    f = EmbeddingFeatures(l2=7.0)
    out = f.transform(np.ones((2, 3)))
    assert out.shape == (2, 4) and (out[:, -1] == 1).all()
    assert f.penalties(3).tolist() == [7.0, 7.0, 7.0, 1.0]


def test_cluster_features_are_soft_memberships_that_sum_to_one():
    X = _unit(300, 8)
    f = ClusterFeatures(clusters=5, temperature=0.1).fit(X)
    out = f.transform(X[:10])
    assert out.shape == (10, 5 + 8 + 1)
    np.testing.assert_allclose(out[:, :5].sum(axis=1), 1.0)
    np.testing.assert_allclose(out[:, 5:13], X[:10])
    with pytest.raises(ConfigurationError, match="needs fit"):
        ClusterFeatures(clusters=5).transform(X)


def test_spherical_kmeans_finds_separated_directions():
    centers = np.eye(4)
    X = np.repeat(centers, 50, axis=0) + np.random.default_rng(1).normal(scale=0.05, size=(200, 4))
    found = spherical_kmeans(X, 4, seed=0)
    assert sorted(np.argmax(found, axis=1).tolist()) == [0, 1, 2, 3]


def test_projected_features_cold_are_orthonormal_and_fitted_are_pca():
    X = _unit(500, 32)
    cold = ProjectedFeatures(dims=8)
    a = cold.transform(X[:3])
    assert a.shape == (3, 9)
    q = cold._affine_map(32)[0][:, :-1]
    np.testing.assert_allclose(q.T @ q, np.eye(8), atol=1e-10)
    np.testing.assert_allclose(a, np.hstack([X[:3] @ q, np.ones((3, 1))]), atol=1e-12)
    np.testing.assert_array_equal(
        ProjectedFeatures(dims=8).transform(X[:3]), a
    )  # seeded: the same projection
    fitted = cold.fit(X)
    z = fitted.transform(X)[:, :-1]
    np.testing.assert_allclose(
        z, (X - fitted.mean) @ fitted.projection, atol=1e-12
    )  # centred, then projected
    np.testing.assert_array_equal(fitted.transform(X)[:, -1], 1.0)  # the bias feature
    variances = z.var(axis=0)
    assert (np.diff(variances) <= 1e-12).all()  # principal components, largest variance first


@pytest.mark.parametrize(
    "features",
    [
        ClusterFeatures(clusters=6),
        ClusterFeatures(clusters=6, dims=4),
        ProjectedFeatures(dims=5),
        EmbeddingFeatures(3.0),
        RandomFeatures(dims=5, random=20),
    ],
)
def test_fitted_feature_maps_survive_save_and_load(tmp_path, features):
    X = _unit(200, 12)
    rng = np.random.default_rng(2)
    router = Router(["a", "b"], embedder=None, features=features).fit(
        X, rng.random((200, 2)), rng.random((200, 2)), tune=False
    )
    loaded = Router.load(router.save(tmp_path / "r.npz"), embedder=None)
    assert type(loaded.features) is type(features)
    np.testing.assert_allclose(
        loaded.predict(X[:5]).quality, router.predict(X[:5]).quality, atol=1e-12
    )


def test_tuning_picks_clusters_when_strengths_follow_topics_and_does_no_harm(caplog):
    # model 0 is right on the first half of 8 topic directions, model 1 on the other half
    topics = _unit(8, 16, seed=3)
    rng = np.random.default_rng(4)
    labels = rng.integers(8, size=600)
    X = topics[labels] + rng.normal(scale=0.15, size=(600, 16))
    Q = np.stack([(labels < 4), (labels >= 4)], axis=1).astype(float)
    C = np.tile([0.001, 0.002], (600, 1))
    tuning = tune_features(X, Q, C, seed=0)
    best_single = Q.mean(axis=0).max()
    chosen = next(s for s in tuning.scores if s.features is tuning.chosen)
    assert chosen.eligible and chosen.quality_at_zero >= best_single - HARM_TOLERANCE
    assert chosen.aiq == max(s.aiq for s in tuning.scores if s.eligible)
    assert tuning.predicted_quality.shape == (600, 2)
    with caplog.at_level("INFO", logger="metallm"):
        router = Router(["a", "b"], embedder=None).fit(X, Q, C)  # tune="auto": 600 rows >= 300
    assert router.tuning_ is not None
    assert router.features is not None and router.features.fitted
    chosen_line = next(r.getMessage() for r in caplog.records if "fit chose" in r.getMessage())
    assert "5-fold cross-validation on 600 rows" in chosen_line and "ClusterFeatures" in chosen_line
    report = router.tuning_.report().splitlines()
    assert len(report) == 1 + 10 and sum(" chosen " in line for line in report) == 1
    assert " chosen " in report[1]  # the best eligible candidate heads the list here


@pytest.mark.parametrize(
    "features",
    [
        ClusterFeatures(clusters=3),
        ClusterFeatures(clusters=3, dims=2),
        ProjectedFeatures(dims=4),
        EmbeddingFeatures(),
        RandomFeatures(dims=4, random=8),
    ],
)
def test_transform_one_equals_a_row_of_transform(features):
    X = _unit(50, 6)
    fitted = features.fit(X)
    for x, row in zip(X[:5], fitted.transform(X[:5]), strict=True):
        np.testing.assert_allclose(fitted.transform_one(x), row, atol=1e-12)
        assert fitted.transform_one(x).shape == (fitted.dimension(6),)


def test_random_features_bend_where_a_linear_model_cannot_and_keep_the_bandit_whole(tmp_path):
    """One model is right inside a ball around the mean prompt, the other outside it: no linear
    function of the embedding tells them apart; random ReLU features of its projection do."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1_500, 6))
    inside = (np.linalg.norm(X, axis=1) < 2.3).astype(float)
    Q = np.stack([inside, 1.0 - inside], axis=1)
    C = np.tile([0.001, 0.002], (1_500, 1))
    train, test = slice(0, 1_200), slice(1_200, None)
    accuracy = {}
    for name, features in (("linear", EmbeddingFeatures()), ("random", RandomFeatures(6, 200))):
        router = Router(["in", "out"], embedder=None, features=features, cost_weight=0.0, seed=0)
        router.fit(X[train], Q[train], C[train], tune=False)
        picked = router.predict(X[test]).quality.argmax(axis=1)
        accuracy[name] = float((picked == (1 - inside[test])).mean())
        if name == "random":  # online: a rank-1 update, widths, exact propensities
            decision = router.select(X[0])  # seeded: unseeded, 1.5% of runs explored here
            assert decision.propensity == pytest.approx(1 - 0.03 / 2)  # the default 3% floor
            assert router.bandit.stats is not None
            router.record(decision.id, quality=1.0, cost=0.001)
            assert router.bandit.stats.dim == 6 + 200 + 1
    assert accuracy["random"] > 0.8 > accuracy["linear"] + 0.1
    with pytest.raises(ConfigurationError, match="fitted first"):
        Router(["a", "b"], embedder=None, features=RandomFeatures()).select(X[0])
    tuning = tune_features(
        X[train], Q[train], C[train], candidates=[EmbeddingFeatures(), RandomFeatures(6, 200)]
    )
    assert isinstance(tuning.chosen, RandomFeatures)  # cross-validation sees the difference


def test_a_projected_cluster_map_keeps_the_memberships_and_shrinks_the_embedding_block():
    X = _unit(300, 12)
    whole = ClusterFeatures(clusters=4).fit(X)
    projected = ClusterFeatures(clusters=4, dims=3).fit(X)
    assert projected.dimension(12) == 4 + 3 + 1 and whole.dimension(12) == 4 + 12 + 1
    np.testing.assert_allclose(projected.transform(X)[:, :4], whole.transform(X)[:, :4])
    pca = ProjectedFeatures(dims=3).fit(X)
    np.testing.assert_allclose(projected.transform(X)[:, 4:], pca.transform(X), atol=1e-12)
    assert list(projected.penalties(12)) == [3.0] * 4 + [30.0] * 3 + [1.0]
    with pytest.raises(ConfigurationError, match="dims"):
        ClusterFeatures(dims=0)
    assert not ClusterFeatures(dims=3).fitted
