"""Every Python block in docs/ runs as written, page by page, against local stand-ins.

A page's blocks run in order in one fresh process (a later block may use what an earlier one
made, as a reader would run them), in an empty folder, with the providers' environment
variables pointing at the local OpenAI-compatible server (``OPENAI_BASE_URL``; the keys are
dummies) and ``REDIS_URL`` at the tests' redis-server: the code is the docs' code, unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from metallm.testing import OpenAICompatibleServer, ScriptedModel

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if "```python" in p.read_text())


def blocks(page: Path) -> list[str]:
    """The page's Python code blocks, in order."""
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


@pytest.fixture(scope="module")
def provider():
    """Answers any model name, as a provider would; tool calls fill the requested schema."""
    with OpenAICompatibleServer(
        {"mini": ScriptedModel(reply="hi")},
        default=ScriptedModel(reply="Paris is the capital of France.", tool_args="schema"),
    ) as server:
        yield server


def test_every_page_with_code_is_covered():
    names = {p.name for p in PAGES}
    assert {"budgets.md", "core.md", "deployment.md", "langchain.md", "providers.md"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_pages_code_runs_as_written(page, provider, redis_url, tmp_path):
    script = "\n\n".join(blocks(page))
    (tmp_path / "page.py").write_text(script)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OPENAI_API_KEY": "sk-docs",
        "OPENAI_BASE_URL": provider.base_url,
        "OPENAI_API_BASE": provider.base_url,  # LlamaIndex's OpenAI clients
        "TOGETHER_API_KEY": "docs",
        "REDIS_URL": redis_url,
    }
    result = subprocess.run(
        [sys.executable, "page.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"{page.name}:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
