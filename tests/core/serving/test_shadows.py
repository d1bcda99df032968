"""Shadow routers: they see every query, log their choice and learn, and are never served."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from metallm import ConfigurationError, LinUCB, RedisStore, Router, SQLiteStore
from metallm.serving._shadows import parse_shadows
from metallm.state import FeedbackEvent

ARMS = ["cheap", "dear"]


def _queries(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 6))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _live(**kwargs) -> Router:
    shadows = {
        "thrifty": Router(ARMS, embedder=None, cost_weight=5.0, policy=LinUCB(alpha=0.0)),
        "lavish": Router(ARMS, embedder=None, cost_weight=0.0, policy=LinUCB(alpha=0.0, explore=0.2)),
    }  # fmt: skip
    return Router(ARMS, embedder=None, seed=0, shadows=shadows, **kwargs)


def _teach(router: Router, n: int = 60) -> None:
    """The dear model is better (1.0 vs 0.5) and costs 20 times more."""
    for x in _queries(n, seed=1):
        d = router.select(x)
        router.record(
            d.id, quality=1.0 if d.arm == "dear" else 0.5, cost=0.02 if d.arm == "dear" else 0.001
        )


@pytest.mark.parametrize(
    ("shadows", "says"),
    [
        ({"x": "a router"}, "must be a metallm.Router"),
        ({"x": Router(["cheap", "other"], embedder=None)}, "same models"),
        ({"x": Router(ARMS, embedder=None, prompt_length=True)}, "prompt's length"),
        ({"": Router(ARMS, embedder=None)}, "non-empty string"),
        (["not", "a", "mapping"], "must map a name"),
    ],
)
def test_a_wrong_shadow_is_a_configuration_error_that_says_what_is_wrong(shadows, says):
    with pytest.raises(ConfigurationError, match=says):
        Router(ARMS, embedder=None, shadows=shadows)


def test_a_router_is_not_its_own_shadow_and_shadows_have_none_of_their_own():
    live = Router(ARMS, embedder=None)
    with pytest.raises(ConfigurationError, match="the live router itself"):
        live.set_shadows({"me": live})
    nested = Router(ARMS, embedder=None, shadows={"s": Router(ARMS, embedder=None)})
    with pytest.raises(ConfigurationError, match="shadows of its own"):
        Router(ARMS, embedder=None, shadows={"n": nested})


def test_every_decision_logs_each_shadows_choice_and_distribution():
    router = _live()
    _teach(router)
    decision = router.select(_queries(1, seed=2)[0])
    shadows = decision.shadows
    assert set(shadows) == {"thrifty", "lavish"}
    assert shadows["thrifty"].arm == "cheap" and shadows["thrifty"].probabilities == {"cheap": 1.0}
    lavish = shadows["lavish"]  # greedy on quality, with 20% uniform exploration
    assert lavish.probabilities == pytest.approx({"dear": 0.9, "cheap": 0.1})
    assert lavish.propensity == lavish.probabilities[lavish.arm]
    meta = decision.to_metadata()["shadows"]
    assert meta["thrifty"] == {"model": "cheap", "propensity": 1.0}


def test_shadows_learn_every_outcome_the_live_router_learns():
    router = _live()
    _teach(router, n=40)
    for shadow in router.shadows.values():
        assert shadow.n_updates == router.n_updates == 40
        assert shadow.counts == router.counts


def test_exclusions_hold_for_the_shadows_too():
    router = _live()
    _teach(router)
    decision = router.select(_queries(1, seed=3)[0], exclude=["dear"])
    assert all(set(c.probabilities) == {"cheap"} for c in decision.shadows.values())


def test_a_batch_logs_the_shadows_row_by_row():
    router = _live()
    _teach(router)
    batch = router.select_batch(_queries(8, seed=4))
    assert all(d.shadows["thrifty"].arm == "cheap" for d in batch)
    assert {d.shadows["lavish"].arm for d in batch} <= set(ARMS)


def test_shadows_can_be_set_before_routing_but_not_after_without_a_store():
    live = Router(ARMS, embedder=None, growth=None)  # its pending decisions keep features only
    live.select(_queries(1)[0])
    with pytest.raises(ConfigurationError, match="before routing"):
        live.set_shadows({"s": Router(ARMS, embedder=None)})
    growing = Router(ARMS, embedder=None)  # capacity growth keeps embeddings: shadows can learn
    decision = growing.select(_queries(1)[0])
    growing.set_shadows({"s": Router(ARMS, embedder=None)})
    growing.record(decision.id, quality=1.0, cost=0.001)
    assert growing.shadows["s"].n_updates == 1


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_shadows_choices_reach_the_stores_log_through_the_ledger(kind, tmp_path, request):
    def store():
        if kind == "sqlite":
            return SQLiteStore(tmp_path / "log.sqlite")
        return RedisStore(request.getfixturevalue("redis_url"), prefix=f"sh-{tmp_path.name}")

    deciding = _live(store=store(), sync_interval=None)
    made = [deciding.select(x) for x in _queries(5)]
    grading = Router(ARMS, embedder=None, store=store(), sync_interval=None)  # another router
    for d in made:
        grading.record(d.id, quality=1.0, cost=0.001)
    events = [e for _, e in store().events_after(None) if isinstance(e, FeedbackEvent)]
    assert [parse_shadows(e.shadows) for e in events] == [d.shadows for d in made]
    deciding.sync()  # the deciding router's shadows learn what another router recorded
    assert deciding.shadows["thrifty"].n_updates == 5


def test_an_old_sqlite_file_gains_the_shadows_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    SQLiteStore(path)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE events DROP COLUMN shadows")
    db.execute("ALTER TABLE decisions DROP COLUMN shadows")
    db.commit()
    db.close()
    router = _live(store=SQLiteStore(path), sync_interval=None)
    d = router.select(_queries(1)[0])
    router.record(d.id, quality=1.0, cost=0.001)
    ((_, event),) = list(SQLiteStore(path).events_after(None))
    assert json.loads(event.shadows).keys() == {"thrifty", "lavish"}


def test_an_unreadable_shadow_entry_reads_as_none():
    assert parse_shadows("{not json") == {}
    assert parse_shadows('{"s": {"arm": "a"}}') == {}
    assert parse_shadows(None) == {}
