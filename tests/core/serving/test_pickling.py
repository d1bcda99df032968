"""Pickling a router: its learned state travels, a store's connection or a budget never does."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from metallm import Budget, ConfigurationError, Router, SQLiteStore


def _fitted(**kwargs) -> Router:  # noqa: ANN003
    rng = np.random.default_rng(0)
    router = Router(["small", "large"], embedder=None, seed=0, **kwargs)
    queries = rng.normal(size=(60, 8))
    router.fit(queries, rng.random((60, 2)), rng.random((60, 2)) * 1e-3)
    return router


def test_a_pickled_router_predicts_and_decides_as_the_original():
    router = _fitted(cost_weight=0.3)
    decision = router.select(np.ones(8))
    router.record(decision.id, quality=1.0, cost=1e-4)
    copy = pickle.loads(pickle.dumps(router))
    probe = np.random.default_rng(1).normal(size=(5, 8))
    np.testing.assert_allclose(copy.predict(probe).quality, router.predict(probe).quality)
    assert (copy.arms, copy.cost_weight, copy.n_updates) == (router.arms, 0.3, router.n_updates)
    assert copy.pending_decisions == 0  # pending decisions are not state, as with save()
    assert copy.id != router.id


def test_a_retired_model_stays_retired_in_the_copy():
    router = _fitted()
    router.retire_arm("small")
    assert pickle.loads(pickle.dumps(router)).retired == frozenset({"small"})


@pytest.mark.parametrize("part", ["store", "budget"])
def test_a_router_with_a_store_or_a_budget_says_how_to_move_it_instead(tmp_path, part):
    if part == "store":
        router = Router(["a", "b"], embedder=None, store=SQLiteStore(tmp_path / "s.sqlite"))
    else:
        router = Router(["a", "b"], embedder=None, budget=Budget(usd_per_query=0.01))
    with pytest.raises(ConfigurationError, match=f"with a {part} cannot be pickled.*same store"):
        pickle.dumps(router)
