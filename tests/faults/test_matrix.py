"""The fault matrix: store x fault x worker shape, with real processes, stores and provider calls.

Every cell runs worker processes (``tests/faults/worker.py``) that answer through ``ChatMetaLLM``
over real ``ChatOpenAI`` clients talking HTTP to the local OpenAI-compatible server, and record
feedback, while the fault is injected and then lifted. After recovery a fresh router opens the
store (replaying what dead workers spooled) and each cell checks: every answer delivered, 0
acknowledged feedback lost, 0 doubled, the fresh router's statistics equal to a sequential fold
of the log, the worst routing decision within ``routing_timeout`` plus a stated margin, and every
error a typed metallm error. The table of all cells is written to ``$METALLM_FAULT_TABLE`` when
set (the closing note's table).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from metallm import RedisStore, Router, SQLiteStore
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from tests.faults import worker
from tests.stores import free_port, start_aof_redis

pytestmark = pytest.mark.slow  # seconds each: left out by `pytest -m "not slow"`

ROUTING_MARGIN = 0.5
"""Seconds a routing decision may take beyond ``routing_timeout`` on a loaded 2-core machine
(one embedding, one bounded ledger write, the GIL shared with the worker's other threads)."""
CALLS = 24
FAULT_AFTER = 6
FAULT_SECONDS = 1.0

FAULTS = {
    "sqlite": ["kill-worker", "locked", "disk-full", "deleted"],
    "redis": ["kill-worker", "kill-restart", "sigstop", "disk-full"],
}
SHAPES = ["1-thread", "4-threads", "2-processes", "router+grader"]
TABLE: list[dict] = []


@pytest.fixture(scope="module")
def provider():
    scripts = {m: ScriptedModel(reply=f"{m} answers", latency=0.01) for m in worker.ARMS}
    with OpenAICompatibleServer(scripts) as server:
        yield server


@pytest.fixture(scope="module")
def forks():
    """A fork server with LangChain, the OpenAI client and metallm imported once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.faults.worker"])
    return context


def _lines(paths: list[Path], kind: str) -> list[list[str]]:
    out = []
    for path in paths:
        if path.exists():
            out += [
                line.split(" ", 3)[1:]
                for line in path.read_text().splitlines()
                if line.startswith(kind + " ")
            ]
    return out


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


class Place:
    """Where a cell's store lives, and how to hurt it and heal it."""

    def __init__(self, kind: str, fault: str, tmp_path: Path) -> None:
        self.kind, self.fault, self.tmp = kind, fault, tmp_path
        self.mount: Path | None = None
        base = tmp_path
        if fault == "disk-full":
            self.mount = tmp_path / "small"
            self.mount.mkdir()
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(self.mount)], check=True
            )
            base = self.mount
        self.spool = base if kind == "sqlite" else tmp_path / "spool"
        self.redis: subprocess.Popen | None = None
        if kind == "sqlite":
            self.target: object = str(base / "shared.sqlite")
        else:
            self.port, self.folder = free_port(), base / "redis"
            self.folder.mkdir()
            self.redis = self._start_redis()
            self.target = (f"redis://127.0.0.1:{self.port}/0", f"m{uuid.uuid4().hex[:6]}")

    def _start_redis(self) -> subprocess.Popen:
        if self.fault != "disk-full":
            return start_aof_redis(self.port, self.folder)
        # appendfsync always makes Redis exit on a write error; everysec refuses writes and waits
        proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        _wait(lambda: _pings(redis.Redis(port=self.port)), 10, "redis-server")
        return proc

    def spec(self) -> dict:
        return {"kind": self.kind, "target": self.target, "spool": str(self.spool)}

    def open(self):
        if self.kind == "sqlite":
            return SQLiteStore(self.target)
        url, prefix = self.target
        return RedisStore(url, prefix=prefix, spool_dir=self.spool)

    def hurt(self, workers: list) -> object:
        """Inject the fault; returns what :meth:`heal` needs."""
        if self.fault == "kill-worker":
            os.kill(workers[-1].pid, signal.SIGKILL)  # the grader in router+grader
            return None
        if self.fault == "kill-restart":
            self.redis.send_signal(signal.SIGKILL)
            self.redis.wait()
            return None
        if self.fault == "sigstop":
            self.redis.send_signal(signal.SIGSTOP)
            return None
        if self.fault == "locked":
            holder = subprocess.Popen(
                [sys.executable, "-c",
                 "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
                 "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)",
                 self.target],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert holder.stdout.readline().strip() == "locked"
            return holder
        if self.fault == "disk-full":
            filler = self.mount / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 65536):
                    pass
            except OSError:  # full
                pass
            finally:
                os.close(fd)
            return filler
        if self.fault == "deleted":
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.target) + suffix).unlink(missing_ok=True)
            return None
        raise AssertionError(self.fault)

    def heal(self, token: object) -> None:
        if self.fault == "kill-restart":
            self.redis = start_aof_redis(self.port, self.folder)
        elif self.fault == "sigstop":
            self.redis.send_signal(signal.SIGCONT)
        elif self.fault == "locked":
            token.kill()
            token.wait()
        elif self.fault == "disk-full":
            Path(token).unlink()
            if self.redis is not None and self.redis.poll() is not None:
                self.redis = self._start_redis()

    def close(self) -> None:
        if self.redis is not None:
            self.redis.send_signal(signal.SIGCONT)
            self.redis.terminate()
            self.redis.wait(timeout=10)
        if self.mount is not None:
            subprocess.run(["umount", "-l", str(self.mount)], check=False)


