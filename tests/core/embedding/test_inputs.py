"""Bad and huge inputs: typed errors, bounded work, bounded memory (real MiniLM)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from metallm import Router, SentenceTransformerEmbedder
from metallm.embedding._embedders import MAX_QUERY_CHARS, check_texts
from metallm.exceptions import EmptyQueryError, InvalidFeedbackError, InvalidInputError


def test_a_huge_prompt_is_cut_before_tokenizing_and_embeds_as_its_head(embedder):
    head = "The court weighed whether the precedent on contract damages still binds. " * 60
    huge = head + "x" * 10_000_000  # 10 MB
    embedder.embed(["warm up"])
    start = time.perf_counter()
    (vector,) = embedder.embed([huge])
    assert time.perf_counter() - start < 1.0
    np.testing.assert_allclose(vector, embedder.embed([head[:MAX_QUERY_CHARS]])[0], atol=1e-6)
    np.testing.assert_allclose(
        vector, embedder.embed([head])[0], atol=1e-6
    )  # the model reads 256 tokens anyway


def test_the_cache_holds_hashes_not_prompts_and_is_bounded_in_bytes(embedder):
    small = SentenceTransformerEmbedder(embedder.model_name, cache_bytes=20 * (384 * 8 + 200))
    texts = [f"question number {i} about the weather in town {i}" for i in range(50)]
    small.embed(texts)
    assert len(small._cache) == 20 and small._cached_bytes <= small.cache_bytes
    assert all(isinstance(key, bytes) and len(key) == 16 for key in small._cache)
    np.testing.assert_allclose(small.embed(texts[-1:])[0], embedder.embed(texts[-1:])[0], atol=1e-6)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (b"what is 2+2", InvalidInputError, "bytes, not a string .*decode"),
        ("half a pair \ud800 here", InvalidInputError, "not valid Unicode text"),
        ("   ", EmptyQueryError, "empty"),
        (42, InvalidInputError, "int, not a string"),
    ],
)
def test_bad_text_gets_a_typed_error(text, error, message):
    with pytest.raises(error, match=message):
        check_texts(["fine", text])


@pytest.mark.parametrize("quality", ["0.7", True, None, [0.5]])
def test_quality_must_be_a_number_not_something_that_converts(quality):
    router = Router(["a", "b"], embedder=None)
    decision = router.select(np.ones(3))
    with pytest.raises(InvalidFeedbackError, match="quality must be a number"):
        router.record(decision.id, quality=quality, cost=0.0)
    with pytest.raises(InvalidFeedbackError, match="cost must be a number"):
        router.record(decision.id, quality=0.5, cost="0.001")
    router.record(
        decision.id, quality=np.float32(0.5), cost=np.float64(0.001)
    )  # numpy numbers are fine
    assert router.n_updates == 1
