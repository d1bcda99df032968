"""A pool that changes: models added and retired at runtime, kept by the stores and restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from metallm import ConfigurationError, RedisStore, Router, SQLiteStore
from metallm.exceptions import UnknownArmError

ROOT = Path(__file__).resolve().parents[3]


def _queries(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 6))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_an_added_model_is_routed_to_and_learned():
    router = Router(["a", "b"], embedder=None, seed=0)
    for x in _queries(60):
        for arm in ("a", "b"):
            d = router.select(x, force=arm)
            router.record(d.id, quality=0.2, cost=0.0)
    router.add_arm("c")
    assert router.arms == ("a", "b", "c") and router.active_arms == ("a", "b", "c")
    for x in _queries(60):
        d = router.select(x, force="c")
        router.record(d.id, quality=1.0, cost=0.0)
    assert router.counts["c"] == 60
    picks = {router.select(x).arm for x in _queries(20, seed=1)}
    assert "c" in picks and set(router.select(_queries(1)[0]).scores) == {"a", "b", "c"}


def test_a_retired_model_keeps_its_history_and_is_never_chosen():
    router = Router(["a", "b", "c"], embedder=None, seed=0)
    for x in _queries(30):
        d = router.select(x, force="b")
        router.record(d.id, quality=1.0, cost=0.0)
    router.stick("s1", "b")
    router.retire_arm("b")
    assert router.active_arms == ("a", "c") and router.counts["b"] == 30
    assert {router.select(x).arm for x in _queries(50)} <= {"a", "c"}
    assert {d.arm for d in router.select_batch(_queries(50))} <= {"a", "c"}
    assert router.select(_queries(1)[0], session="s1").arm != "b"  # its sessions move
    with pytest.raises(ConfigurationError, match="retired"):
        router.select(_queries(1)[0], force="b")


@pytest.mark.parametrize(
    ("change", "error", "says"),
    [
        (lambda r: r.add_arm("a"), ConfigurationError, "already in the pool"),
        (lambda r: r.add_arm(""), ConfigurationError, "non-empty string"),
        (lambda r: r.retire_arm("zzz"), UnknownArmError, "zzz"),
    ],
)
def test_a_wrong_pool_change_is_a_typed_error(change, error, says):
    with pytest.raises(error, match=says):
        change(Router(["a", "b"], embedder=None))


def test_retiring_the_last_model_routed_to_is_refused_and_a_retired_name_is_not_reused():
    router = Router(["a", "b"], embedder=None)
    router.retire_arm("a")
    with pytest.raises(ConfigurationError, match="last model"):
        router.retire_arm("b")
    with pytest.raises(ConfigurationError, match="already retired"):
        router.add_arm("a")


def test_save_and_load_keep_the_changed_pool(tmp_path):
    router = Router(["a", "b"], embedder=None, seed=0)
    router.add_arm("c")
    for x in _queries(20):
        d = router.select(x, force="c")
        router.record(d.id, quality=0.9, cost=0.001)
    router.retire_arm("a")
    loaded = Router.load(router.save(tmp_path / "state.npz"), embedder=None)
    assert loaded.arms == ("a", "b", "c") and loaded.retired == {"a"}
    assert loaded.counts == router.counts


def _target(kind, tmp_path, request):
    if kind == "sqlite":
        return "sqlite", str(tmp_path / "state.sqlite")
    return "redis", f"{request.getfixturevalue('redis_url')}#pool{uuid.uuid4().hex[:8]}"


def _open(kind, where):
    if kind == "sqlite":
        return SQLiteStore(where)
    url, _, prefix = where.rpartition("#")
    return RedisStore(url, prefix=prefix)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_pool_changes_are_seen_by_another_process_and_survive_a_restart(kind, tmp_path, request):
    kind, where = _target(kind, tmp_path, request)
    first = Router(["a", "b"], embedder=None, store=_open(kind, where), sync_interval=None)
    first.add_arm("c")
    for x in _queries(10):
        d = first.select(x, force="c")
        first.record(d.id, quality=1.0, cost=0.0)
    first.retire_arm("a")
    code = (
        "import json, sys\n"
        "from tests.core.serving.test_pool_changes import _open\n"
        "from metallm import Router\n"
        f"r = Router(['a', 'b'], embedder=None, store=_open({kind!r}, {where!r}), sync_interval=None)\n"
        "print(json.dumps({'arms': list(r.arms), 'retired': sorted(r.retired), "
        "'counts': r.counts, 'active': list(r.active_arms)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout)  # another process, started with the old list of models
    assert seen == {
        "arms": ["a", "b", "c"],
        "retired": ["a"],
        "counts": {"a": 0, "b": 0, "c": 10},
        "active": ["b", "c"],
    }
    first.snapshot()  # a restart from a snapshot written after the change
    restarted = Router(["a", "b"], embedder=None, store=_open(kind, where), sync_interval=None)
    assert restarted.arms == ("a", "b", "c") and restarted.counts["c"] == 10


def test_a_router_folds_feedback_for_a_model_another_router_added(tmp_path):
    path = tmp_path / "state.sqlite"
    adding = Router(["a", "b"], embedder=None, store=SQLiteStore(path), sync_interval=None)
    other = Router(["a", "b"], embedder=None, store=SQLiteStore(path), sync_interval=None)
    adding.add_arm("c")
    d = adding.select(_queries(1)[0], force="c")
    adding.record(d.id, quality=1.0, cost=0.0)
    assert other.sync() == 1 and other.counts["c"] == 1 and other.quarantined_events == 0


def _world(n: int, seed: int = 0):
    """'a' is right when x0 > 0, 'b' when x0 <= 0; 'new' (added late) is right everywhere."""
    x = _queries(n, seed)
    right_a = (x[:, 0] > 0).astype(float)
    quality = np.stack([right_a, 1 - right_a, np.ones(n)], axis=1)
    return x, quality, np.tile([0.001, 0.001, 0.002], (n, 1))


def test_quiz_picks_spread_out_queries_and_onboarding_places_the_new_model():
    x, quality, cost = _world(600)
    router = Router(["a", "b"], embedder=None, seed=0, cost_weight=0.0)
    router.fit(x, quality[:, :2], cost[:, :2], tune=False)
    router.add_arm("new")
    asked = router.quiz("new", x, n=20)
    assert len(asked) == len(set(asked)) == 20
    assert 0.2 < float(np.mean(x[asked, 0] > 0)) < 0.8  # both regions are asked
    test, test_quality, _ = _world(300, seed=7)

    def routed_quality() -> float:
        picks = np.argmax(router.predict(test, widths=False).quality, axis=1)
        return float(test_quality[np.arange(300), picks].mean())

    before = routed_quality()  # the new model predicted 0: never chosen
    router.onboard("new", x[asked], quality[asked, 2], cost[asked, 2])
    assert router.predict(test, widths=False).quality[:, 2].mean() > 0.6  # learned: it is good
    assert routed_quality() >= before - 0.01
    for bad in (0, "3", True):
        with pytest.raises(ConfigurationError, match="positive number"):
            router.quiz("new", x, n=bad)
    with pytest.raises(ConfigurationError, match="warm_start"):
        router.onboard("new", x[:2], [1, 1], [0, 0], warm_start="magic")
    with pytest.raises(ConfigurationError, match="pessimism"):
        router.onboard("new", x[:2], [1, 1], [0, 0], pessimism=-1.0)


def test_a_similar_start_copies_the_model_whose_predictions_match_the_answers():
    x, quality, cost = _world(600)
    router = Router(["a", "b"], embedder=None, seed=0, cost_weight=0.0)
    router.fit(x, quality[:, :2], cost[:, :2], tune=False)
    router.add_arm("twin")  # answers exactly as 'b' does
    asked = router.quiz("twin", x, n=10)
    router.onboard("twin", x[asked], quality[asked, 1], cost[asked, 2], warm_start="similar")
    test, _, _ = _world(200, seed=9)
    predicted = router.predict(test, widths=False).quality
    right_b = test[:, 0] <= 0
    assert predicted[right_b, 2].mean() > predicted[~right_b, 2].mean() + 0.5  # like 'b'
    assert np.corrcoef(predicted[:, 2], predicted[:, 1])[0, 1] > 0.95
    assert router.counts["twin"] == 10  # the copy's pseudo-outcomes are not counted


def test_pessimism_lowers_a_new_models_start_by_its_standard_error():
    """A weak newcomer (right 40% of the time, at random) must not take prompts on a guess."""
    x, quality, cost = _world(600)
    quality[:, 2] = (np.random.default_rng(5).random(600) < 0.4).astype(float)
    starts = {}
    for pessimism in (0.0, 1.0):
        router = Router(["a", "b"], embedder=None, seed=0, cost_weight=0.0)
        router.fit(x, quality[:, :2], cost[:, :2], tune=False)
        router.add_arm("new")
        asked = router.quiz("new", x, n=15)
        router.onboard("new", x[asked], quality[asked, 2], cost[asked, 2], pessimism=pessimism)
        starts[pessimism] = router.predict(x, widths=False).quality[:, 2].mean()
    assert starts[1.0] < starts[0.0] - 0.02


def test_a_prior_starts_a_new_model_at_its_mean_and_is_not_counted(tmp_path: Path) -> None:
    router = Router(["a", "b"], embedder=None, seed=0)
    for x in _queries(40):
        for arm in ("a", "b"):
            d = router.select(x, force=arm)
            router.record(d.id, quality=0.5, cost=0.001)
    router.add_arm("c", prior=(0.9, 0.002), prior_weight=20)
    predicted = router.predict(_queries(5, seed=3), widths=False)
    np.testing.assert_allclose(predicted.quality[:, 2], 0.9 * 20 / 21, rtol=1e-6)  # ridge: w/(w+l2)
    assert router.counts["c"] == 0
    saved = router.save(tmp_path / "router.npz")
    restored = Router.load(saved, embedder=None)
    assert restored.counts["c"] == 0  # the warm start's pseudo-outcomes stay uncounted
    with pytest.raises(ConfigurationError, match="prior_weight"):
        router.add_arm("d", prior=(0.5, 0.0), prior_weight=0)
    with pytest.raises(Exception, match="quality"):
        router.add_arm("e", prior=(1.5, 0.0))


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_store_refuses_a_router_over_another_pool_and_says_what_to_do(kind, tmp_path, request):
    kind, where = _target(kind, tmp_path, request)
    first = Router(["a", "b"], embedder=None, store=_open(kind, where), sync_interval=None)
    for names, why in (
        (["a", "c"], r"never had \['c'\]\) \(it lacks \['b'\]\)"),  # a typo of one name
        (["x", "y"], r"never had \['x', 'y'\]"),  # another app's pool on the same store
        (["a"], r"it lacks \['b'\]"),
    ):
        with pytest.raises(ConfigurationError, match=rf"routes among \['a', 'b'\].*{why}.*add_arm"):
            Router(names, embedder=None, store=_open(kind, where), sync_interval=None)
    first.add_arm("c")
    first.retire_arm("a")
    for names in (["a", "b"], ["a", "b", "c"], ["b", "c"]):  # before or after the changes
        later = Router(names, embedder=None, store=_open(kind, where), sync_interval=None)
        assert later.active_arms == ("b", "c")


def test_a_hostile_pool_setting_is_ignored_and_counted(tmp_path):
    store = SQLiteStore(tmp_path / "state.sqlite")
    store.claim_setting("pool", "{not json")
    router = Router(["a", "b"], embedder=None, store=SQLiteStore(tmp_path / "state.sqlite"))
    assert router.arms == ("a", "b")
    assert router.health()["refused_settings"] == 1
