"""The fault matrix: real stores (SQLite files, a redis-server with AOF) under faults and hostile writers."""

from __future__ import annotations

import uuid

import pytest

from tests.stores import open_store


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(params=["sqlite", "redis"])
def shared(request, tmp_path):
    """A factory of stores on one shared place (a SQLite file, or a Redis prefix), and its kind."""
    if request.param == "sqlite":
        path = str(tmp_path / "shared.sqlite")
        return "sqlite", lambda **kw: open_store("sqlite", path, **kw)
    target = f"{request.getfixturevalue('redis_url')}#f{uuid.uuid4().hex[:8]}"
    return "redis", lambda **kw: open_store("redis", target, spool_dir=tmp_path / "spool", **kw)
