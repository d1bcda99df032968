"""The Router: selection, online updates, offline fitting, calibration and bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from metallm import ConfigurationError, EpsilonGreedy, LinUCB, Router
from metallm.exceptions import (
    DimensionMismatchError,
    DuplicateFeedbackError,
    EmptyQueryError,
    InfeasibleBudgetError,
    InvalidFeedbackError,
    InvalidInputError,
    UnknownArmError,
    UnknownDecisionError,
)
from metallm.learning._features import EmbeddingFeatures, ProjectedFeatures

ARMS = ["cheap", "mid", "premium"]


def _data(n=200, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Q = rng.random((n, 3))
    C = rng.random((n, 3)) * np.array([0.001, 0.01, 0.1])
    return X, Q, C


def _ridge(X, y, l2, bias_l2=1.0):
    """Closed-form ridge on [X, 1]: penalty l2 on X, bias_l2 on the bias."""
    F = np.hstack([X, np.ones((len(X), 1))])
    penalties = np.concatenate([np.full(X.shape[1], l2), [bias_l2]])
    return np.linalg.solve(F.T @ F + np.diag(penalties), F.T @ y)


def test_a_cold_router_selects_without_raising():
    router = Router(ARMS, embedder=None, seed=0)
    decision = router.select(np.ones(4))
    assert decision.arm in ARMS
    # no data: equal predictions, so every arm has the same score (the prior bonus)
    assert len(set(decision.scores.values())) == 1
    # alpha * sqrt(x^T A^-1 x) with A = l2 I (l2 = bias penalty = 1); the default projection
    # of a 4-d embedding is a rotation, which keeps the norm: 1.0 * ||[1,1,1,1,1]||
    assert decision.bonus["cheap"] == pytest.approx(np.sqrt(5.0))


def test_cold_ties_are_broken_at_random():
    router = Router(ARMS, embedder=None, seed=1)
    picks = {router.select(np.ones(3)).arm for _ in range(60)}
    assert picks == set(ARMS)


def test_fit_equals_regularised_least_squares():
    X, Q, C = _data()
    router = Router(
        ARMS, embedder=None, policy=LinUCB(l2=2.5), features=EmbeddingFeatures(2.5)
    ).fit(X, Q, C, tune=False)
    prediction = router.predict(X[:5])
    F = np.hstack([X[:5], np.ones((5, 1))])
    for k in range(3):
        np.testing.assert_allclose(
            prediction.quality[:, k], F @ _ridge(X, Q[:, k], 2.5), atol=1e-10
        )
        np.testing.assert_allclose(prediction.cost[:, k], F @ _ridge(X, C[:, k], 2.5), atol=1e-12)


def test_online_records_equal_the_batch_fit():
    X, Q, C = _data(n=60)
    # the same feature map for both (fit() would fit a cold projection's PCA on X)
    online = Router(ARMS, embedder=None, features=EmbeddingFeatures())
    for i in range(len(X)):
        for k, arm in enumerate(ARMS):
            d = online.select(X[i], force=arm)
            online.record(d.id, quality=Q[i, k], cost=C[i, k])
    batch = Router(ARMS, embedder=None, features=EmbeddingFeatures()).fit(X, Q, C)
    a, b = online.predict(X[:7]), batch.predict(X[:7])
    np.testing.assert_allclose(a.quality, b.quality, atol=1e-9)
    np.testing.assert_allclose(a.width, b.width, atol=1e-9)
    assert online.counts == {arm: 60 for arm in ARMS}


def test_record_updates_only_the_chosen_arm():
    router = Router(ARMS, embedder=None)
    before = router.predict(np.ones((1, 4)))
    d = router.select(np.ones(4), force="mid")
    router.record(d.id, quality=1.0, cost=0.01)
    after = router.predict(np.ones((1, 4)))
    changed = ~np.isclose(before.quality, after.quality)
    assert changed.tolist() == [[False, True, False]]
    assert router.counts == {"cheap": 0, "mid": 1, "premium": 0}


def test_partial_fit_equals_per_arm_ridge():
    X, Q, C = _data(n=90)
    arms = [ARMS[i % 3] for i in range(90)]
    router = Router(ARMS, embedder=None).partial_fit(
        X, arms, Q[np.arange(90), np.arange(90) % 3], C[np.arange(90), np.arange(90) % 3]
    )
    rows = np.arange(90) % 3 == 1
    F = np.hstack([X[:3], np.ones((3, 1))])
    expected = F @ _ridge(X[rows], Q[rows, 1], 1.0)
    np.testing.assert_allclose(router.predict(X[:3]).quality[:, 1], expected, atol=1e-10)
    # a second small call (rank-1 path) keeps adding up
    router.partial_fit(X[:2], ["mid", "mid"], [1.0, 0.0], [0.0, 0.0])
    assert router.counts["mid"] == 32


def test_the_router_learns_which_arm_is_best_by_region():
    rng = np.random.default_rng(3)
    router = Router(
        ["left", "right"], embedder=None, policy=LinUCB(alpha=0.3), cost_weight=0.0, seed=0
    )
    for _ in range(400):
        x = rng.normal(size=2)
        d = router.select(x)
        right_is_good = x[0] > 0
        router.record(d.id, quality=float((d.arm == "right") == right_is_good), cost=0.0)
    assert router.select(np.array([2.0, 0.0])).arm == "right"
    assert router.select(np.array([-2.0, 0.0])).arm == "left"


def test_cost_weight_trades_quality_for_cost():
    X, _, _ = _data(n=100)
    Q = np.tile([0.80, 0.85, 0.90], (100, 1))
    C = np.tile([0.001, 0.01, 0.1], (100, 1))
    router = Router(ARMS, embedder=None, policy=LinUCB(alpha=0.0), cost_weight=0.0).fit(X, Q, C)
    assert router.cost_scale == pytest.approx(0.1)
    assert router.select(X[0]).arm == "premium"
    router.cost_weight = 1.0  # one premium bill is worth a full point of quality
    assert router.select(X[0]).arm == "cheap"


def test_calibrate_picks_the_best_p_within_the_budget():
    X, _, _ = _data(n=300)
    rng = np.random.default_rng(0)
    # premium is right more often, and much pricier
    Q = (rng.random((300, 3)) < np.array([0.6, 0.7, 0.9])).astype(float)
    C = np.tile([0.001, 0.01, 0.1], (300, 1))
    router = Router(ARMS, embedder=None, policy=LinUCB(alpha=0.0)).fit(X[:200], Q[:200], C[:200])
    p = router.calibrate(0.02, X[200:], Q[200:], C[200:])
    assert router.cost_weight == p > 0
    chosen = [ARMS.index(router.select(x).arm) for x in X[200:]]
    assert C[200 + np.arange(100), chosen].mean() <= 0.02
    generous = router.calibrate(1.0, X[200:], Q[200:], C[200:])
    assert generous < p
    with pytest.raises(InfeasibleBudgetError, match="cheapest routing found costs"):
        router.calibrate(0.0001, X[200:], Q[200:], C[200:])


def test_pending_decisions_are_bounded_and_evictions_counted():
    router = Router(ARMS, embedder=None, max_pending=3)
    ids = [router.select(np.ones(2)).id for _ in range(5)]
    assert router.pending_decisions == 3
    assert router.evicted_decisions == 2
    with pytest.raises(UnknownDecisionError, match="evicted"):
        router.record(ids[0], quality=1.0, cost=0.0)
    router.record(ids[-1], quality=1.0, cost=0.0)


def test_unknown_and_repeated_ids_are_clear_errors():
    router = Router(ARMS, embedder=None)
    with pytest.raises(UnknownDecisionError, match="unknown decision id 'nope'"):
        router.record("nope", quality=1.0, cost=0.0)
    d = router.select(np.ones(2))
    router.record(d.id, quality=0.5, cost=0.0)
    with pytest.raises(DuplicateFeedbackError, match="already recorded"):
        router.record(d.id, quality=0.5, cost=0.0)


@pytest.mark.parametrize(
    ("quality", "cost", "message"),
    [
        (float("nan"), 0.0, "quality must be a number in \\[0, 1\\]"),
        (1.5, 0.0, "quality must be a number in \\[0, 1\\]"),
        (-0.1, 0.0, "quality"),
        ("good", 0.0, "quality"),
        (0.5, -1.0, "cost must be a finite number of USD in \\[0, 10000\\]"),
        (0.5, float("inf"), "cost"),
    ],
)
def test_bad_feedback_is_rejected_and_nothing_is_lost(quality, cost, message):
    router = Router(ARMS, embedder=None)
    d = router.select(np.ones(2))
    with pytest.raises(InvalidFeedbackError, match=message):
        router.record(d.id, quality=quality, cost=cost)
    assert router.n_updates == 0
    router.record(d.id, quality=1.0, cost=0.0)  # the decision is still there
    assert router.n_updates == 1


def test_cost_can_come_from_observe_cost():
    router = Router(ARMS, embedder=None)
    d = router.select(np.ones(2))
    with pytest.raises(InvalidFeedbackError, match="no cost known"):
        router.record(d.id, quality=1.0)
    router.observe_cost(d.id, 0.25)
    router.record(d.id, quality=1.0)
    assert router.cost_scale == pytest.approx(0.25)


def test_bad_queries_and_configuration_are_typed_errors():
    with pytest.raises(ConfigurationError, match="empty"):
        Router([], embedder=None)
    with pytest.raises(ConfigurationError, match="duplicate model names: \\['a'\\]"):
        Router(["a", "a"], embedder=None)
    with pytest.raises(ConfigurationError, match="cost_weight"):
        Router(["a"], embedder=None, cost_weight=float("nan"))
    with pytest.raises(ConfigurationError, match="alpha"):
        LinUCB(alpha=-1)
    with pytest.raises(ConfigurationError, match="epsilon"):
        EpsilonGreedy(epsilon=2)
    router = Router(ARMS, embedder=None)
    router.select(np.ones(4))
    with pytest.raises(
        DimensionMismatchError, match="has 3 dimensions but the router was built on 4"
    ):
        router.select(np.ones(3))
    with pytest.raises(InvalidInputError, match="NaN"):
        router.select(np.array([1.0, np.nan, 0, 0]))
    with pytest.raises(UnknownArmError, match="unknown model 'gpt-9'"):
        router.select(np.ones(4), force="gpt-9")
    with pytest.raises(UnknownArmError):
        router.select(np.ones(4), exclude=["gpt-9"])
    with pytest.raises(InvalidInputError, match="every model is excluded"):
        router.select(np.ones(4), exclude=ARMS)
    with pytest.raises(ConfigurationError, match="no embedder"):
        router.select("some text")
    with pytest.raises(InvalidFeedbackError, match="shape \\(2, 3\\)"):
        router.fit(np.ones((2, 4)), np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(
        InvalidFeedbackError, match="quality must be in \\[0, 1\\]; found 2.0 at \\(1, 0\\)"
    ):
        router.fit(np.ones((2, 4)), [[1, 1, 1], [2, 1, 1]], np.ones((2, 3)))


def test_empty_text_is_rejected(embedder):
    router = Router(ARMS, embedder=embedder)
    with pytest.raises(EmptyQueryError):
        router.select("   ")
    with pytest.raises(EmptyQueryError):
        router.select_batch(["ok", ""])


def test_exclude_skips_arms():
    router = Router(ARMS, embedder=None, seed=0)
    assert {router.select(np.ones(2), exclude=["cheap", "mid"]).arm for _ in range(10)} == {
        "premium"
    }


def test_select_batch_matches_select():
    X, Q, C = _data(n=50)
    router = Router(ARMS, embedder=None, policy=LinUCB(alpha=0.7)).fit(X, Q, C)
    batch = router.select_batch(X[:10])
    for x, decision in zip(X[:10], batch, strict=False):
        single = router.select(x)
        assert single.arm == decision.arm
        for arm in ARMS:
            # the exploration width is computed in float32 by both paths (~1e-7 relative)
            assert single.scores[arm] == pytest.approx(decision.scores[arm], rel=1e-6)


def test_epsilon_greedy_explores():
    X, Q, C = _data(n=50)
    Q[:, 2] = 1.0
    router = Router(
        ARMS, embedder=None, policy=EpsilonGreedy(epsilon=0.5), cost_weight=0, seed=0
    ).fit(X, Q, C)
    arms = [d.arm for d in router.select_batch(np.repeat(X[:1], 400, axis=0))]
    assert 0.6 < arms.count("premium") / 400 < 0.9
    assert {"cheap", "mid"} <= set(arms)


def test_concurrent_records_lose_nothing():
    X, Q, C = _data(n=400)
    router = Router(ARMS, embedder=None)
    decisions = [router.select(x, force=ARMS[i % 3]) for i, x in enumerate(X)]

    def work(part):
        for i in part:
            router.record(decisions[i].id, quality=Q[i, i % 3], cost=C[i, i % 3])

    threads = [threading.Thread(target=work, args=(range(j, 400, 4),)) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sequential = Router(ARMS, embedder=None)
    for i, d in enumerate(decisions):
        s = sequential.select(X[i], force=d.arm)
        sequential.record(s.id, quality=Q[i, i % 3], cost=C[i, i % 3])
    np.testing.assert_allclose(
        router.predict(X[:5]).quality, sequential.predict(X[:5]).quality, atol=1e-9
    )
    assert router.n_updates == 400


def test_same_seed_same_decisions():
    a = [Router(ARMS, embedder=None, seed=5).select(np.ones(2)).arm for _ in range(5)]
    b = [Router(ARMS, embedder=None, seed=5).select(np.ones(2)).arm for _ in range(5)]
    assert a == b


@pytest.mark.parametrize("features", [ProjectedFeatures(2), EmbeddingFeatures()])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_embedding_is_refused_and_nothing_is_left_pending(features, bad):
    router = Router(ARMS, embedder=None, features=features)
    router.select(np.ones(4))
    with pytest.raises(InvalidInputError, match="NaN or inf"):
        router.select(np.array([1.0, bad, 0, 0]))
    with pytest.raises(InvalidInputError, match="NaN or inf"):
        router.select_batch(np.array([[1.0, 0, 0, 0], [1.0, bad, 0, 0]]))
    assert router.pending_decisions == 1


def test_decisions_keep_their_own_read_only_copy_of_the_embedding():
    router = Router(ARMS, embedder=None, seed=0)
    x = np.array([0.5, -0.5, 1.0, 2.0])
    X = np.tile(x, (3, 1))
    single, batch = router.select(x), router.select_batch(X)
    x[:] = 9.0  # the caller reuses its arrays
    X[:] = 9.0
    for decision in [single, *batch]:
        np.testing.assert_array_equal(decision.embedding, [0.5, -0.5, 1.0, 2.0])
        assert not decision.embedding.flags.writeable
    # what is learned is the embedding that was routed, not the caller's new values
    router.record(single.id, quality=1.0, cost=0.01)
    untouched = Router(ARMS, embedder=None, seed=0)
    untouched.record(
        untouched.select(np.array([0.5, -0.5, 1.0, 2.0]), force=single.arm).id,
        quality=1.0,
        cost=0.01,
    )
    probe = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_array_equal(router.predict(probe).quality, untouched.predict(probe).quality)


def test_decision_values_are_read_only_mappings_and_the_width_is_the_exact_one():
    X, Q, C = _data(n=50)
    router = Router(ARMS, embedder=None, policy=LinUCB(alpha=0.7)).fit(X, Q, C)
    decision, exact = router.select(X[0]), router.predict(X[:1])
    assert dict(decision.bonus) == pytest.approx(
        {a: 0.7 * w for a, w in zip(ARMS, exact.width[0])}, rel=1e-6
    )
    assert set(decision.scores) == set(ARMS) and len(decision.scores) == len(ARMS)
    with pytest.raises(TypeError):
        decision.scores["cheap"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        decision.arm = "premium"  # type: ignore[misc]
    assert decision.arm in repr(decision) and decision.id in repr(decision)


def test_fit_chooses_among_the_feature_maps_it_is_given():
    X, Q, C = _data(n=120)
    router = Router(ARMS, embedder=None).fit(
        X, Q, C, tune=[ProjectedFeatures(4), EmbeddingFeatures(3.0)]
    )
    assert router.tuning_ is not None
    assert [type(s.features) for s in router.tuning_.scores] == [
        ProjectedFeatures,
        EmbeddingFeatures,
    ]
    alone = Router(ARMS, embedder=None).fit(X, Q, C, tune=[ProjectedFeatures(4)])
    assert (
        isinstance(alone.features, ProjectedFeatures) and alone.features.projection is not None
    )  # fitted: PCA
    with pytest.raises(ConfigurationError, match="no candidate"):
        Router(ARMS, embedder=None).fit(X, Q, C, tune=[])
    with pytest.raises(ConfigurationError, match='tune must be "auto"'):
        Router(ARMS, embedder=None).fit(X, Q, C, tune="always")


def test_a_single_string_for_the_pool_is_a_clear_error():
    with pytest.raises(ConfigurationError, match=r"a list of names, got the string 'mini'"):
        Router("mini", embedder=None)
