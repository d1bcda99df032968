"""The examples in the core's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import metallm

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(metallm.__path__, prefix="metallm.")
    if info.name != "metallm.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_examples_are_found():
    attempted = sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES)
    assert attempted >= 20


def _callables_without_args(modules: list[str]) -> list[str]:
    """Public callables with parameters whose docstring has no ``Args:`` (or ``Attributes:``).

    A method that implements a protocol's method (a store's ``append``, a feature map's
    ``transform``) is documented by the protocol, which must have ``Args:`` itself.
    """
    import inspect

    from metallm.embedding import Embedder
    from metallm.learning import FeatureMap, Policy
    from metallm.state import BudgetStore, StateStore
    from metallm.state._base import PoolStore, SettingsStore

    protocols = (StateStore, BudgetStore, PoolStore, SettingsStore, FeatureMap, Policy, Embedder)

    def by_protocol(cls: type, name: str) -> bool:
        for protocol in protocols:
            method = vars(protocol).get(name)
            if method is not None and "Args:" in (inspect.getdoc(method) or ""):
                if all(hasattr(cls, m) for m in vars(protocol) if not m.startswith("_")):
                    return True
        return False

    missing, seen = [], set()

    def check(obj: object, name: str) -> None:
        try:
            signature = inspect.signature(obj)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        params = [
            p for p in signature.parameters.values() if p.name not in ("self", "cls")
            and p.kind not in kinds
        ]  # fmt: skip
        doc = inspect.getdoc(obj) or ""
        if params and "Args:" not in doc and "Attributes:" not in doc:
            missing.append(name)

    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if id(obj) in seen or name.startswith("_"):
                continue
            seen.add(id(obj))
            if inspect.isclass(obj):
                if issubclass(obj, BaseException):
                    continue
                check(obj, name)
                for member, value in vars(obj).items():
                    if member.startswith("_") or not callable(value) or by_protocol(obj, member):
                        continue
                    if isinstance(value, (staticmethod, classmethod)):
                        value = value.__func__
                    check(value, f"{name}.{member}")
            elif callable(obj):
                check(obj, name)
    return missing


def test_the_public_api_documents_every_argument_google_style():
    """What ``metallm`` and its subpackages export says what each argument is for."""
    public = [
        "metallm",
        "metallm.integrations",
        "metallm.serving",
        "metallm.learning",
        "metallm.state",
        "metallm.embedding",
        "metallm.evaluation",
        "metallm.cli",
        "metallm.testing",
    ]
    assert _callables_without_args(public) == []


def test_no_docstring_uses_sphinx_roles_the_site_would_show_raw():
    import re
    from pathlib import Path

    role = re.compile(r":(class|meth|func|attr|mod|data|exc|obj):`")
    root = Path(metallm.__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for folder in ("shared/metallm", "metallm_langchain", "metallm_llamaindex")
        for path in sorted((root / folder).rglob("*.py"))
        if role.search(path.read_text())
    ]
    assert offenders == []
