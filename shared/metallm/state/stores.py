"""State stores: learned routing state that survives restarts and is shared by processes.

Every recorded feedback becomes an event (decision id, arm, embedding, quality, cost, time)
written durably *before* ``Router.record`` returns; the learned statistics are a fold of
those events (LinUCB statistics are plain sums). Snapshots of the statistics are taken
periodically so that loading is "snapshot + replay of the events after it".

* :class:`SQLiteStore` — the embedded default: one file, WAL mode, one transaction per event.
* :class:`RedisStore` — many processes on many machines: events go to a Redis Stream that
  every process folds, in stream order, into its local statistics.

Prompts are not stored: only embeddings (``store_prompts=True`` opts in).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from metallm.exceptions import DuplicateEventError, StateFileError, StoreError

__all__ = ["FeedbackEvent", "RedisStore", "SQLiteStore", "Snapshot", "StateStore"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackEvent:
    """One learned outcome: what ``Router.record`` appends."""

    decision_id: str
    arm: str
    embedding: np.ndarray
    quality: float
    cost: float
    time: float
    prompt: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Serialized router state (``Router.save`` bytes) covering events up to ``position``."""

    position: str
    data: bytes


@runtime_checkable
class StateStore(Protocol):
    """Where a router's feedback events and snapshots live."""

    store_prompts: bool

    def append(self, event: FeedbackEvent) -> str:
        """Write the event durably; returns its position.

        Raises :class:`~metallm.DuplicateEventError` on a duplicate decision id and
        :class:`~metallm.StoreError` when the store fails.
        """
        ...

    def events_after(self, position: str | None) -> Iterator[tuple[str, FeedbackEvent]]:
        """Events after ``position`` (all when None), in order, with their positions."""
        ...

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot of the learned state (older ones are dropped)."""
        ...

    def latest_snapshot(self) -> Snapshot | None:
        """The newest snapshot, or None."""
        ...

    def close(self) -> None:
        """Close this process's connection(s)."""
        ...


@contextmanager
def _driver_errors(
    store: object, what: str, errors: tuple[type[BaseException], ...]
) -> Iterator[None]:
    """Turn the driver's own errors into :class:`StoreError` naming the store and the operation."""
    try:
        yield
    except errors as e:
        raise StoreError(f"{store} could not {what}: {type(e).__name__}: {e}") from e


def _vector_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float64).tobytes()


def _vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float64)


class SQLiteStore:
    """Feedback events and snapshots in one SQLite file (WAL mode).

    Each ``append`` is one committed transaction, so an event is in the file when
    ``record`` returns; a process killed at any moment leaves a file that loads. With
    ``durable=True`` every commit is also flushed to the disk (``synchronous=FULL``), which
    survives power loss too at the price of an fsync per event.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        store_prompts: bool = False,
        durable: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.store_prompts = store_prompts
        self.durable = durable
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._timeout = timeout
        try:
            with self._db() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("""CREATE TABLE IF NOT EXISTS events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL UNIQUE,
                    arm TEXT NOT NULL, embedding BLOB NOT NULL, quality REAL NOT NULL,
                    cost REAL NOT NULL, time REAL NOT NULL, prompt TEXT)""")
                db.execute("""CREATE TABLE IF NOT EXISTS snapshots (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, position TEXT NOT NULL, data BLOB NOT NULL)""")
        except sqlite3.DatabaseError as e:
            raise StateFileError(self.path, f"not a usable SQLite store ({e})") from e

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            self._local.db = db
        return db

    def append(self, event: FeedbackEvent) -> str:
        """Write the event durably in one transaction; its position in the log."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            cursor = db.execute(
                "INSERT INTO events (decision_id, arm, embedding, quality, cost, time, prompt) VALUES (?,?,?,?,?,?,?)",
                (
                    event.decision_id,
                    event.arm,
                    _vector_bytes(event.embedding),
                    event.quality,
                    event.cost,
                    event.time,
                    event.prompt if self.store_prompts else None,
                ),
            )
            db.execute("COMMIT")
        except BaseException as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(e, sqlite3.IntegrityError):
                raise DuplicateEventError(
                    f"{self} already holds feedback for decision {event.decision_id}"
                ) from e
            if isinstance(e, sqlite3.Error):
                raise StoreError(
                    f"{self} could not append the event for decision {event.decision_id}: {e}"
                ) from e
            raise
        return str(cursor.lastrowid)

    def events_after(self, position: str | None) -> Iterator[tuple[str, FeedbackEvent]]:
        """Events after ``position`` (all when None), in log order, with their positions."""
        start = int(position) if position else 0
        with _driver_errors(self, "read its events", (sqlite3.Error,)):
            rows = self._db().execute(
                "SELECT seq, decision_id, arm, embedding, quality, cost, time, prompt FROM events WHERE seq > ? ORDER BY seq",
                (start,),
            )
            for seq, decision_id, arm, embedding, quality, cost, stamp, prompt in rows:
                yield (
                    str(seq),
                    FeedbackEvent(
                        decision_id, arm, _vector(embedding), quality, cost, stamp, prompt
                    ),
                )

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot of the learned state (older ones are dropped)."""
        db = self._db()
        with _driver_errors(self, "save a snapshot", (sqlite3.Error,)):
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "INSERT INTO snapshots (position, data) VALUES (?, ?)",
                    (snapshot.position, snapshot.data),
                )
                db.execute(
                    "DELETE FROM snapshots WHERE id NOT IN (SELECT id FROM snapshots ORDER BY id DESC LIMIT 2)"
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def latest_snapshot(self) -> Snapshot | None:
        """The newest snapshot, or None."""
        with _driver_errors(self, "read its snapshot", (sqlite3.Error,)):
            row = (
                self._db()
                .execute("SELECT position, data FROM snapshots ORDER BY id DESC LIMIT 1")
                .fetchone()
            )
        return None if row is None else Snapshot(str(row[0]), bytes(row[1]))

    def close(self) -> None:
        """Close this process's connection(s)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"


