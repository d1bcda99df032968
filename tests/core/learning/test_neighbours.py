"""The neighbours' second opinion on quality: memory, blend, cross-validation, state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metallm import (
    ClusterFeatures,
    ConfigurationError,
    EmbeddingFeatures,
    NeighbourQuality,
    Router,
    SQLiteStore,
)
from metallm.exceptions import StateFileError
from metallm.learning._neighbours import neighbour_quality, unit_rows


def _unit(X: np.ndarray) -> np.ndarray:
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def test_neighbour_quality_matches_brute_force_with_unknown_outcomes() -> None:
    rng = np.random.default_rng(0)
    memory, queries = _unit(rng.normal(size=(300, 8))), _unit(rng.normal(size=(20, 8)))
    outcomes = rng.random((300, 3)).astype(np.float32)
    outcomes[rng.random((300, 3)) < 0.5] = np.nan
    outcomes[:, 2] = np.nan  # a model with nothing remembered
    outcomes[:250, 1] = np.nan  # one with fewer outcomes than k = 60
    means, support = neighbour_quality(memory, outcomes, queries, k=60)
    for i, q in enumerate(queries):
        for arm in range(2):
            rows = np.flatnonzero(~np.isnan(outcomes[:, arm]))
            nearest = rows[np.argsort(-(memory[rows] @ q))[: min(60, len(rows))]]
            assert means[i, arm] == pytest.approx(outcomes[nearest, arm].mean(), abs=1e-5)
            assert support[i, arm] == pytest.approx(min(60, len(rows)) / 60)
    assert (means[:, 2] == 0).all() and (support[:, 2] == 0).all()


def test_the_blend_leans_on_the_linear_model_where_little_is_remembered() -> None:
    memory = NeighbourQuality(k=4, weight=0.5)
    memory.add(np.eye(2), np.array([0, 0]), np.array([1.0, 1.0]), n_arms=2)
    linear = np.array([[0.2, 0.2]])
    blended = memory.blend(linear, np.array([[1.0, 0.0]]))
    # arm 0: 2 of k = 4 remembered, so w * s = 0.25; arm 1: nothing remembered
    np.testing.assert_allclose(blended, [[0.75 * 0.2 + 0.25 * 1.0, 0.2]], rtol=1e-6)
    memory.add_arms(1)
    assert memory.blend(np.zeros((1, 3)), np.array([[1.0, 0.0]]))[0, 2] == 0.0


def test_the_memory_drops_the_oldest_and_survives_its_state() -> None:
    memory = NeighbourQuality(k=1, weight=1.0, max_rows=3)
    for i in range(5):  # prompts 0..4 on one axis, quality = i / 4
        memory.add(np.array([[1.0, 0.01 * i]]), np.array([0]), np.array([i / 4]), n_arms=1)
    assert len(memory) == 3
    header, arrays = memory.to_state()
    np.testing.assert_allclose(arrays["neighbours_outcomes"][:, 0], [0.5, 0.75, 1.0])
    restored = NeighbourQuality.from_state(header, arrays, n_arms=1)
    probe = np.array([[1.0, 0.0]])  # nearest to prompt 0, dropped: prompt 2 is the nearest left
    assert memory.blend(np.zeros((1, 1)), probe)[0, 0] == pytest.approx(0.5)
    assert restored.blend(np.zeros((1, 1)), probe)[0, 0] == pytest.approx(0.5)
    for kept in (memory, restored):  # the next prompt replaces the oldest kept (prompt 2)
        kept.add(np.array([[0.0, 1.0]]), np.array([0]), np.array([0.0]), n_arms=1)
        assert kept.blend(np.zeros((1, 1)), probe)[0, 0] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k must"),
        ({"k": 2.5}, "k must"),
        ({"weight": 1.5}, "weight must"),
        ({"weight": float("nan")}, "weight must"),
        ({"max_rows": 0}, "max_rows"),
    ],
)
def test_bad_settings_are_configuration_errors(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        NeighbourQuality(**kwargs)  # type: ignore[arg-type]


def test_a_router_refuses_neighbours_of_the_wrong_type() -> None:
    with pytest.raises(ConfigurationError, match="NeighbourQuality"):
        Router(["a", "b"], embedder=None, neighbours="knn")  # type: ignore[arg-type]


def _sectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quality no linear model can fit: which model is right alternates over 8 directions."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    angle = np.arctan2(X[:, 1], X[:, 0])
    good = (np.floor(angle / (np.pi / 4)) % 2 == 0).astype(float)
    Q = np.stack([good, 1 - good, np.full(n, 0.4)], axis=1)
    C = np.tile([0.001, 0.001, 0.0005], (n, 1))
    return X, Q, C


def test_cross_validation_blends_where_neighbours_know_more_and_it_routes_better() -> None:
    X, Q, C = _sectors(1500, seed=0)
    Xt, Qt, _ = _sectors(500, seed=1)
    linear = [EmbeddingFeatures(1.0)]  # the linear map alone: what the blend adds is seen
    plain = Router(["a", "b", "c"], embedder=None, seed=0, blend=None).fit(X, Q, C, tune=linear)
    blended = Router(["a", "b", "c"], embedder=None, seed=0, neighbours=NeighbourQuality()).fit(
        X, Q, C, tune=linear
    )
    choice = blended.bandit.neighbour_tuning_
    assert choice is not None and choice.weight > 0
    assert (
        blended.bandit.neighbours is not None and blended.bandit.neighbours.weight == choice.weight
    )
    rows = np.arange(len(Xt))

    def quality_at_zero(router: Router) -> float:
        chosen = np.argmax(router.predict(Xt, widths=False).quality, axis=1)
        return float(Qt[rows, chosen].mean())

    assert quality_at_zero(blended) > quality_at_zero(plain) + 0.05


def test_a_tuned_fit_keeps_the_offered_blend_only_where_cross_validation_gives_it_a_say(
    tmp_path,
) -> None:
    X, Q, C = _sectors(1500, seed=0)
    Xt, Qt, _ = _sectors(500, seed=1)
    linear = [EmbeddingFeatures(1.0)]
    local = Router(["a", "b", "c"], embedder=None, seed=0, blend="default").fit(
        X, Q, C, tune=linear
    )
    kept = local.bandit.neighbours
    assert kept is not None and kept.offered and kept.weight > 0  # the sectors need neighbours
    assert kept.dims == 64 and kept.max_rows == 2_000 and len(kept) == 1_500 and not kept.online
    plain = Router(["a", "b", "c"], embedder=None, seed=0, blend=None).fit(X, Q, C, tune=linear)
    assert plain.bandit.neighbours is None and plain.bandit.neighbour_tuning_ is None
    rows = np.arange(len(Xt))
    got = [
        float(Qt[rows, np.argmax(r.predict(Xt, widths=False).quality, axis=1)].mean())
        for r in (local, plain)
    ]
    assert got[0] > got[1] + 0.05
    saved = Router.load(local.save(tmp_path / "blend.npz"), embedder=None)
    assert saved.bandit.neighbours is not None and saved.bandit.neighbours.offered
    # the memory is saved as float16: near-ties among neighbours may reorder, nothing more
    after, before = saved.predict(Xt).quality, local.predict(Xt).quality
    assert np.abs(after - before).mean() < 0.01
    assert (after.argmax(axis=1) == before.argmax(axis=1)).mean() > 0.97
    # a linear world (each answer right with a probability linear in the vector): the linear
    # model is right, the neighbours only add noise; cross-validation gives the blend no weight
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(1500, 3))
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    p_a = 0.5 + 0.45 * Y[:, 0]
    smooth = np.stack([rng.random(1500) < p_a, rng.random(1500) < 1 - p_a], axis=1).astype(float)
    smooth_router = Router(["a", "b"], embedder=None, seed=0, blend="default").fit(
        Y, smooth, np.tile([0.001, 0.002], (1500, 1)), tune=linear
    )
    choice = smooth_router.bandit.neighbour_tuning_
    assert choice is not None and choice.weight == 0.0  # weighed, and left out
    assert smooth_router.bandit.neighbours is None


def test_fixed_settings_skip_cross_validation() -> None:
    X, Q, C = _sectors(400, seed=0)
    router = Router(
        ["a", "b", "c"], embedder=None, neighbours=NeighbourQuality(k=7, weight=0.3)
    ).fit(X, Q, C, tune=True)
    assert router.bandit.neighbour_tuning_ is None
    assert router.bandit.neighbours is not None
    assert (router.bandit.neighbours.k, router.bandit.neighbours.weight) == (7, 0.3)
    assert len(router.bandit.neighbours) == 400


def test_online_feedback_reaches_the_memory_and_a_saved_router_keeps_it(tmp_path: Path) -> None:
    router = Router(["a", "b"], embedder=None, seed=0, neighbours=NeighbourQuality(k=1, weight=1.0))
    for x, arm, q in [([1.0, 0.0], "a", 1.0), ([1.0, 0.0], "b", 0.0), ([0.0, 1.0], "a", 0.0)]:
        decision = router.select(np.array(x), force=arm)
        router.record(decision.id, quality=q, cost=0.001)
    assert router.bandit.neighbours is not None and len(router.bandit.neighbours) == 3
    probe = np.array([[0.9, 0.1]])
    before = router.predict(probe, widths=False).quality
    assert before[0, 0] == pytest.approx(1.0) and before[0, 1] == pytest.approx(0.0)
    restored = Router.load(router.save(tmp_path / "r.npz"), embedder=None)
    np.testing.assert_allclose(restored.predict(probe, widths=False).quality, before, atol=1e-3)
    decision = restored.select(np.array([0.0, 1.0]), force="b")  # learns after the restore too
    restored.record(decision.id, quality=1.0, cost=0.001)
    assert restored.bandit.neighbours is not None and len(restored.bandit.neighbours) == 4


def test_a_tampered_memory_is_a_state_file_error(tmp_path: Path) -> None:
    router = Router(["a", "b"], embedder=None, neighbours=NeighbourQuality(k=1, weight=1.0))
    router.partial_fit([[1.0, 0.0]], ["a"], quality=[1.0], cost=[0.001])
    path = router.save(tmp_path / "r.npz")
    with np.load(path) as saved:
        arrays = dict(saved)
    arrays["neighbours_outcomes"] = np.full_like(arrays["neighbours_outcomes"], 7.0)
    np.savez(path, **arrays)
    with pytest.raises(StateFileError, match="neighbours|checksum"):
        Router.load(path, embedder=None)


def test_routers_sharing_a_store_remember_the_same_outcomes(tmp_path: Path) -> None:
    def make() -> Router:
        return Router(
            ["a", "b"],
            embedder=None,
            store=SQLiteStore(tmp_path / "shared.sqlite"),
            sync_interval=None,
            neighbours=NeighbourQuality(k=2, weight=1.0),
        )

    first, second = make(), make()
    rng = np.random.default_rng(0)
    for i in range(20):
        x = rng.normal(size=4)
        decision = first.select(x, force="a" if i % 2 else "b")
        first.record(decision.id, quality=float(i % 3 == 0), cost=0.001)
    second.sync()
    probe = rng.normal(size=(5, 4))
    assert second.bandit.neighbours is not None and len(second.bandit.neighbours) == 20
    np.testing.assert_allclose(
        second.predict(probe, widths=False).quality,
        first.predict(probe, widths=False).quality,
        atol=1e-6,
    )


def test_a_model_that_knows_few_of_the_nearest_prompts_is_still_exact() -> None:
    rng = np.random.default_rng(1)
    memory, queries = _unit(rng.normal(size=(2000, 8))), _unit(rng.normal(size=(30, 8)))
    outcomes = rng.random((2000, 2)).astype(np.float32)
    outcomes[rng.random(2000) < 0.97, 1] = np.nan  # about 60 known: few among any shortlist
    means, _ = neighbour_quality(memory, outcomes, queries, k=10)
    for i, q in enumerate(queries):
        for arm in range(2):
            rows = np.flatnonzero(~np.isnan(outcomes[:, arm]))
            nearest = rows[np.argsort(-(memory[rows] @ q))[:10]]
            assert means[i, arm] == pytest.approx(outcomes[nearest, arm].mean(), abs=1e-5)


def test_a_capped_memory_of_a_table_grouped_by_source_keeps_every_source() -> None:
    """A table sorted by direction (as tables grouped by source are): the memory capped at a
    third of it samples every direction, not the last third; CV scores the same cap."""
    X, Q, C = _sectors(1500, seed=0)
    order = np.argsort(np.arctan2(X[:, 1], X[:, 0]))  # grouped: one sector after another
    X, Q, C = X[order], Q[order], C[order]
    Xt, Qt, _ = _sectors(500, seed=1)
    linear = [EmbeddingFeatures(1.0)]
    capped = Router(
        ["a", "b", "c"], embedder=None, seed=0, neighbours=NeighbourQuality(max_rows=500)
    ).fit(X, Q, C, tune=linear)
    memory = capped.bandit.neighbours
    assert memory is not None
    angles = np.arctan2(X[:, 1], X[:, 0])
    sectors_offered = set(np.floor(angles / (np.pi / 4)).astype(int))
    from metallm.learning._neighbours import subsample

    kept = subsample(len(X), 500)
    assert set(np.floor(angles[kept] / (np.pi / 4)).astype(int)) == sectors_offered
    # the test prompts of the sectors the table's last third does not reach: the last rows
    # would know nothing of them; a uniform sample knows them as well as the rest
    last_third = set(np.floor(angles[-500:] / (np.pi / 4)).astype(int))
    test_sectors = np.floor(np.arctan2(Xt[:, 1], Xt[:, 0]) / (np.pi / 4)).astype(int)
    early = np.flatnonzero([s not in last_third for s in test_sectors])
    assert len(early) > 200
    plain = Router(["a", "b", "c"], embedder=None, seed=0, blend=None).fit(X, Q, C, tune=linear)

    def quality(router: Router) -> float:
        chosen = np.argmax(router.predict(Xt[early], widths=False).quality, axis=1)
        return float(Qt[early, chosen].mean())

    assert quality(capped) > quality(plain) + 0.05


def test_the_complete_memory_path_gives_the_general_paths_means() -> None:
    rng = np.random.default_rng(5)
    memory = unit_rows(rng.normal(size=(600, 16)))
    outcomes = (rng.random((600, 4)) < 0.5).astype(np.float32)
    queries = unit_rows(rng.normal(size=(300, 16)))
    for k in (1, 20, 700):  # more than remembered: every row, support below 1
        fast = neighbour_quality(memory, outcomes, queries, k, complete=True)
        general = neighbour_quality(memory, outcomes, queries, k)
        np.testing.assert_allclose(fast[0], general[0], atol=1e-6)
        np.testing.assert_allclose(fast[1], general[1])
    outcomes[:, 2] = np.nan  # a model known for none of them (joined, or drifted) stays fast
    fast = neighbour_quality(memory, outcomes, queries, 20, complete=True)
    general = neighbour_quality(memory, outcomes, queries, 20)
    np.testing.assert_allclose(fast[0], general[0], atol=1e-6)
    np.testing.assert_allclose(fast[1], general[1])
    assert (fast[0][:, 2] == 0).all() and (fast[1][:, 2] == 0).all()


def test_a_table_only_memory_ignores_online_outcomes_and_keeps_the_fast_path(tmp_path) -> None:
    X, Q, C = _sectors(400, seed=2)
    router = Router(["a", "b", "c"], embedder=None, seed=0,
                    neighbours=NeighbourQuality(k=10, weight=0.5, dims=2, online=False))  # fmt: skip
    router.fit(X, Q, C, tune=False)
    memory = router.bandit.neighbours
    assert memory is not None and len(memory) == 400 and memory.active
    before = router.predict(X[:20], widths=False).quality
    decision = router.select(X[0], force="a")
    router.record(decision.id, quality=0.0, cost=0.001)
    assert len(memory) == 400  # online outcomes teach the linear model only
    restored = Router.load(router.save(tmp_path / "t.npz"), embedder=None)
    kept = restored.bandit.neighbours
    assert kept is not None and not kept.online and kept.dims == 2
    assert np.abs(restored.predict(X[:20], widths=False).quality - before).max() < 0.1


def test_one_query_over_a_complete_memory_blends_as_a_batch_does() -> None:
    X, Q, C = _sectors(500, seed=3)
    for dims in (None, 2):
        memory = NeighbourQuality(k=15, weight=0.5, dims=dims, online=False)
        memory.fit(X, Q)
        linear = np.random.default_rng(dims or 0).random((40, 3))
        queries = _sectors(40, seed=4)[0]
        batch = memory.blend(linear, queries)
        one = np.vstack([memory.blend_one(linear[i], queries[i]) for i in range(40)])
        np.testing.assert_allclose(one, batch, atol=1e-6)
    # a memory with unknown outcomes (online rows) takes the general path, one query or many
    online = NeighbourQuality(k=5, weight=0.5)
    online.add(X[:60], np.arange(60) % 3, Q[np.arange(60), np.arange(60) % 3], 3)
    batch = online.blend(linear, queries)
    one = np.vstack([online.blend_one(linear[i], queries[i]) for i in range(40)])
    np.testing.assert_allclose(one, batch, atol=1e-6)


def test_a_select_blends_as_predict_does_with_the_prompts_length_in_the_vector() -> None:
    X, Q, C = _sectors(400, seed=5)
    blend = NeighbourQuality(k=10, weight=0.75, dims=2, online=False)
    router = Router(["a", "b", "c"], embedder=None, seed=0, neighbours=blend, prompt_length=True)
    X = np.hstack([X, np.full((400, 1), 120.0)])  # the prompt's length: read by the cost model
    router.fit(X, Q, C, tune=False)
    blended = router.predict(X[:30], widths=False).quality
    plain = Router(["a", "b", "c"], embedder=None, seed=0, prompt_length=True).fit(
        X, Q, C, tune=False
    )
    assert np.abs(plain.predict(X[:30], widths=False).quality - blended).max() > 0.1
    for i in range(30):
        chosen = router.select(X[i]).predicted_quality
        np.testing.assert_allclose([chosen[m] for m in "abc"], blended[i], atol=1e-6)


def test_a_default_fit_weighs_the_blend_over_the_linear_map_against_the_cluster_map() -> None:
    X, Q, C = _sectors(1500, seed=0)
    linear, coarse = EmbeddingFeatures(1.0), ClusterFeatures(2, dims=None)
    # two clusters cannot draw eight sectors: the blend over the linear map is kept
    router = Router(["a", "b", "c"], embedder=None, seed=0).fit(X, Q, C, tune=[linear, coarse])
    choice, tuning = router.bandit.neighbour_tuning_, router.tuning_
    assert choice is not None and choice.kept and choice.weight > 0
    assert router.bandit.neighbours is not None and router.bandit.neighbours.offered
    assert tuning is not None and tuning.chosen is linear and router.features.fitted
    assert choice.aiq > max(c.aiq for c in tuning.scores)  # better than every map alone
    assert choice.gain is not None and choice.gain[0] > choice.gain[1] > 0  # beyond the noise
    np.testing.assert_array_equal(tuning.predicted_quality, choice.predicted_quality)
    assert tuning.predictions == ()  # the candidates' predictions are not kept after a fit
    assert "(kept)" in choice.summary() and "EmbeddingFeatures" in choice.summary()
    # a blurred blend (a third of the table averaged) against 32 clusters: the map alone wins
    fine = ClusterFeatures(32, dims=None)
    blurred = NeighbourQuality(k=500, weight=1.0, max_rows=2_000, online=False)
    alone = Router(["a", "b", "c"], embedder=None, seed=0, blend=blurred)
    alone.fit(X, Q, C, tune=[linear, fine])
    choice, tuning = alone.bandit.neighbour_tuning_, alone.tuning_
    assert choice is not None and not choice.kept and "not kept" in choice.summary()
    assert alone.bandit.neighbours is None and tuning is not None and tuning.chosen is fine
    assert choice.aiq <= tuning.chosen_score.aiq
    # no linear candidate: nothing to blend over
    only = Router(["a", "b", "c"], embedder=None, seed=0).fit(X, Q, C, tune=[fine])
    assert only.bandit.neighbours is None and only.bandit.neighbour_tuning_ is None


def test_a_fit_never_serves_a_nonlinear_map_and_the_blend_together() -> None:
    from metallm.learning._tuning import is_linear

    for seed in range(3):
        X, Q, C = _sectors(900, seed=seed)
        router = Router(["a", "b", "c"], embedder=None, seed=seed).fit(X, Q, C, tune=True)
        if router.bandit.neighbours is not None:
            assert is_linear(router.features)
        assert router.bandit.neighbour_tuning_ is not None  # the default offers it every time


def test_a_forgotten_model_leans_on_the_linear_model_and_the_memory_stays_fast() -> None:
    X, Q, _ = _sectors(500, seed=6)
    memory = NeighbourQuality(k=15, weight=0.75, dims=2, online=False)
    memory.fit(X, Q)
    linear = np.random.default_rng(0).random((30, 3))
    queries = _sectors(30, seed=7)[0]
    before = memory.blend(linear, queries)
    memory.forget(0)
    after = memory.blend(linear, queries)
    np.testing.assert_allclose(after[:, 0], linear[:, 0])  # model 0: the linear model alone
    np.testing.assert_allclose(after[:, 1:], before[:, 1:])  # the others as before
    assert memory._complete  # a column known for none keeps the one-partial-sort path
    one = np.vstack([memory.blend_one(linear[i], queries[i]) for i in range(30)])
    np.testing.assert_allclose(one, after, atol=1e-6)
    memory.add_arms(1)  # a model joins: known for none, still fast
    wider = np.hstack([linear, np.full((30, 1), 0.3)])
    np.testing.assert_allclose(memory.blend(wider, queries)[:, 3], 0.3)
    assert memory._complete


def test_a_drift_alarm_drops_the_drifted_model_from_the_table_blend() -> None:
    X, Q, C = _sectors(900, seed=8)
    blend = NeighbourQuality(k=10, weight=0.75, dims=3, online=False)
    router = Router(["a", "b", "c"], embedder=None, seed=0, blend=None, neighbours=blend)
    router.fit(X, Q, C, tune=False)
    good_for_a = X[Q[:, 0] == 1.0][:300]
    before = router.predict(good_for_a, widths=False).quality[:, 0].mean()
    assert before > 0.7  # the table says a is right there (the linear part: about half)
    drift = router.bandit.drift
    assert drift is not None
    for x in good_for_a:  # a silent update: a is now wrong where it was right
        router.record(router.select(x, force="a").id, quality=0.0, cost=0.001)
        if drift.forgotten[0] > 0:
            break
    assert drift.forgotten[0] > 0, "the detector raised no alarm"
    memory = router.bandit.neighbours
    assert memory is not None and np.isnan(memory._outcomes[:, 0]).all()
    assert not np.isnan(memory._outcomes[:, 1:]).any()
    after = router.predict(good_for_a, widths=False).quality[:, 0].mean()
    assert after < before - 0.3  # the blend no longer props up a's old quality
