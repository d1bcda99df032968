"""Why this model: every decision carries each model's predictions, and renders them as a table."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import Router
from metallm.serving import Capabilities, Needs, explain


def _trained() -> Router:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    quality = np.stack([(X[:, 0] > 0), np.ones(300), np.zeros(300)], axis=1).astype(float)
    cost = np.tile([0.001, 0.01, 0.0001], (300, 1))
    return Router(["small", "large", "vision"], embedder=None, seed=0).fit(
        X, quality, cost, tune=False
    )


def test_the_metadata_carries_each_models_predictions_and_the_table_shows_them():
    router = _trained()
    query = np.array([2.0, 0.0, 0.0, 0.0])
    decision = router.select(query)
    predicted = router.predict(query[None])
    meta = decision.to_metadata()
    for k, arm in enumerate(router.arms):
        assert meta["predicted_quality"][arm] == pytest.approx(predicted.quality[0, k])
        assert meta["predicted_cost_usd"][arm] == pytest.approx(predicted.cost[0, k])
    table = decision.explain().splitlines()
    assert table[0].split() == ["model", "quality", "cost_usd", "bonus", "score"]
    best = max(decision.scores, key=decision.scores.get)
    assert table[1].split()[:2] == ["*", best] and decision.arm == best  # best score first
    assert table[-1] == "(the highest score; cost weight p = 0.1)"
    batch = router.select_batch(np.stack([query, query]))  # batches record them too
    assert batch[1].predicted_quality == pytest.approx(dict(decision.predicted_quality))


def test_a_routed_call_explains_its_exclusions_and_so_does_its_metadata():
    router = _trained()
    call = router.route(
        np.array([2.0, 0.0, 0.0, 0.0]),
        needs=Needs(images=True),
        capabilities={"small": Capabilities(image_inputs=False)},
    )
    text = call.explain()
    assert "small: excluded, no image inputs" in text and "* " in text
    metadata = call.succeeded(10, 20)
    assert explain(metadata) == text
