"""Off-policy evaluation: the estimators recover known policy values from an explored log."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metallm.cli import main
from metallm.evaluation._offpolicy import (
    DecisionLog,
    estimate,
    evaluate_log,
    log_cost_scale,
)


def _world(n=3000, seed=0):
    """Two models: 'a' right when x0 > 0, 'b' right otherwise; 'b' costs ten times more."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    quality = np.stack([X[:, 0] > 0, X[:, 0] <= 0], axis=1).astype(float)
    cost = np.tile([0.001, 0.01], (n, 1))
    return X, quality, cost


def test_each_estimator_recovers_a_policys_value_from_a_uniform_log():
    X, quality, cost = _world()
    rng = np.random.default_rng(1)
    chosen = rng.integers(0, 2, len(X))
    rows = np.arange(len(X))
    log = DecisionLog(
        ["a", "b"], X, chosen, np.full(len(X), 0.5), quality[rows, chosen], cost[rows, chosen]
    )
    ideal = np.stack([X[:, 0] > 0, X[:, 0] <= 0], axis=1).astype(float)  # always the right one
    truth = float((ideal * (quality - 0.1 * cost / 0.01)).sum(axis=1).mean())
    found = estimate(log, ideal, cost_weight=0.1, scale=0.01, seed=0)
    for name, e in found.items():
        assert e.reward == pytest.approx(truth, abs=0.03), name
        assert e.reward_low <= truth <= e.reward_high, name
        assert e.quality == pytest.approx(1.0, abs=0.05)
    assert found["DR"].effective_sample_size == pytest.approx(1500, rel=0.1)


