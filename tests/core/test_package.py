"""The public surface of the core: exports, and no framework imports."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import metallm

CORE = Path(metallm.__file__).parent


PUBLIC_API = [
    "AllModelsFailedError",
    "Budget",
    "Capabilities",
    "ClusterFeatures",
    "ConfigurationError",
    "Cooldown",
    "Decision",
    "DecisionError",
    "EmbeddingFeatures",
    "EpsilonGreedy",
    "Fallbacks",
    "Feedback",
    "FeedbackSummary",
    "LinUCB",
    "MetaLLMError",
    "Needs",
    "NeighbourQuality",
    "NoCapableModelError",
    "OnnxEmbedder",
    "Prediction",
    "ProjectedFeatures",
    "RedisStore",
    "RoutedCall",
    "Router",
    "RouterHealth",
    "SQLiteStore",
    "SentenceTransformerEmbedder",
    "SquareCB",
    "StoreError",
    "__version__",
]
"""The public API, pinned: a change here is a change users see."""


def test_the_public_api_is_pinned():
    assert metallm.__all__ == PUBLIC_API


def test_the_public_api_stays_narrow():
    assert len(metallm.__all__) <= 30


def test_a_name_that_moved_still_imports_from_metallm_with_a_deprecation_warning():
    import warnings

    import metallm.exceptions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from metallm import UnknownDecisionError

    assert UnknownDecisionError is metallm.exceptions.UnknownDecisionError
    assert any(
        issubclass(w.category, DeprecationWarning) and "metallm.exceptions" in str(w.message)
        for w in caught
    )
    try:
        metallm.NoSuchName  # noqa: B018
    except AttributeError as e:
        assert "NoSuchName" in str(e)
    else:
        raise AssertionError("an unknown name must be an AttributeError")


def test_every_module_of_the_core_is_private_but_the_documented_ones():
    public = sorted(
        str(p.relative_to(CORE))
        for p in CORE.rglob("*.py")
        if not any(part.startswith("_") for part in p.relative_to(CORE).parts)
    )
    assert public == [
        "cli.py",
        "exceptions.py",
        "integrations.py",
        "testing/prompts.py",
        "testing/server.py",
    ]


def test_all_is_sorted_and_complete():
    public = {
        name
        for name, value in vars(metallm).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert metallm.__all__ == sorted(metallm.__all__, key=lambda n: (not n.isupper(), n))
    assert set(metallm.__all__) - {"__version__"} == public


def test_the_core_imports_no_framework():
    code = (
        "import sys, metallm, metallm.serving, metallm.embedding, metallm.integrations;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'langchain', 'llama_index', 'sentence_transformers', 'torch'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


FRAMEWORK_NAMES = (
    "metallm_langchain",
    "metallm_llamaindex",
    "langchain_core",
    "langchain_openai",
    "llama_index",
)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (of the module, classes, functions, attributes)."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for stmt in body:  # a bare string statement is a docstring (module, class, attribute)
            if (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                found.add(id(stmt.value))
    return found


def test_no_source_file_of_the_core_names_a_framework_in_an_import_or_a_string():
    offences = []
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
            ):
                names = [node.value]
            else:
                continue
            offences += [
                f"{path.relative_to(CORE)}:{node.lineno}: {n!r}"
                for n in names
                if any(f in n for f in FRAMEWORK_NAMES)
            ]
    assert not offences, offences


def test_the_checker_catches_a_framework_named_in_a_string(tmp_path):
    tree = ast.parse('"""docstrings may name metallm_langchain"""\nX = "metallm_langchain.demo"\n')
    docstrings = _docstrings(tree)
    strings = [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docstrings
    ]
    assert strings == ["metallm_langchain.demo"]