class RedisStore:
    """Feedback events in a Redis Stream, snapshots in a Redis key; for many processes.

    Every process appends its events to the stream and folds the stream, in stream order,
    into its own statistics, so all processes converge to the same state.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "metallm",
        store_prompts: bool = False,
        client: Any = None,
    ) -> None:
        if client is None:
            try:
                import redis
            except ImportError as e:  # pragma: no cover - depends on the install
                raise ImportError(
                    "RedisStore needs the redis package: pip install 'metallm[redis]'"
                ) from e
            client = redis.Redis.from_url(url)
        self.client = client
        try:
            from redis import RedisError

            self._errors: tuple[type[BaseException], ...] = (RedisError,)
        except ImportError:  # pragma: no cover - a client of another library was passed
            self._errors = ()
        self.url = url
        self.prefix = prefix
        self.store_prompts = store_prompts
        self.stream = f"{prefix}:events"
        self.snapshot_key = f"{prefix}:snapshot"
        self.ids_key = f"{prefix}:decision_ids"

    def append(self, event: FeedbackEvent) -> str:
        """Write the event durably in one transaction; its position in the log."""
        fields = {
            "decision_id": event.decision_id,
            "arm": event.arm,
            "embedding": _vector_bytes(event.embedding),
            "quality": repr(event.quality),
            "cost": repr(event.cost),
            "time": repr(event.time),
        }
        if self.store_prompts and event.prompt is not None:
            fields["prompt"] = event.prompt
        # One round trip: refuse a duplicate decision id, else add to the stream.
        script = self.client.register_script(
            "if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return false end "
            "return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))"
        )
        flat: list[Any] = []
        for key, value in fields.items():
            flat += [key, value]
        with _driver_errors(
            self, f"append the event for decision {event.decision_id}", self._errors
        ):
            position = script(keys=[self.ids_key, self.stream], args=[event.decision_id, *flat])
        if position is None:
            raise DuplicateEventError(
                f"{self} already holds feedback for decision {event.decision_id}"
            )
        return position.decode() if isinstance(position, bytes) else str(position)

    def events_after(self, position: str | None) -> Iterator[tuple[str, FeedbackEvent]]:
        """Events after ``position`` (all when None), in log order, with their positions."""
        start = "-" if not position else f"({position}"
        while True:
            with _driver_errors(self, "read its events", self._errors):
                batch = self.client.xrange(self.stream, min=start, max="+", count=1000)
            if not batch:
                return
            for raw_id, fields in batch:
                entry = {k.decode(): v for k, v in fields.items()}
                yield (
                    raw_id.decode(),
                    FeedbackEvent(
                        entry["decision_id"].decode(),
                        entry["arm"].decode(),
                        _vector(entry["embedding"]),
                        float(entry["quality"]),
                        float(entry["cost"]),
                        float(entry["time"]),
                        entry["prompt"].decode() if "prompt" in entry else None,
                    ),
                )
            start = f"({batch[-1][0].decode()}"

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot of the learned state (older ones are dropped)."""
        payload = json.dumps({"position": snapshot.position}).encode() + b"\n" + snapshot.data
        with _driver_errors(self, "save a snapshot", self._errors):
            self.client.set(self.snapshot_key, payload)

    def latest_snapshot(self) -> Snapshot | None:
        """The newest snapshot, or None."""
        with _driver_errors(self, "read its snapshot", self._errors):
            payload = self.client.get(self.snapshot_key)
        if payload is None:
            return None
        head, _, data = payload.partition(b"\n")
        try:
            position = json.loads(head)["position"]
        except (ValueError, KeyError) as e:
            raise StateFileError(
                f"redis:{self.snapshot_key}", f"the snapshot header is corrupt ({e})"
            ) from e
        return Snapshot(str(position), data)

    def close(self) -> None:
        """Close this process's connection(s)."""
        self.client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"


def snapshot_bytes(save: Any) -> bytes:
    """Bytes of a router state written by ``save(path)`` through a temporary file."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.npz"
        save(path)
        return path.read_bytes()