def _rare_arm_log(seed, n=1500, k=10, epsilon=0.3):
    """k models of one accuracy 0.7 (noise only), a greedy log exploring ``epsilon`` uniformly."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    quality = (rng.random((n, k)) < 0.7).astype(float)
    cost = np.full((n, k), 0.01)
    explore = rng.random(n) < epsilon
    chosen = np.where(explore, rng.integers(0, k, n), 0)
    propensity = np.where(chosen == 0, 1 - epsilon + epsilon / k, epsilon / k)
    rows = np.arange(n)
    log = DecisionLog(
        [f"m{j}" for j in range(k)],
        X,
        chosen,
        propensity,
        quality[rows, chosen],
        cost[rows, chosen],
    )
    return log, quality, cost


def test_dros_shrinks_the_correction_of_a_rarely_logged_model_and_keeps_its_interval():
    """Weights of 33 on pure noise: DR pays the noise in full, DRos only what the log supports."""
    errors = {"DR": [], "DRos": []}
    covered = 0
    for seed in range(8):
        log, quality, cost = _rare_arm_log(seed)
        always_last = np.zeros((len(log.chosen), 10))
        always_last[:, 9] = 1.0
        truth = float((quality[:, 9] - 0.1 * cost[:, 9] / 0.01).mean())
        right = (np.full_like(quality, 0.7), cost)  # a direct method that knows the mean
        found = estimate(log, always_last, cost_weight=0.1, scale=0.01, seed=seed, direct=right)
        for name in errors:
            errors[name].append(abs(found[name].reward - truth))
        covered += found["DRos"].reward_low <= truth <= found["DRos"].reward_high
        assert found["DRos"].shrinkage is not None  # it shrank: the direct method is right
        assert found["DR"].shrinkage is None
    assert np.mean(errors["DRos"]) < 0.75 * np.mean(errors["DR"])  # 0.047 vs 0.076
    assert covered >= 7


def test_the_intervals_are_those_of_the_plain_bootstrap_over_resampled_rows(monkeypatch):
    """Resamples are counted per row in chunks; the interval is the textbook one all the same."""
    from metallm.evaluation import _offpolicy as offpolicy

    monkeypatch.setattr(offpolicy, "_RESAMPLE_CHUNK", 7 * 700)  # 7 resamples at a time
    log, quality, cost = _rare_arm_log(5, n=700)
    candidate = np.full((700, 10), 0.1)
    found = estimate(log, candidate, cost_weight=0.1, scale=0.01, seed=3, bootstrap=150)
    w = 0.1 / log.propensity
    reward = w * (log.quality - 0.1 * log.cost / 0.01)
    draws = np.random.default_rng(3).integers(0, 700, size=(150, 700))
    low, high = np.percentile(reward[draws].mean(axis=1), [2.5, 97.5])
    assert found["IPS"].reward_low == pytest.approx(low, abs=1e-12)
    assert found["IPS"].reward_high == pytest.approx(high, abs=1e-12)
    assert found["IPS"].reward == pytest.approx(reward.mean(), abs=1e-12)


def test_dros_is_dr_when_the_direct_method_is_exact_or_the_weights_are_one():
    X, quality, cost = _world()
    rows = np.arange(len(X))
    chosen = np.random.default_rng(2).integers(0, 2, len(X))
    log = DecisionLog(
        ["a", "b"], X, chosen, np.full(len(X), 0.5), quality[rows, chosen], cost[rows, chosen]
    )
    ideal = np.stack([X[:, 0] > 0, X[:, 0] <= 0], axis=1).astype(float)
    found = estimate(log, ideal, cost_weight=0.1, scale=0.01, direct=(quality, cost))
    assert found["DRos"].reward == pytest.approx(found["DR"].reward, abs=1e-12)  # no residual
    on_policy_like = np.eye(2)[chosen]  # the candidate chose what was logged: weights 2
    found = estimate(log, on_policy_like, cost_weight=0.1, scale=0.01, seed=0)
    assert abs(found["DRos"].reward - found["DR"].reward) < 0.01


def _logged_store(store, n=1500):
    """A live router with exploration on a store, answering the two-model world, fed back."""
    from metallm import LinUCB, Router

    X, quality, cost = _world(n=n, seed=3)
    router = Router(
        ["a", "b"], embedder=None, policy=LinUCB(explore=0.5), store=store, sync_interval=None,
        seed=0,
    )  # fmt: skip
    propensities = []
    for i in range(n):
        decision = router.select(X[i])
        j = router.arms.index(decision.arm)
        router.record(decision.id, quality=quality[i, j], cost=cost[i, j])
        propensities.append(decision.propensity)
    return X, quality, cost, propensities


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_feedback_events_keep_the_decisions_propensity(kind, tmp_path, request):
    from metallm import RedisStore, SQLiteStore
    from metallm.state import FeedbackEvent

    store = (
        SQLiteStore(tmp_path / "log.sqlite")
        if kind == "sqlite"
        else RedisStore(request.getfixturevalue("redis_url"), prefix=f"ope-{tmp_path.name}")
    )
    *_, logged = _logged_store(store, n=50)
    events = [e for _, e in store.events_after(None) if isinstance(e, FeedbackEvent)]
    assert [e.propensity for e in events] == pytest.approx(logged)
    assert set(np.round(logged, 6)) <= {0.25, 0.5, 0.75}  # 0.5: a tie, before any feedback


def test_an_old_sqlite_log_gains_the_propensity_column_and_reads_as_unknown(tmp_path):
    import sqlite3

    from metallm import SQLiteStore
    from metallm.evaluation._offpolicy import log_from_store

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL "
        "UNIQUE, arm TEXT NOT NULL, embedding BLOB NOT NULL, quality REAL NOT NULL, cost REAL "
        "NOT NULL, time REAL NOT NULL, prompt TEXT, failure INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute(
        "INSERT INTO events (decision_id, arm, embedding, quality, cost, time) VALUES (?,?,?,?,?,?)",
        ("d1", "a", np.ones(4).tobytes(), 1.0, 0.001, 0.0),
    )
    db.commit()
    db.close()
    store = SQLiteStore(path)
    ((_, event),) = list(store.events_after(None))
    assert event.propensity is None
    with pytest.raises(ValueError, match="no feedback with a propensity"):
        log_from_store(store, ["a", "b"])


def test_evaluate_reads_a_stores_log_and_estimates_saved_routers_and_fixed_policies(
    tmp_path, capsys
):
    from metallm import Router, SQLiteStore

    path = tmp_path / "live.sqlite"
    X, quality, cost, _ = _logged_store(SQLiteStore(path))
    candidate = Router(["a", "b"], embedder=None, seed=0)
    candidate.fit(*_world(n=600, seed=9), tune=False)  # trained on other traffic
    saved = candidate.save(tmp_path / "candidate.npz")
    out = tmp_path / "estimates.json"
    args = ["evaluate", "--log", str(path), "--models", "a,b", "--candidate", str(saved)]
    assert main([*args, "--p", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())["estimates"]
    always_a = report["always a"]["DR"]
    truth_a = float((quality[:, 0] - 0.1 * cost[:, 0] / 0.01).mean())
    assert always_a["reward_low"] <= truth_a <= always_a["reward_high"]
    assert (
        report[f"{saved}: p=0"]["DR"]["quality"] > 0.9
    )  # the trained router is nearly always right
    assert report["always b"]["DR"]["cost"] == pytest.approx(0.01, rel=0.05)
    assert "logged decisions with propensities" in capsys.readouterr().out
    assert main(["evaluate", "--log", str(path)]) == 2  # the pool must be named
    assert "needs --models" in capsys.readouterr().err


def test_evaluate_reports_each_shadow_beside_the_live_router(tmp_path, capsys):
    from metallm import LinUCB, Router, SQLiteStore

    X, quality, cost = _world(n=1500, seed=3)
    trained = Router(["a", "b"], embedder=None, seed=0, policy=LinUCB(alpha=0.0))
    trained.fit(*_world(n=600, seed=9), tune=False)  # a shadow trained on other traffic
    thrifty = Router(["a", "b"], embedder=None, cost_weight=50.0, policy=LinUCB(alpha=0.0), seed=0)
    path = tmp_path / "live.sqlite"
    live = Router(
        ["a", "b"], embedder=None, policy=LinUCB(explore=0.5), store=SQLiteStore(path),
        sync_interval=None, shadows={"trained": trained, "thrifty": thrifty}, seed=0,
    )  # fmt: skip
    chosen = []
    for i in range(len(X)):
        decision = live.select(X[i])
        j = live.arms.index(decision.arm)
        live.record(decision.id, quality=quality[i, j], cost=cost[i, j])
        chosen.append(j)
    out, plot = tmp_path / "estimates.json", tmp_path / "estimates.png"
    args = ["evaluate", "--log", str(path), "--models", "a,b", "--json", str(out)]
    assert main([*args, "--plot", str(plot)]) == 0
    shadows = json.loads(out.read_text())["shadows"]
    trained_dr = shadows["trained"]["shadow"]["DR"]
    assert trained_dr["quality"] > 0.9  # it knows the rule; the live explorer does not
    assert shadows["trained"]["reward_gain"] > 0.1
    live_quality = quality[np.arange(len(X)), chosen].mean()
    assert shadows["trained"]["live"]["DR"]["quality"] == pytest.approx(live_quality)
    thrifty_dr = shadows["thrifty"]["shadow"]["DR"]  # it learns that "a" is 10 times cheaper
    assert thrifty_dr["cost"] == pytest.approx(0.001, rel=0.1) and thrifty_dr["quality"] < 0.6
    assert shadows["thrifty"]["savings"] > 0.5
    assert 0.0 < shadows["trained"]["agreement"] < 1.0
    printed = capsys.readouterr().out
    assert "shadow" in printed and "trained" in printed and plot.stat().st_size > 1000


def test_evaluate_estimates_a_users_rule_text_to_model_from_a_log_with_prompts(
    tmp_path, capsys, monkeypatch, embedder
):
    from metallm import LinUCB, Router, SQLiteStore

    rng = np.random.default_rng(5)
    sunny = rng.random(600) < 0.5
    texts = [
        f"Is it {'sunny' if s else 'raining'} in town number {i}?" for i, s in enumerate(sunny)
    ]
    quality = np.stack([sunny, ~sunny], axis=1).astype(float)  # "a" is right on sunny questions
    cost = np.tile([0.001, 0.01], (600, 1))
    path = tmp_path / "live.sqlite"
    live = Router(["a", "b"], embedder=embedder, policy=LinUCB(explore=0.5), seed=0,
                  store=SQLiteStore(path, store_prompts=True), sync_interval=None)  # fmt: skip
    for i, decision in enumerate(live.select_batch(texts)):
        j = live.arms.index(decision.arm)
        live.record(decision.id, quality=quality[i, j], cost=cost[i, j])
    (tmp_path / "my_rules.py").write_text(
        "def by_weather(text):\n    return 'a' if 'sunny' in text else 'b'\n"
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "estimates.json"
    args = ["evaluate", "--log", str(path), "--models", "a,b", "--json", str(out)]
    assert main([*args, "--candidate", "my_rules:by_weather"]) == 0
    rule = json.loads(out.read_text())["estimates"]["my_rules:by_weather"]["DR"]
    assert rule["quality"] == pytest.approx(1.0, abs=0.03)
    assert rule["cost"] == pytest.approx(sunny.mean() * 0.001 + (~sunny).mean() * 0.01, rel=0.05)
    assert main([*args, "--candidate", "my_rules:missing"]) == 2
    assert "cannot import it" in capsys.readouterr().err
    plain = tmp_path / "plain.sqlite"  # a store that kept no prompts
    _logged_store(SQLiteStore(plain), n=50)
    assert main(["evaluate", "--log", str(plain), "--models", "a,b",
                 "--candidate", "my_rules:by_weather"]) == 2  # fmt: skip
    assert "store_prompts=True" in capsys.readouterr().err


def test_rows_with_every_outcome_teach_the_direct_method_what_the_log_rarely_shows():
    from metallm.evaluation._offpolicy import cross_fitted

    X, quality, cost = _world(n=1200)
    quality[:, 1] = np.clip(0.5 + 0.2 * X[:, 0] - 0.1 * X[:, 1], 0.0, 1.0)  # smooth: learnable
    rng = np.random.default_rng(3)
    chosen = (rng.random(1000) < 0.03).astype(int)  # 'b' logged on about 30 rows of 1000
    rows = np.arange(1000)
    log = DecisionLog(
        ["a", "b"],
        X[:1000],
        chosen,
        np.where(chosen == 1, 0.03, 0.97),
        quality[rows, chosen],
        cost[rows, chosen],
    )
    log_only, _ = cross_fitted(log, 5, 0)
    helped, _ = cross_fitted(log, 5, 0, (X[1000:], quality[1000:], cost[1000:]))
    error_alone = np.abs(log_only[:, 1] - quality[:1000, 1]).mean()
    error_helped = np.abs(helped[:, 1] - quality[:1000, 1]).mean()
    assert error_helped < 0.5 * error_alone


def test_a_default_routers_log_supports_estimating_other_policies(tmp_path):
    """No policy given: the default keeps a 3% exploration floor, so every logged decision's
    propensity is exact and between 0.03 / k and 1 - 0.03 / k, and the log estimates routers
    it never ran (here: always one model, always the other)."""
    from metallm import Router, SQLiteStore
    from metallm.evaluation._offpolicy import fixed_candidates, log_from_store

    X, quality, cost = _world(n=3000, seed=5)
    router = Router(["a", "b"], embedder=None, store=SQLiteStore(tmp_path / "live.sqlite"),
                    sync_interval=None, seed=0)  # fmt: skip
    for i in range(len(X)):
        decision = router.select(X[i])
        j = router.arms.index(decision.arm)
        router.record(decision.id, quality=quality[i, j], cost=cost[i, j])
    log = log_from_store(SQLiteStore(tmp_path / "live.sqlite"), ["a", "b"])
    assert log.propensity.min() >= 0.03 / 2 - 1e-12 and log.propensity.max() <= 1 - 0.03 / 2
    _, estimates = evaluate_log(log, fixed_candidates(["a", "b"]), cost_weight=0.1)
    for j, name in enumerate(["always a", "always b"]):
        truth = float((quality[:, j] - 0.1 * cost[:, j] / log_cost_scale(log)).mean())
        dr = estimates[name]["DR"]
        assert dr.reward_low <= truth <= dr.reward_high, (name, dr, truth)
