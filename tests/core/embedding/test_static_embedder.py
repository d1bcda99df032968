"""StaticEmbedder (model2vec) on a small static model built here, and distillation errors."""

from __future__ import annotations

import numpy as np
import pytest

from metallm.embedding._embedders import StaticEmbedder, distill_static_embedder
from metallm.exceptions import EmbedderError


def test_static_embeddings_are_unit_vectors_and_cached(static_model_dir):
    embedder = StaticEmbedder(static_model_dir)
    out = embedder.embed(["How do I bake bread?", "Why is Mars red?", "How do I bake bread?"])
    assert out.shape == (3, 16) and embedder.dimension == 16
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0)
    np.testing.assert_array_equal(out[0], out[2])
    assert list(embedder._cache) == ["How do I bake bread?", "Why is Mars red?"]


def test_a_missing_static_model_is_a_typed_error(tmp_path):
    with pytest.raises(EmbedderError, match="could not load the static embedder"):
        StaticEmbedder(str(tmp_path / "absent")).embed(["x"])


def test_distilling_an_unknown_model_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception):  # noqa: B017 - model2vec's own error for an unknown model
        distill_static_embedder(str(tmp_path / "out"), "no-such-org/no-such-model")


def test_threads_embedding_at_once_all_get_their_vectors(static_model_dir):
    import threading

    from metallm.embedding._embedders import StaticEmbedder

    embedder = StaticEmbedder(static_model_dir, cache_size=8)  # evictions while others read
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(200):
                assert embedder.embed([f"question {k} {i}", "shared"]).shape[0] == 2
        except BaseException as e:  # "Already borrowed", KeyError from the cache
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
