"""The public surface of the core: exports, and no framework imports."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import metallm

CORE = Path(metallm.__file__).parent


def test_all_is_sorted_and_complete():
    public = {
        name for name, value in vars(metallm).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert metallm.__all__ == sorted(metallm.__all__, key=lambda n: (not n.isupper(), n))
    assert set(metallm.__all__) - {"__version__"} == public


def test_the_core_imports_no_framework():
    code = (
        "import sys, metallm, metallm.router, metallm.embedders;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'langchain', 'llama_index', 'sentence_transformers', 'torch'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_source_file_of_the_core_names_a_framework():
    for path in CORE.rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert "langchain" not in stripped and "llama_index" not in stripped, f"{path}: {line}"
