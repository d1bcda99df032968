"""The drift detector: a CUSUM on each model's prediction errors that forgets a changed model's past."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import LinUCB, Router
from metallm.exceptions import ConfigurationError
from metallm.learning import DriftDetector, RidgeStatistics
from metallm.state import SQLiteStore


def test_an_alarm_comes_after_a_lasting_change_with_its_size_and_not_in_the_warmup() -> None:
    detector = DriftDetector(shift=0.1, threshold=3.0, warmup=5)
    detector.start(2)
    assert [detector.observe(0, -0.5) for _ in range(5)] == [None] * 5  # warming up
    changes = [detector.observe(0, -0.5) for _ in range(10)]
    alarm = next(i for i, c in enumerate(changes) if c is not None)
    assert alarm == 7  # 8 errors of -0.5 less 0.1 allowance: 3.2 >= 3
    assert changes[alarm] == pytest.approx(-0.5)  # the change it measured
    assert detector.alarms.tolist() == [1, 0] and detector.lower[0] == 0.0
    assert detector.watched[0] == 2  # watched again from the alarm (warming up)
    detector.start(2)
    for _ in range(200):  # errors inside the allowance never add up
        assert detector.observe(1, 0.09) is None and detector.observe(1, -0.09) is None
    later = [detector.observe(1, 0.6) for _ in range(10)]
    assert max(c for c in later if c is not None) == pytest.approx(0.6)  # better, too


def test_settings_are_checked_and_saved_state_round_trips() -> None:
    for bad in ({"shift": 0.0}, {"threshold": -1.0}, {"keep": float("nan")}, {"warmup": -1}):
        with pytest.raises(ConfigurationError, match="DriftDetector"):
            DriftDetector(**bad)  # type: ignore[arg-type]
    detector = DriftDetector(threshold=4.0, warmup=0)
    detector.start(3)
    for error in (-0.4, -0.3, 0.2):
        detector.observe(1, error)
    header, arrays = detector.to_state()
    back = DriftDetector.from_state(header, arrays, 3)
    assert back.threshold == 4.0 and back.lower.tolist() == detector.lower.tolist()
    assert back.lower_run.tolist() == detector.lower_run.tolist()
    with pytest.raises(ValueError, match="drift_lower"):
        DriftDetector.from_state(header, {**arrays, "drift_lower": np.array([0.0, -1.0, 0.0])}, 3)
    with pytest.raises(ValueError, match="settings"):
        DriftDetector.from_state({"shift": "x"}, arrays, 3)


def test_shifting_an_arm_is_exactly_learning_every_value_moved_and_shrinking_keeps_its_level() -> (
    None
):
    rng = np.random.default_rng(0)
    X = np.hstack([rng.normal(size=(40, 3)), np.ones((40, 1))])
    Y = np.stack([rng.random(40), rng.random(40)], axis=1)
    moved = RidgeStatistics(1, 4, 1.0)
    moved.add_batch(0, X, Y)
    moved.shift(0, -0.3)
    direct = RidgeStatistics(1, 4, 1.0)
    direct.add_batch(0, X, Y - np.array([0.3, 0.0]))
    np.testing.assert_allclose(moved.theta, direct.theta, atol=1e-12)
    before = moved.predict(X, widths=True)
    assert moved.shrink(0, 10.0) == pytest.approx(30.0)  # 40 outcomes' worth down to 10
    after = moved.predict(X, widths=True)
    assert moved.counts()[0] == pytest.approx(10.0)
    assert np.abs(after[0] - before[0]).mean() < 0.1  # about the same level
    assert (after[2] > before[2]).all()  # less sure: the next outcomes weigh more
    assert moved.shrink(0, 50.0) == 0.0  # nothing to shrink below what it has


def _replay(router: Router, steps: int, drop_at: int | None, seed: int = 0) -> list[str]:
    """Two models on noisy 0/1 grades; "favourite" drops from 0.9 to 0.3 at ``drop_at``."""
    rng = np.random.default_rng(seed)
    chosen = []
    for step in range(steps):
        x = np.array([1.0, 0.0, 0.0]) + 0.05 * rng.normal(size=3)
        decision = router.select(x)
        dropped = drop_at is not None and step >= drop_at
        p = {"favourite": 0.3 if dropped else 0.9, "other": 0.6}[decision.arm]
        router.record(decision.id, quality=float(rng.random() < p), cost=0.0)
        chosen.append(decision.arm)
    return chosen


def test_the_default_router_leaves_a_favourite_that_got_worse_where_plain_statistics_stay() -> None:
    """4,000 outcomes of history, then the favourite drops: with its whole past weighing alike
    plain UCB keeps sending it most traffic for long; the default detector switches soon."""
    runs = {}
    for name, drift in (("default", "default"), ("none", None)):
        router = Router(["favourite", "other"], embedder=None, policy=LinUCB(), seed=0, drift=drift)
        runs[name] = (router, _replay(router, 4_400, drop_at=4_000))
    default, none = runs["default"][1], runs["none"][1]
    assert (
        default[3_000:4_000].count("favourite") > 900 and none[3_000:4_000].count("favourite") > 900
    )
    assert default[4_150:4_400].count("favourite") < 50  # switched within 150 queries
    assert none[4_150:4_400].count("favourite") > 200  # still on the worse model
    router = runs["default"][0]
    assert router.bandit.drift is not None and router.bandit.drift.alarms[0] >= 1
    assert sum(router.counts.values()) == 4_400  # forgetting a past does not uncount calls


def test_nothing_changes_no_alarm_and_the_same_choices_as_without_the_detector() -> None:
    routers = [
        Router(["favourite", "other"], embedder=None, policy=LinUCB(), seed=0, drift=drift)
        for drift in ("default", None)
    ]
    chosen = [_replay(router, 3_000, drop_at=None, seed=3) for router in routers]
    assert routers[0].bandit.drift is not None
    assert routers[0].bandit.drift.alarms.tolist() == [0, 0]
    assert chosen[0] == chosen[1]


def test_provider_failures_are_the_cooldowns_business_not_an_alarm() -> None:
    router = Router(["favourite", "other"], embedder=None, policy=LinUCB(), seed=0)
    _replay(router, 500, drop_at=None)
    x = np.array([1.0, 0.0, 0.0])
    for _ in range(100):  # an outage: every call fails (learned as quality 0)
        call = router.route(x, force="favourite", fallbacks=0)
        with pytest.raises(ConnectionError):
            try:
                raise ConnectionError("the provider is down")
            except ConnectionError as error:
                call.failed(error)
    assert router.failure_counts["favourite"] == 100
    assert router.bandit.drift is not None and router.bandit.drift.alarms.tolist() == [0, 0]


def test_saved_and_shared_routers_carry_the_detectors_sums(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "state.sqlite")
    worker = Router(["favourite", "other"], embedder=None, policy=LinUCB(), seed=0,
                    store=store, sync_interval=None)  # fmt: skip
    _replay(worker, 1_200, drop_at=1_000)
    worker.sync()
    drift = worker.bandit.drift
    assert drift is not None and drift.alarms.sum() >= 1
    fresh = Router(["favourite", "other"], embedder=None, policy=LinUCB(), seed=1,
                   store=SQLiteStore(tmp_path / "state.sqlite"), sync_interval=None)  # fmt: skip
    fresh.sync()
    assert fresh.bandit.drift is not None
    for name in ("upper", "lower", "watched", "alarms", "forgotten"):
        np.testing.assert_allclose(getattr(fresh.bandit.drift, name), getattr(drift, name))
    probe = np.random.default_rng(2).normal(size=(5, 3))
    np.testing.assert_allclose(fresh.predict(probe).quality, worker.predict(probe).quality)
    loaded = Router.load(worker.save(tmp_path / "r.npz"), embedder=None)
    assert loaded.bandit.drift is not None
    np.testing.assert_allclose(loaded.bandit.drift.lower, drift.lower)
    np.testing.assert_allclose(loaded.predict(probe).quality, worker.predict(probe).quality)
    off = Router.load(tmp_path / "r.npz", embedder=None)
    assert off.counts == worker.counts


def test_a_router_refuses_something_else_as_its_detector() -> None:
    with pytest.raises(ConfigurationError, match="DriftDetector"):
        Router(["a", "b"], embedder=None, drift={"threshold": 3})  # type: ignore[arg-type]
