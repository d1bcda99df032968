"""The prompt's length as a feature: the cost model learns that a long prompt costs more."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import EmbeddingFeatures, ProjectedFeatures, Router
from metallm.exceptions import DimensionMismatchError
from metallm.learning._features import (
    ClusterFeatures,
    PromptLengthFeatures,
    feature_map_from_state,
    quality_dimension,
    with_prompt_length,
)


class TopicEmbedder:
    """Two topics, told apart by a keyword; length plays no part in the vector."""

    dimension = 4

    def embed(self, texts):
        return np.array([[1.0, 0, 0, 0] if "code" in t else [0, 1.0, 0, 0] for t in texts])


def _prompts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        ("code " if i % 2 else "poem ") + "word " * int(rng.integers(5, 2000)) for i in range(n)
    ]


def _outcomes(prompts):
    """Both models equally good; 'per-token' costs by length, 'flat' the same for every prompt."""
    length = np.array([len(p) for p in prompts], dtype=float)
    cost = np.stack([length * 1e-6, np.full(len(prompts), 2e-3)], axis=1)
    return np.ones((len(prompts), 2)), cost


def test_the_cost_model_learns_cost_grows_with_the_prompt_and_routing_follows():
    prompts = _prompts(400)
    quality, cost = _outcomes(prompts)
    router = Router(["per-token", "flat"], embedder=TopicEmbedder(), seed=0)
    assert router.reads_prompt_length  # on by default for a router that embeds text
    router.fit(prompts, quality, cost, tune=False)
    short, long = "code " + "word " * 10, "code " + "word " * 1900
    predicted = router.predict([short, long], widths=False).cost
    assert predicted[0, 0] == pytest.approx(len(short) * 1e-6, abs=2e-4)
    assert predicted[1, 0] == pytest.approx(len(long) * 1e-6, rel=0.1)
    assert predicted[:, 1] == pytest.approx([2e-3, 2e-3], rel=0.1)
    router.cost_weight = 1.0  # equal quality: the cheaper model for each prompt
    assert router.select(short).arm == "per-token"
    assert router.select(long).arm == "flat"
    # without the length, cost is one number per topic: the same choice for both prompts
    blind = Router(["per-token", "flat"], embedder=TopicEmbedder(), seed=0, prompt_length=False)
    blind.fit(prompts, quality, cost, tune=False)
    blind.cost_weight = 1.0
    assert blind.select(short).arm == blind.select(long).arm


def test_tuning_keeps_the_length_and_a_saved_router_reads_it_back(tmp_path):
    prompts = _prompts(320)
    quality, cost = _outcomes(prompts)
    router = Router(["per-token", "flat"], embedder=TopicEmbedder(), seed=0)
    router.fit(prompts, quality, cost, tune=True)
    assert isinstance(router.bandit.features, PromptLengthFeatures)
    router.save(tmp_path / "router.npz")
    restored = Router.load(tmp_path / "router.npz", embedder=TopicEmbedder())
    assert restored.reads_prompt_length
    np.testing.assert_allclose(restored.predict(prompts[:5]).cost, router.predict(prompts[:5]).cost)


def test_vectors_given_directly_must_carry_the_length():
    prompts = _prompts(50)
    quality, cost = _outcomes(prompts)
    router = Router(["per-token", "flat"], embedder=TopicEmbedder(), seed=0)
    router.fit(prompts, quality, cost, tune=False)
    with pytest.raises(DimensionMismatchError, match="with_prompt_length"):
        router.select(np.array([1.0, 0, 0, 0]))
    vectors = with_prompt_length(TopicEmbedder().embed(prompts[:1]), prompts[:1])
    assert router.select(vectors[0]).arm in ("per-token", "flat")
    assert not Router(["a", "b"], embedder=None).reads_prompt_length  # vectors only: off


@pytest.mark.parametrize(
    "inner", [EmbeddingFeatures(2.0), ProjectedFeatures(3), ClusterFeatures(2, 0.1, 1.0, 3.0)]
)
def test_the_length_comes_last_for_the_cost_model_only_and_survives_a_round_trip(inner):
    rng = np.random.default_rng(0)
    X = with_prompt_length(rng.normal(size=(20, 5)), ["x" * i for i in range(20)])
    fmap = PromptLengthFeatures(inner, l2=0.5).fit(X)
    F = fmap.transform(X)
    np.testing.assert_allclose(F[:, -1], X[:, -1])  # the length, for the cost model
    np.testing.assert_allclose(F[:, -2], 1.0)  # the inner map's bias: the quality model's last
    assert quality_dimension(fmap, 6) == F.shape[1] - 1 == quality_dimension(fmap.inner, 5)
    np.testing.assert_allclose(fmap.transform_one(X[3]), F[3])
    assert F.shape[1] == fmap.dimension(6) == len(fmap.penalties(6))
    assert fmap.penalties(6)[-1] == 0.5
    again = feature_map_from_state(*fmap.to_state())
    np.testing.assert_allclose(again.transform(X), F)


def test_quality_predictions_ignore_the_length_and_online_updates_equal_the_batch_fit():
    prompts = _prompts(120)
    quality, cost = _outcomes(prompts)
    quality[:, 0] = [len(p) % 2 for p in prompts]  # noise in length: must not leak into quality
    router = Router(["per-token", "flat"], embedder=TopicEmbedder(), seed=0)
    router.fit(prompts, quality, cost, tune=False)
    same_topic = ["code " + "word " * 10, "code " + "word " * 1500]
    predicted = router.predict(same_topic)
    assert predicted.quality[0, 0] == pytest.approx(predicted.quality[1, 0])  # length unseen
    assert predicted.cost[1, 0] > 10 * predicted.cost[0, 0]  # but cost sees it
    online = Router(
        ["per-token", "flat"], embedder=TopicEmbedder(), seed=0, features=router.bandit.features
    )
    for i, prompt in enumerate(prompts):
        for k, arm in enumerate(online.arms):
            decision = online.select(prompt, force=arm)
            online.record(decision.id, quality=quality[i, k], cost=cost[i, k])
    again = online.predict(same_topic)
    np.testing.assert_allclose(again.quality, predicted.quality, atol=1e-8)
    np.testing.assert_allclose(again.cost, predicted.cost, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(again.width, predicted.width, atol=1e-8)
