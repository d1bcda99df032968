"""The default embedder: ONNX Runtime when installed, sentence-transformers otherwise, said once."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from metallm import ConfigurationError, Router, SentenceTransformerEmbedder
from metallm.embedding import _choice as choice
from metallm.embedding._cache import DiskCachedEmbedder
from metallm.embedding._choice import DEFAULT_QUANTIZE, default_embedder, make_embedder
from metallm.embedding._embedders import _SAID
from metallm.embedding._onnx import OnnxEmbedder
from metallm.exceptions import EmbedderError


def test_the_default_is_onnx_runtime_when_it_is_installed():
    embedder = default_embedder()
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.fallback and embedder.quantize is DEFAULT_QUANTIZE
    assert isinstance(Router(["a", "b"]).embedder, OnnxEmbedder)


def test_without_onnx_runtime_sentence_transformers_embeds_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(choice, "onnx_runtime_installed", lambda: False)
    _SAID.clear()
    with caplog.at_level(logging.WARNING, logger="metallm"):
        first, second = default_embedder(), Router(["a", "b"]).embedder
    assert isinstance(first, SentenceTransformerEmbedder)
    assert isinstance(second, SentenceTransformerEmbedder)
    warnings = [r for r in caplog.records if "onnxruntime is not installed" in r.getMessage()]
    assert len(warnings) == 1 and "metallm[fast]" in warnings[0].getMessage()


def test_a_model_onnx_cannot_load_falls_back_to_sentence_transformers_once(
    tmp_path, embedder, caplog
):
    _SAID.clear()
    broken = tmp_path / "model"
    broken.mkdir()  # a folder without modules.json: ONNX cannot export it
    with caplog.at_level(logging.WARNING, logger="metallm"):
        a = OnnxEmbedder(str(broken), cache_dir=tmp_path, fallback=True)
        b = OnnxEmbedder(str(broken), cache_dir=tmp_path, fallback=True)
        with pytest.raises(EmbedderError):  # sentence-transformers cannot load it either
            a.embed(["hi"])
        with pytest.raises(EmbedderError):
            b.embed(["hi"])
    assert isinstance(a.fallen_back, SentenceTransformerEmbedder)
    assert sum("not ONNX Runtime" in r.getMessage() for r in caplog.records) == 1
    # a model sentence-transformers can load is embedded by it, the same vectors
    working = OnnxEmbedder(embedder.model_name, cache_dir=tmp_path / "unwritable", fallback=True)
    (tmp_path / "unwritable").write_text("a file where the export folder should be")
    np.testing.assert_allclose(working.embed(["hi"]), embedder.embed(["hi"]), atol=1e-6)
    assert working.variant == "" and isinstance(working.fallen_back, SentenceTransformerEmbedder)


def test_without_fallback_a_broken_cache_is_a_typed_error(tmp_path, embedder):
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(EmbedderError, match="could not load"):
        OnnxEmbedder(embedder.model_name, cache_dir=tmp_path / "cache").embed(["hi"])


def test_embedders_by_name():
    assert isinstance(make_embedder("sentence-transformers"), SentenceTransformerEmbedder)
    fp32, int8 = make_embedder("onnx"), make_embedder("onnx-int8")
    assert isinstance(fp32, OnnxEmbedder) and not fp32.quantize and not fp32.fallback
    assert isinstance(int8, OnnxEmbedder) and int8.quantize
    with pytest.raises(ConfigurationError, match="unknown embedder 'bert'.*onnx-int8"):
        make_embedder("bert")


def test_the_disk_cache_never_mixes_vectors_of_two_variants(tmp_path):
    path = tmp_path / "embeddings.sqlite"
    keys = {
        DiskCachedEmbedder(make_embedder(kind), path).model_name
        for kind in ("sentence-transformers", "onnx", "onnx-int8")
    }
    assert len(keys) == 3
    int8 = DiskCachedEmbedder(make_embedder("onnx-int8"), path)
    reference = DiskCachedEmbedder(SentenceTransformerEmbedder(), path)
    text = ["Which wine goes with grilled fish?"]
    assert not np.allclose(int8.embed(text), reference.embed(text), atol=1e-4)


def test_onnx_embedders_of_one_model_share_one_loaded_session():
    a, b = OnnxEmbedder(), OnnxEmbedder()
    a.embed(["load"])
    b.embed(["load"])
    assert a._loaded is b._loaded and a.load_seconds is not None
    assert OnnxEmbedder(query_threads=1)._load() is not a._loaded  # other settings, own session
