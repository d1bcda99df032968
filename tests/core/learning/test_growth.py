"""Capacity growth: a cold router keeps its first outcomes and takes a richer map when they support it."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import ClusterFeatures, ConfigurationError, LinUCB, Router
from metallm.learning import CapacityGrowth
from metallm.state import SQLiteStore

TOPICS = 8


def _world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Prompts from 8 topics around a circle (4-d vectors); "even" is right on even topics,
    "odd" on odd ones: no linear function of the vector tells them apart, clusters do."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(TOPICS, size=n)
    angle = 2 * np.pi * topic / TOPICS
    X = np.stack([np.cos(angle), np.sin(angle), np.ones(n), np.zeros(n)], axis=1)
    X += rng.normal(scale=0.08, size=X.shape)
    quality = np.stack([(topic % 2 == 0), (topic % 2 == 1)], axis=1).astype(float)
    return X, quality


def _replay(
    router: Router, X: np.ndarray, quality: np.ndarray, picks: list[str] | None = None
) -> np.ndarray:
    """Route (or force ``picks``) and learn each row; the quality got per row."""
    arms = {"even": 0, "odd": 1}
    got = np.empty(len(X))
    for i, x in enumerate(X):
        decision = router.select(x, force=None if picks is None else picks[i])
        got[i] = quality[i, arms[decision.arm]]
        router.record(decision.id, quality=got[i], cost=0.001)
        if picks is None:
            CHOSEN.append(decision.arm)
    return got


CHOSEN: list[str] = []


def test_a_cold_router_grows_into_clusters_routes_better_and_does_not_dip_at_the_switch() -> None:
    X, quality = _world(3_000, seed=0)
    grown = Router(["even", "odd"], embedder=None, policy=LinUCB(), seed=0)
    plain = Router(["even", "odd"], embedder=None, policy=LinUCB(), seed=0, growth=None)
    got_grown, got_plain = _replay(grown, X, quality), _replay(plain, X, quality)
    growth = grown.bandit.growth
    assert growth is not None
    switches = [check.at for check in growth.checks if check.chosen]
    assert switches and switches[0] <= 1_000, growth.checks
    assert isinstance(getattr(grown.features, "inner", grown.features), ClusterFeatures)
    first = switches[0]
    check = growth.checks[[c.at for c in growth.checks].index(first)]
    assert check.errors[check.chosen] < min(  # type: ignore[index]
        e for name, e in check.errors.items() if name.startswith("in use")
    )
    assert got_grown[first : first + 200].mean() >= got_grown[first - 200 : first].mean() - 0.02
    assert got_grown[-500:].mean() > got_plain[-500:].mean() + 0.2  # linear stays near chance
    assert sum(grown.counts.values()) == 3_000  # the rebuilt statistics hold every outcome


def test_settings_are_checked_and_a_tuned_or_large_fit_stops_the_growth() -> None:
    for bad in ({"every": 0}, {"every": 500, "rows": 100}, {"margin": 1.0}, {"folds": 1}):
        with pytest.raises(ConfigurationError, match="CapacityGrowth"):
            CapacityGrowth(**bad)  # type: ignore[arg-type]
    X, quality = _world(400, seed=1)
    cost = np.tile([0.001, 0.002], (400, 1))
    tuned = Router(["even", "odd"], embedder=None).fit(X, quality, cost)
    assert tuned.bandit.growth is not None  # 400 rows: "auto" tunes, cross-validation chose
    assert (
        tuned.bandit.growth.stopped == "the map was chosen by cross-validation on a routing table"
    )
    kept = Router(["even", "odd"], embedder=None).fit(X, quality, cost, tune=False)
    assert kept.bandit.growth is not None  # the caller keeps the map
    assert kept.bandit.growth.stopped == "fitted with tune=False: the map stays"
    large = Router(["even", "odd"], embedder=None, growth=CapacityGrowth(every=100, rows=100))
    large.fit(X[:250], quality[:250], cost[:250])  # too few to tune, but 500 outcomes > 2 * 100
    assert large.bandit.growth is not None
    assert large.bandit.growth.stopped is not None and "500 outcomes" in large.bandit.growth.stopped


def test_a_fit_on_a_few_rows_keeps_them_and_goes_on_growing(tmp_path) -> None:
    X, quality = _world(1_400, seed=4)
    cost = np.full((len(X), 2), 0.001)
    router = Router(["even", "odd"], embedder=None, policy=LinUCB(), seed=0,
                    growth=CapacityGrowth(every=100, rows=1_000))  # fmt: skip
    router.fit(X[:150], quality[:150], cost[:150])  # 150 rows: too few for "auto" to tune
    growth = router.bandit.growth
    assert growth is not None and growth.active and growth.n == 300 and growth.room == 1_300
    assert len(growth.checks) == 1  # checked at the fit: 300 outcomes, every model's
    # Statistics rebuilt from the kept outcomes equal the fit's (nothing learned twice or lost).
    probe = _world(50, seed=9)[0]
    before = router.predict(probe).quality
    router.bandit._rebuild(router.bandit.features, *growth.kept())
    np.testing.assert_allclose(router.predict(probe).quality, before, atol=1e-9)
    saved = router.save(tmp_path / "fitted.npz")  # the fit's outcomes travel with the router
    loaded = Router.load(saved, embedder=None)
    assert loaded.bandit.growth is not None and loaded.bandit.growth.room == 1_300
    got = _replay(router, X[150:], quality[150:])
    assert isinstance(getattr(router.features, "inner", router.features), ClusterFeatures)
    assert growth.stopped == "the rows are in" and growth.n == growth.room
    assert got[-300:].mean() > 0.9  # a linear map stays near chance on this world
    _replay(loaded, X[150:], quality[150:], picks=CHOSEN[-len(got) :])
    np.testing.assert_allclose(loaded.predict(probe).quality, router.predict(probe).quality,
                               atol=1e-9)  # fmt: skip


def test_a_saved_router_and_one_folding_the_store_grow_at_the_same_outcome(tmp_path) -> None:
    X, quality = _world(1_400, seed=2)
    worker = Router(["even", "odd"], embedder=None, policy=LinUCB(), seed=0,
                    store=SQLiteStore(tmp_path / "s.sqlite"), sync_interval=None,
                    snapshot_every=300)  # fmt: skip
    _replay(worker, X[:700], quality[:700])
    saved = worker.save(tmp_path / "at700.npz")
    CHOSEN.clear()
    _replay(worker, X[700:], quality[700:])
    picks = list(CHOSEN)
    worker.sync()
    growth = worker.bandit.growth
    assert growth is not None and any(c.chosen for c in growth.checks)
    fresh = Router(["even", "odd"], embedder=None, policy=LinUCB(), seed=1,
                   store=SQLiteStore(tmp_path / "s.sqlite"), sync_interval=None)  # fmt: skip
    fresh.sync()  # from a snapshot (kept outcomes inside) and the events after it
    probe = _world(50, seed=9)[0]
    np.testing.assert_allclose(fresh.predict(probe).quality, worker.predict(probe).quality,
                               atol=1e-9)  # fmt: skip
    assert fresh.bandit.growth is not None
    assert [c.at for c in fresh.bandit.growth.checks] == [c.at for c in growth.checks]
    loaded = Router.load(saved, embedder=None)  # mid-growth: 700 outcomes kept
    assert loaded.bandit.growth is not None and loaded.bandit.growth.n == 700
    _replay(loaded, X[700:], quality[700:], picks)  # the same models, the same outcomes
    assert [c.at for c in loaded.bandit.growth.checks] == [c.at for c in growth.checks]
    np.testing.assert_allclose(loaded.predict(probe).quality, worker.predict(probe).quality,
                               atol=1e-9)  # fmt: skip


def test_a_later_grade_replaces_the_kept_one_and_a_drift_alarm_stops_the_growth() -> None:
    router = Router(["even", "odd"], embedder=None, policy=LinUCB(), seed=0)
    x = np.array([1.0, 0.0, 1.0, 0.0])
    decision = router.select(x, force="even")
    router.record(decision.id, quality=0.0, cost=0.001, source="judge")
    router.record(decision.id, quality=1.0, cost=0.001, source="human")
    growth = router.bandit.growth
    assert growth is not None
    _, _, kept = growth.kept()
    assert kept[0, 0] == 1.0  # the person's grade, as the statistics hold it
    X, quality = _world(600, seed=3)
    for i, v in enumerate(X):  # "even" right for 300 outcomes, then wrong: a drift alarm
        d = router.select(v, force="even")
        router.record(d.id, quality=1.0 if i < 300 else 0.0, cost=0.001)
    assert router.bandit.drift is not None and router.bandit.drift.alarms[0] >= 1
    assert growth.stopped == "a drift alarm reshaped the statistics"


def test_a_switch_at_the_last_check_rebuilds_before_the_kept_rows_are_dropped() -> None:
    X, quality = _world(700, seed=5)
    router = Router(["even", "odd"], embedder=None, policy=LinUCB(), seed=0,
                    growth=CapacityGrowth(every=500, rows=500))  # fmt: skip
    _replay(router, X, quality)
    growth = router.bandit.growth
    assert growth is not None and growth.stopped == "the rows are in"
    assert [c.at for c in growth.checks] == [500] and growth.checks[0].chosen is not None
    assert isinstance(getattr(router.features, "inner", router.features), ClusterFeatures)
    assert sum(router.counts.values()) == 700