def _sequential_fold(events, fresh: Router) -> np.ndarray | None:
    """The statistics of a router that learns every admissible event of the log, in order."""
    reference = Router(worker.ARMS, embedder=None, prompt_length=fresh.reads_prompt_length, seed=0)
    reference.bandit.features = fresh.bandit.features
    seen: set[str] = set()
    for _, event in events:
        if not hasattr(event, "arm") or event.decision_id in seen or event.arm not in worker.ARMS:
            continue
        seen.add(event.decision_id)
        reference.bandit.learn(
            worker.ARMS.index(event.arm), event.embedding, quality=event.quality,
            cost=event.cost, latency=event.latency,
        )  # fmt: skip
    return None if reference.bandit.stats is None else reference.bandit.stats.A


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("kind", "fault"), [(k, f) for k, fs in FAULTS.items() for f in fs])
def test_cell(kind, fault, shape, tmp_path, provider, forks, static_model_dir):
    place = Place(kind, fault, tmp_path)
    base = {**place.spec(), "base_url": provider.base_url, "static": static_model_dir}
    outs: list[Path] = []
    workers: list = []

    def start(mode: str, threads: int, grade: bool, **extra) -> None:
        out = tmp_path / f"w{len(outs)}.txt"
        spec = {**base, "mode": mode, "threads": threads, "grade": grade, "calls": CALLS,
                "out": str(out), **extra}  # fmt: skip
        process = forks.Process(target=worker.main, args=(spec,))
        process.start()
        outs.append(out)
        workers.append(process)

    try:
        if shape == "1-thread":
            start("route", 1, True)
        elif shape == "4-threads":
            start("route", 4, True)
        elif shape == "2-processes":
            start("route", 2, True)
            start("route", 2, True)
        else:
            start("route", 2, False)
            start("grade", 1, True, answers=str(outs[0]))
        grading = list(outs) if shape != "router+grader" else outs[1:]
        _wait(
            lambda: (
                len(_lines(grading, "acked")) >= FAULT_AFTER
                or not any(p.is_alive() for p in workers)
            ),
            120,
            "acknowledgements",
        )
        assert len(_lines(grading, "acked")) >= FAULT_AFTER, _lines(outs, "error")[:3]
        token = place.hurt(workers)
        if fault == "deleted":  # a write that began before the unlink ends in the unlinked file
            time.sleep(0.3)
        acked_before = {line[0] for line in _lines(grading, "acked")}
        time.sleep(FAULT_SECONDS)
        place.heal(token)
        if fault == "kill-worker" and shape == "router+grader":
            start("grade", 1, True, answers=str(outs[0]))  # a supervisor restarts the grader
        for process in workers:
            process.join(timeout=180)
            assert not process.is_alive(), "a worker hung"
        answered = _lines(outs, "answered")
        acked = {line[0] for line in _lines(outs, "acked")}
        errors = _lines(outs, "error")
        # recovery: a fresh process opens the store, replaying what dead workers left spooled
        recovered = tmp_path / "fresh.npz"
        process = forks.Process(
            target=worker.main, args=({**base, "mode": "fresh", "out": str(recovered)},)
        )
        process.start()
        process.join(timeout=120)
        assert process.exitcode == 0, "the fresh process failed"
        with np.load(recovered) as saved:
            fresh_stats, fresh_health = saved["A"], json.loads(str(saved["health"]))
        fresh = Router(worker.ARMS, embedder=None, store=place.open(), sync_interval=None)
        events = list(fresh.store.events_after(None))
        logged = [event.decision_id for _, event in events if hasattr(event, "arm")]
        counts = Counter(logged)
        # a deleted file takes what was acknowledged into it along: the rest must survive
        kept = acked - acked_before if fault == "deleted" else acked
        lost = sorted(kept - set(logged))
        doubled = sorted(d for d, n in counts.items() if n > 1)
        latency = max(float(line[1]) for line in answered)
        killed = fault == "kill-worker" and shape != "router+grader"
        expected_answers = CALLS * (2 if shape == "2-processes" else 1)
        untyped = [e for e in errors if e[1] != "1"]
        TABLE.append(
            {
                "store": kind, "fault": fault, "shape": shape, "answers": len(answered),
                "acknowledged": len(acked), "lost": len(lost), "doubled": len(doubled),
                "worst_routing_s": round(latency, 3), "typed_errors": len(errors) - len(untyped),
                "untyped_errors": len(untyped),
            }
        )  # fmt: skip
        assert lost == [] and doubled == []
        assert untyped == [], untyped
        if killed:
            assert len(answered) >= FAULT_AFTER
        else:
            assert len(answered) == expected_answers, errors
        assert latency <= worker.ROUTING_TIMEOUT + ROUTING_MARGIN, latency
        assert fresh_health["spooled_events"] == 0 and fresh_health["store_available"] is True
        folded = _sequential_fold(events, fresh)
        if folded is None:  # an empty log (a deleted file took everything): nothing learned
            assert fresh_stats.size == 0
        else:
            np.testing.assert_allclose(fresh_stats, folded, rtol=1e-9, atol=1e-9)
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
        place.close()
        table = os.environ.get("METALLM_FAULT_TABLE")
        if table:
            Path(table).write_text(json.dumps(TABLE, indent=1))
