"""The README's no-keys quickstart runs as written and gives a routed answer with feedback."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(tag: str) -> str:
    match = re.search(
        rf"<!-- readme-test: {tag} -->\s*```python\n(.*?)```", README.read_text(), re.S
    )
    assert match, f"README has no python block tagged {tag}"
    return match.group(1)


def test_the_readme_opens_with_the_demo_and_the_test_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).splitlines()
    assert "metallm demo" in first_block[0]
    assert "pytest" in first_block[1]


def test_the_quickstart_runs_and_records_feedback():
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(_block("quickstart"), "README quickstart", "exec"), namespace)
    llm = namespace["llm"]
    assert sum(llm.router.counts.values()) == 1
    model, _, content = out.getvalue().splitlines()[0].partition(" -> ")
    assert model in ("small", "large")
    assert content in ("Paris.", "The capital of France is Paris.")


def test_the_llamaindex_example_runs_and_records_feedback():
    from llama_index.core import Settings

    saved = (Settings._llm, Settings._embed_model)
    namespace: dict = {}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(_block("llamaindex"), "README llamaindex", "exec"), namespace)
    finally:
        Settings._llm, Settings._embed_model = saved
    assert namespace["response"].source_nodes
    assert sum(namespace["llm"].router.counts.values()) == 1
