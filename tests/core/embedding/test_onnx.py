"""OnnxEmbedder: the real MiniLM exported to ONNX here, run by ONNX Runtime; the same embeddings."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from metallm import Router
from metallm.embedding._onnx import OnnxEmbedder
from metallm.exceptions import EmbedderError

TEXTS = [
    "What is the capital of France?",
    "Please explain briefly how a court decides whether an earlier precedent on contract damages "
    "should be overruled when the facts of the new case differ in important ways",
    "12 * 7 = ?",
    "Why do stars twinkle at night while the planets shine steadily?",
    "héllo wörld, ça va? 日本語のテキストも",
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def onnx(onnx_dir):
    return OnnxEmbedder(cache_dir=onnx_dir)


def test_fp32_embeddings_match_sentence_transformers(onnx, embedder):
    expected = embedder.embed(TEXTS)
    batch = onnx.embed(TEXTS)  # padded batch, all cores
    single = np.stack(
        [OnnxEmbedder(cache_dir=onnx.cache_dir).embed([t])[0] for t in TEXTS]
    )  # one thread each
    for got in (batch, single):
        cosine = (
            (got * expected).sum(axis=1)
            / np.linalg.norm(got, axis=1)
            / np.linalg.norm(expected, axis=1)
        )
        assert cosine.min() >= 0.9999, cosine
    assert batch.shape == (len(TEXTS), 384) and onnx.dimension == 384


def test_int8_is_close_and_the_export_is_cached(onnx, onnx_dir, embedder, caplog):
    onnx.embed(["make sure the fp32 export exists"])
    exported = sorted(p.name for p in onnx_dir.iterdir())
    with caplog.at_level(logging.INFO, logger="metallm"):
        start = time.perf_counter()
        # other settings: opened anew from the cached file, as a second process would
        again = OnnxEmbedder(cache_dir=onnx_dir, query_threads=3)
        again.embed(["a second process loads the cached file"])
        load_seconds = time.perf_counter() - start
    assert "metallm loaded OnnxEmbedder" in caplog.text and again.load_seconds is not None
    assert "exporting" not in caplog.text and load_seconds < 5  # no second export
    int8 = OnnxEmbedder(cache_dir=onnx_dir, quantize=True).embed(TEXTS)
    expected = embedder.embed(TEXTS)
    assert ((int8 * expected).sum(axis=1)).min() >= 0.9  # int8 is opt-in: measured 0.93-0.98 here
    assert len(exported) == 1 and any(p.name.endswith("-int8.onnx") for p in onnx_dir.iterdir())


def test_a_router_routes_text_with_it(onnx):
    router = Router(["a", "b"], embedder=onnx, seed=0)
    decision = router.select("Which wine goes with grilled fish?")
    router.record(decision.id, quality=1.0, cost=0.001)
    assert router.n_updates == 1 and router.dimension == 385  # and the prompt's length


def test_a_huge_prompt_is_cut_before_tokenizing(onnx):
    head = "The court weighed whether the precedent still binds. " * 100
    start = time.perf_counter()
    (vector,) = onnx.embed([head + "x" * 10_000_000])
    assert time.perf_counter() - start < 1.0
    np.testing.assert_allclose(vector, onnx.embed([head])[0], atol=1e-6)


def test_a_hub_name_offline_and_not_cached_is_a_clear_error(tmp_path):
    with pytest.raises(EmbedderError, match="not in the HuggingFace cache and HF_HUB_OFFLINE"):
        OnnxEmbedder("metallm-tests/not-cached", cache_dir=tmp_path).embed(["hi"])
