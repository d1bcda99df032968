"""The stores of the tests, in one place: real SQLite files and real redis-servers.

Every test, worker process and fixture that needs a store opens it here: ``open_store`` from a
kind and a target (a file, or ``redis://...#prefix``), ``start_redis`` / ``start_aof_redis`` for a
redis-server of Debian's package on a free loopback port. Fixtures over these live in
``tests/conftest.py`` (``redis_url``) and ``tests/faults/conftest.py`` (``shared``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from metallm import RedisStore, SQLiteStore


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_aof_redis(port: int, folder: Path, *, aof: bool = True) -> subprocess.Popen:
    """A real redis-server on ``port`` that persists every write (AOF, fsync always) in ``folder``.

    ``aof=False``: no persistence at all (a session-wide server whose data is throwaway).
    """
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: .ci/run installs Debian's redis-server package")
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "always"] if aof else ["--appendonly", "no"]
    )
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *persistence,
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            if client.ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("redis-server did not start")


def open_store(kind: str, target: str, **options: Any) -> SQLiteStore | RedisStore:
    """A store of ``kind`` (``"sqlite"``: a file path; ``"redis"``: ``URL#prefix``)."""
    if kind == "sqlite":
        return SQLiteStore(target, **options)
    url, _, prefix = target.rpartition("#")
    return RedisStore(url, prefix=prefix, **options)
