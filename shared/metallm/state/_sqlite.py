"""SQLiteStore: the event log, the decision ledger and snapshots in one SQLite file (WAL mode)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from metallm.exceptions import (
    ConfigurationError,
    CorruptStoreError,
    DuplicateEventError,
    StateFileError,
    StoreError,
    UnknownDecisionError,
)
from metallm.state._base import (
    MAX_EMBEDDING_BYTES,
    MAX_FIELD_BYTES,
    MAX_SNAPSHOT_BYTES,
    BudgetState,
    DecisionRecord,
    FeedbackEvent,
    MalformedEvent,
    Snapshot,
    checked_budget_state,
    oversize,
    unreadable_decision,
    vector,
    vector_bytes,
)

__all__ = ["SQLiteStore"]


def _seconds(value: object) -> float | None:
    """A stored latency, or None when absent or not a number of seconds."""
    if isinstance(value, (int, float)) and np.isfinite(value) and value >= 0:
        return float(value)
    return None


def _event_from_row(row: tuple[Any, ...]) -> FeedbackEvent | MalformedEvent:
    """One row of `_EVENT_SELECT` as an event (a `MalformedEvent` when it cannot be read)."""
    fields = {}
    problem = None
    for i, column in enumerate(_EVENT_COLUMNS):
        value, size = row[1 + 2 * i], row[2 + 2 * i]
        if value is None and size is not None:
            limit = MAX_EMBEDDING_BYTES if column == "embedding" else MAX_FIELD_BYTES
            problem = problem or oversize(column, size, limit)
        fields[column] = value
    quality, cost, stamp, failure, p, latency, replaces = row[1 + 2 * len(_EVENT_COLUMNS) :]
    decision_id = fields["decision_id"]
    shown = str(decision_id)[:80] if decision_id is not None else None
    if problem is not None:
        return MalformedEvent(problem, shown)
    embedding = fields["embedding"]
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in (quality, cost, stamp)
    ):
        return MalformedEvent(
            f"quality, cost or time is not a number: {str(quality)[:40]!r}, {str(cost)[:40]!r}",
            shown,
        )
    if not isinstance(embedding, bytes) or len(embedding) % 8:
        return MalformedEvent("the embedding is not float64s", shown)
    if replaces is not None and not (
        isinstance(replaces, (int, float)) and not isinstance(replaces, bool)
    ):
        return MalformedEvent(
            f"the grade it replaces is not a number: {str(replaces)[:40]!r}", shown
        )
    prompt, shadows, source = fields["prompt"], fields["shadows"], fields["source"]
    return FeedbackEvent(
        str(decision_id),
        str(fields["arm"]),
        vector(embedding),
        float(quality),
        float(cost),
        float(stamp),
        prompt if isinstance(prompt, str) else None,
        bool(failure),
        float(p) if isinstance(p, (int, float)) and 0 < p <= 1 else None,
        shadows if isinstance(shadows, str) else None,
        _seconds(latency),
        None if source is None else str(source),
        None if replaces is None else float(replaces),
    )


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL UNIQUE,
        arm TEXT NOT NULL, embedding BLOB NOT NULL, quality REAL NOT NULL,
        cost REAL NOT NULL, time REAL NOT NULL, prompt TEXT, failure INTEGER NOT NULL DEFAULT 0,
        propensity REAL, shadows TEXT, latency REAL, source TEXT, replaces REAL)""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT, position TEXT NOT NULL, data BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_id TEXT PRIMARY KEY, arm TEXT NOT NULL, embedding BLOB NOT NULL,
        cost_weight REAL NOT NULL, time REAL NOT NULL, expires REAL NOT NULL, session TEXT,
        run_id TEXT, propensity REAL, cost REAL, prompt TEXT, shadows TEXT, latency REAL,
        answer TEXT)""",
    "CREATE INDEX IF NOT EXISTS decisions_by_run ON decisions(run_id) WHERE run_id IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS budget_spend (
        name TEXT NOT NULL, period INTEGER NOT NULL, spent REAL NOT NULL, queries INTEGER NOT NULL,
        PRIMARY KEY (name, period))""",
    """CREATE TABLE IF NOT EXISTS budget_weight (name TEXT PRIMARY KEY, cost_weight REAL NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS pool (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, arm TEXT NOT NULL,
        time REAL NOT NULL)""",
)
_DECISION_COLUMNS = "decision_id, arm, embedding, cost_weight, time, expires, session, run_id, propensity, cost, prompt, shadows, latency"
_TEXT_COLUMNS = ("decision_id", "arm", "session", "run_id", "prompt", "shadows")


def _capped(column: str, limit: int) -> str:
    """SQL reading ``column`` only when it is at most ``limit`` bytes (else NULL), and its size."""
    return f"CASE WHEN length(CAST({column} AS BLOB)) <= {limit} THEN {column} END, length(CAST({column} AS BLOB))"


def _corrupt(e: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is damaged (not merely busy or full)."""
    text = str(e).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


_EVENT_COLUMNS = ("decision_id", "arm", "embedding", "prompt", "shadows", "source")
_EVENT_SELECT = (
    "SELECT seq, "
    + ", ".join(
        _capped(c, MAX_EMBEDDING_BYTES if c == "embedding" else MAX_FIELD_BYTES)
        for c in _EVENT_COLUMNS
    )
    + ", quality, cost, time, failure, propensity, latency, replaces FROM events"
)
_DECISION_SELECT = "SELECT " + ", ".join(
    _capped(c, MAX_EMBEDDING_BYTES if c == "embedding" else MAX_FIELD_BYTES)
    if c in (*_TEXT_COLUMNS, "embedding")
    else c
    for c in _DECISION_COLUMNS.split(", ")
)


class SQLiteStore:
    """Feedback events, pending decisions and snapshots in one SQLite file (WAL mode).

    Each ``append`` is one committed transaction, so an event is in the file when
    ``record`` returns; a process killed at any moment leaves a file that loads. With
    ``durable=True`` every commit is also flushed to the disk (``synchronous=FULL``), which
    survives power loss too at the price of an fsync per event.

    Expired decisions are kept ``expired_grace`` seconds past their expiry (so late feedback
    is told it expired, and when) and then purged. A write waits at most ``timeout`` seconds
    for another writer's lock, then fails as a `StoreError` (the router goes on).

    Args:
        path: The file (made when missing, in a folder that must exist: a typo in a folder's
            name is an error, not a new empty store).
        store_prompts: Keep each decision's prompt (for rules evaluated from the log).
        durable: Flush every commit to the disk (survives power loss; an fsync per event).
        timeout: Seconds a call waits for a lock before the store counts as unavailable.
        expired_grace: Seconds an expired decision is kept before it is purged.
        routing_timeout: Seconds the routing path waits (shorter: routing never stalls).
        create_folders: Make the missing folders of ``path`` (a new deployment's first start).

    Raises:
        ConfigurationError: The folder of ``path`` does not exist (and ``create_folders`` is
            False).
        StateFileError: The file is not a SQLite store.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        store_prompts: bool = False,
        durable: bool = False,
        timeout: float = 5.0,
        expired_grace: float = 86_400.0,
        routing_timeout: float = 0.25,
        create_folders: bool = False,
    ) -> None:
        self.path = Path(path)
        if create_folders:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.parent.is_dir():
            raise ConfigurationError(
                f"the folder {str(self.path.parent)!r} of the store {str(self.path)!r} does not "
                "exist (a typo in the path?): create it, or pass create_folders=True"
            )
        self.spool_dir = self.path.parent
        """Where feedback is spooled while the file cannot be written (beside it)."""
        self.spool_name = self.path.name
        self.store_prompts = store_prompts
        self.durable = durable
        self.expired_grace = expired_grace
        self._local = threading.local()
        self._timeout = timeout
        self.routing_timeout = routing_timeout
        """Seconds a write on the routing path (a decision's ledger entry, its cost) waits for the lock."""
        self._puts = 0
        deadline = time.monotonic() + timeout
        while (
            True
        ):  # several processes may open a new file at once: switching to WAL is not waited for
            try:
                self._set_up()
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise StateFileError(self.path, f"not a usable SQLite store ({e})") from e
                time.sleep(0.02)
            except sqlite3.DatabaseError as e:
                raise StateFileError(self.path, f"not a usable SQLite store ({e})") from e
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)
        self.persistence: str | None = "wal-full" if durable else "wal-normal"
        """An acknowledged write survives a crash of the process; with ``durable``, of the machine."""
        self.identity_problem: str | None = None
        """Why the file is no longer the one opened (deleted or replaced), or None."""

    def _set_up(self) -> None:
        """WAL mode and the tables (idempotent)."""
        db = self._db()
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            db.execute(statement)
        columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
        if "failure" not in columns:  # a file made by metallm 0.1
            db.execute("ALTER TABLE events ADD COLUMN failure INTEGER NOT NULL DEFAULT 0")
        if "propensity" not in columns:  # a file made before propensities were kept
            db.execute("ALTER TABLE events ADD COLUMN propensity REAL")
        if "shadows" not in columns:  # a file made before shadow routers were logged
            db.execute("ALTER TABLE events ADD COLUMN shadows TEXT")
        if "latency" not in columns:  # a file made before latency was learned
            db.execute("ALTER TABLE events ADD COLUMN latency REAL")
        if "source" not in columns:  # a file made before grades named their source
            db.execute("ALTER TABLE events ADD COLUMN source TEXT")
            db.execute("ALTER TABLE events ADD COLUMN replaces REAL")
        ledger = {row[1] for row in db.execute("PRAGMA table_info(decisions)")}
        if "shadows" not in ledger:
            db.execute("ALTER TABLE decisions ADD COLUMN shadows TEXT")
        if "latency" not in ledger:
            db.execute("ALTER TABLE decisions ADD COLUMN latency REAL")
        if "answer" not in ledger:  # a file made before answers were handed to graders
            db.execute("ALTER TABLE decisions ADD COLUMN answer TEXT")

    def _db(self, *, routing: bool = False) -> sqlite3.Connection:
        """This thread's connection; ``routing``: the one whose writes wait only ``routing_timeout``."""
        name = "routing_db" if routing else "db"
        db: sqlite3.Connection | None = getattr(self._local, name, None)
        if db is None:
            timeout = self.routing_timeout if routing else self._timeout
            db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            setattr(self._local, name, db)
        return db

    def _write(
        self,
        what: str,
        statements: Sequence[tuple[str, Sequence[object]]],
        *,
        routing: bool = False,
    ) -> int | None:
        """Run the statements in one immediate transaction; the last row id."""
        self._check_identity()
        db = self._db(routing=routing)
        try:
            db.execute("BEGIN IMMEDIATE")
            cursor = None
            for sql, args in statements:
                cursor = db.execute(sql, args)
            db.execute("COMMIT")
        except BaseException as e:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the transaction is gone with the error (a full disk, say)
            if isinstance(e, sqlite3.IntegrityError):
                raise DuplicateEventError(f"{self} already holds it: {what}") from e
            if isinstance(e, sqlite3.Error):
                raise self._error(e, what) from e
            raise
        return None if cursor is None else cursor.lastrowid

    def _check_identity(self) -> None:
        """Refuse to go on when the file at `path` is no longer the one opened.

        A deleted file would take every write into an unlinked inode that no other process
        (and no restart) ever reads; a replaced one holds another log.
        """
        try:
            stat = os.stat(self.path)
            identity = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            identity = None
        if identity != self._identity:
            self.identity_problem = (
                "was deleted" if identity is None else "was replaced by another file"
            )
            raise CorruptStoreError(
                f"{self}: the file {self.identity_problem} while in use; feedback is spooled "
                "locally until this process restarts: restore the file, or restart to open the "
                "new one"
            )

    def _error(self, e: sqlite3.Error, what: str) -> StoreError:
        """The typed error for a driver error: a damaged file is `CorruptStoreError`."""
        if _corrupt(e):
            return CorruptStoreError(
                f"{self} could not {what}: the file is damaged ({e}); restore it from a backup "
                f"(or recover it with `sqlite3 {self.path.name} .recover`) and restart"
            )
        return StoreError(f"{self} could not {what}: {type(e).__name__}: {e}")

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Check the file's identity, then turn driver errors into typed ones."""
        self._check_identity()
        try:
            yield
        except sqlite3.Error as e:
            raise self._error(e, what) from e

    def ping(self) -> None:
        """Raise `StoreError` when the file cannot be used now (cheap)."""
        self._check_identity()

    # -- the event log ------------------------------------------------------------------
    def append(self, event: FeedbackEvent) -> str:
        """Write the event durably in one transaction (settling its decision); its position."""
        insert = (
            "INSERT INTO events (decision_id, arm, embedding, quality, cost, time, prompt, failure, propensity, shadows, latency, source, replaces) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                event.decision_id,
                event.arm,
                vector_bytes(event.embedding),
                event.quality,
                event.cost,
                event.time,
                event.prompt if self.store_prompts else None,
                int(event.failure),
                event.propensity,
                event.shadows,
                event.latency,
                event.source,
                event.replaces,
            ),
        )
        settle = ("DELETE FROM decisions WHERE decision_id = ?", (event.decision_id,))
        try:
            position = self._write(
                f"append the event for decision {event.decision_id}", [insert, settle]
            )
        except DuplicateEventError as e:
            raise DuplicateEventError(
                f"{self} already holds feedback for decision {event.decision_id}"
            ) from e
        return str(position)

    def events_after(
        self, position: str | None
    ) -> Iterator[tuple[str, FeedbackEvent | MalformedEvent]]:
        """Events after ``position`` (all when None), in log order, with their positions.

        Fields over `MAX_EMBEDDING_BYTES` or
        `MAX_FIELD_BYTES` are never read into memory: the entry is
        a `MalformedEvent`.
        """
        start = _position(position, self)
        with self._reading("read its events"):
            rows = self._db().execute(_EVENT_SELECT + " WHERE seq > ? ORDER BY seq", (start,))
            for row in rows:
                yield str(row[0]), _event_from_row(row)

    def has_event(self, decision_id: str) -> bool:
        """Whether feedback for this decision is already in the log."""
        with self._reading("read its events"):
            row = (
                self._db()
                .execute("SELECT 1 FROM events WHERE decision_id = ?", (decision_id,))
                .fetchone()
            )
        return row is not None

    # -- the decision ledger ------------------------------------------------------------
    def put_decisions(self, records: Sequence[DecisionRecord]) -> None:
        """Keep these decisions in the ledger (one transaction), purging long-expired ones now and then."""
        rows = [
            (
                r.decision_id,
                r.arm,
                vector_bytes(r.embedding, np.float32),
                r.cost_weight,
                r.time,
                r.expires,
                r.session,
                r.run_id,
                r.propensity,
                r.cost,
                r.prompt if self.store_prompts else None,
                r.shadows,
                r.latency,
            )
            for r in records
        ]
        statements: list[tuple[str, Sequence[object]]] = [
            (
                f"INSERT OR REPLACE INTO decisions ({_DECISION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            for row in rows
        ]
        self._puts += 1
        if self._puts % 1000 == 1:
            statements.append(
                ("DELETE FROM decisions WHERE expires < ?", (time.time() - self.expired_grace,))
            )
        self._write("keep pending decisions", statements, routing=True)

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        """The ledger's record of a decision (also when expired but not yet purged), or None."""
        return self._one_decision("decision_id = ?", decision_id)

    def find_decision(self, run_id: str) -> DecisionRecord | None:
        """The latest pending decision made for a framework call's run id, or None."""
        return self._one_decision("run_id = ? ORDER BY time DESC", run_id)

    def _one_decision(self, where: str, key: str) -> DecisionRecord | None:
        with self._reading("read its decision ledger"):
            row = (
                self._db().execute(
                    f"{_DECISION_SELECT} FROM decisions WHERE {where} LIMIT 1", (key,)
                )
            ).fetchone()
        if row is None:
            return None
        values: dict[str, object] = {}
        i = 0
        for column in _DECISION_COLUMNS.split(", "):
            if column in (*_TEXT_COLUMNS, "embedding"):
                value, size = row[i], row[i + 1]
                i += 2
                if value is None and size is not None:
                    limit = MAX_EMBEDDING_BYTES if column == "embedding" else MAX_FIELD_BYTES
                    raise _unreadable(self, key, oversize(column, size, limit))
            else:
                value = row[i]
                i += 1
            values[column] = value
        return _decision(self, key, values)

    def set_decision_cost(
        self, decision_id: str, cost: float, latency: float | None = None
    ) -> None:
        """Attach the measured cost (USD) and latency (seconds) to a pending decision."""
        with self._reading("update its decision ledger"):
            self._db(routing=True).execute(
                "UPDATE decisions SET cost = ?, latency = ? WHERE decision_id = ?",
                (cost, latency, decision_id),
            )

    def keep_answer(self, decision_id: str, handoff: str) -> bool:
        """Attach a routed answer (JSON) to a pending decision, for a grading process.

        Args:
            decision_id: The decision.
            handoff: The answer, as JSON text.

        Returns:
            False when the decision is no longer pending (graded or expired).

        Raises:
            ConfigurationError: The store does not keep prompts (answers are kept only where
                prompts are: ``store_prompts=True``).
        """
        if not self.store_prompts:
            raise ConfigurationError(
                f"{self} does not keep prompts, so it keeps no answers either: open it with "
                "store_prompts=True to grade answers in another process"
            )
        with self._reading("update its decision ledger"):
            changed = self._db(routing=True).execute(
                "UPDATE decisions SET answer = ? WHERE decision_id = ? AND expires >= ?",
                (handoff, decision_id, time.time()),
            )
        return changed.rowcount > 0

    def answered_decisions(self, limit: int = 100) -> list[tuple[DecisionRecord, str]]:
        """The oldest pending decisions with an answer kept, and the answer's JSON.

        Args:
            limit: The most returned.
        """
        with self._reading("read its decision ledger"):
            rows = (
                self._db()
                .execute(
                    "SELECT decision_id, "
                    + _capped("answer", MAX_FIELD_BYTES)
                    + " FROM decisions WHERE answer IS NOT NULL AND expires >= ? ORDER BY time "
                    "LIMIT ?",
                    (time.time(), int(limit)),
                )
                .fetchall()
            )
        out = []
        for decision_id, answer, _ in rows:
            if answer is None or not isinstance(decision_id, str):
                continue  # over the size limit, or not metallm's: never read
            record = self.get_decision(decision_id)
            if record is not None:
                out.append((record, str(answer)))
        return out

    def pending_count(self) -> int:
        """Decisions in the ledger (expired ones not yet purged included)."""
        with self._reading("read its decision ledger"):
            (n,) = self._db().execute("SELECT COUNT(*) FROM decisions").fetchone()
        return int(n)

    # -- the pool -----------------------------------------------------------------------
    def add_pool_change(self, action: str, arm: str) -> str:
        """Append a pool change (``"add"`` or ``"retire"`` a model) in one transaction."""
        position = self._write(
            f"{action} model {arm!r}",
            [("INSERT INTO pool (action, arm, time) VALUES (?, ?, ?)", (action, arm, time.time()))],
        )
        return str(position)

    def pool_changes_after(self, position: str | None) -> list[tuple[str, str, str]]:
        """``(position, action, arm)`` after ``position`` (all when None), in order."""
        with self._reading("read its pool"):
            rows = self._db().execute(
                "SELECT seq, substr(CAST(action AS TEXT), 1, 40), substr(CAST(arm AS TEXT), 1, 1000) "
                "FROM pool WHERE seq > ? ORDER BY seq LIMIT 1000",
                (_position(position, self),),
            )
            return [(str(seq), str(action), str(arm)) for seq, action, arm in rows]

    # -- settings -----------------------------------------------------------------------
    def claim_setting(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless one is there already; the value it holds."""
        self._write(
            f"keep setting {name!r}",
            [("INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)", (name, value))],
        )
        held = self.setting(name)
        return value if held is None else held

    def setting(self, name: str) -> str | None:
        """The value held under ``name``, or None (a value that is not short text counts as none)."""
        with self._reading("read its settings"):
            row = (
                self._db()
                .execute(
                    "SELECT value FROM settings WHERE name = ? AND length(value) <= 1000", (name,)
                )
                .fetchone()
            )
        return None if row is None or not isinstance(row[0], str) else row[0]

    # -- budgets ------------------------------------------------------------------------
    def add_spend(
        self,
        name: str,
        period: int,
        *,
        cost: float,
        queries: int,
        change: float,
        floor: float,
        ceiling: float,
        initial: float,
    ) -> BudgetState:
        """Add to the period's spend and move the shared cost weight, in one transaction."""
        self._write(
            f"add to budget {name!r}",
            [
                (
                    "INSERT INTO budget_spend (name, period, spent, queries) VALUES (?,?,?,?) "
                    "ON CONFLICT(name, period) DO UPDATE SET spent = spent + excluded.spent, "
                    "queries = queries + excluded.queries",
                    (name, period, cost, queries),
                ),
                (
                    "INSERT OR IGNORE INTO budget_weight (name, cost_weight) VALUES (?, ?)",
                    (name, initial),
                ),
                (
                    "UPDATE budget_weight SET cost_weight = MIN(MAX(cost_weight + ?, ?), ?) "
                    "WHERE name = ?",
                    (change, floor, ceiling, name),
                ),
                ("DELETE FROM budget_spend WHERE name = ? AND period < ?", (name, period - 7)),
            ],
            routing=True,
        )
        return self.budget_state(name, period)

    def budget_state(self, name: str, period: int) -> BudgetState:
        """The budget's state for ``period`` (zero sums when nothing was spent in it yet)."""
        with self._reading(f"read budget {name!r}"):
            db = self._db(routing=True)
            rows = dict(
                (p, (spent, queries))
                for p, spent, queries in db.execute(
                    "SELECT period, spent, queries FROM budget_spend "
                    "WHERE name = ? AND period IN (?, ?)",
                    (name, period, period - 1),
                )
            )
            weight = db.execute(
                "SELECT cost_weight FROM budget_weight WHERE name = ?", (name,)
            ).fetchone()
        spent, queries = rows.get(period, (0.0, 0))
        return checked_budget_state(
            self,
            name,
            period,
            spent,
            queries,
            None if weight is None else weight[0],
            rows.get(period - 1, (0.0, 0))[1],
        )

    # -- snapshots ----------------------------------------------------------------------
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot of the learned state (older ones are dropped)."""
        self._write(
            "save a snapshot",
            [
                (
                    "INSERT INTO snapshots (position, data) VALUES (?, ?)",
                    (snapshot.position, snapshot.data),
                ),
                (
                    "DELETE FROM snapshots WHERE id NOT IN (SELECT id FROM snapshots ORDER BY id DESC LIMIT 2)",
                    (),
                ),
            ],
        )

    def latest_snapshot(self) -> Snapshot | None:
        """The newest snapshot, or None."""
        with self._reading("read its snapshot"):
            db = self._db()
            row = db.execute(
                "SELECT id, substr(CAST(position AS TEXT), 1, 40), length(data) FROM snapshots "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            snapshot_id, position, size = row
            if size is None or size > MAX_SNAPSHOT_BYTES:
                raise StateFileError(
                    f"{self} snapshot", oversize("data", size or 0, MAX_SNAPSHOT_BYTES)
                )
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            data = db.execute("SELECT data FROM snapshots WHERE id = ?", (snapshot_id,)).fetchone()
        text = str(position)
        if not text.isdigit() or int(text) > (0 if last is None else int(last[0])):
            raise StateFileError(
                f"{self} snapshot",
                f"its position {text!r} is not a position of the event log (which ends at "
                f"{0 if last is None else last[0]})",
            )
        if data is None or not isinstance(data[0], bytes):
            raise StateFileError(f"{self} snapshot", "its data is not bytes")
        return Snapshot(text, data[0])

    def close(self) -> None:
        """Close this thread's connections."""
        for name in ("db", "routing_db"):
            db = getattr(self._local, name, None)
            if db is not None:
                db.close()
                setattr(self._local, name, None)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"


def _position(position: str | None, store: object) -> int:
    """A position of the log as an integer (0: from the start); a foreign one is a StoreError."""
    if not position:
        return 0
    if not position.isdigit():
        raise StoreError(f"{store}: {position[:40]!r} is not a position of its event log")
    return int(position)


def _unreadable(store: object, key: str, why: str) -> UnknownDecisionError:
    return unreadable_decision(store, key, why)


def _decision(store: object, key: str, v: dict[str, object]) -> DecisionRecord:
    """A ledger row as a record; one another client wrote badly is an UnknownDecisionError."""

    def number(name: str, optional: bool = True) -> float | None:
        value = v[name]
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _unreadable(store, key, f"its {name} {str(value)[:40]!r} is not a number")
        return float(value)

    embedding = v["embedding"]
    if not isinstance(embedding, bytes) or len(embedding) % 4:
        raise _unreadable(store, key, "its embedding is not float32s")
    texts = {}
    for name in _TEXT_COLUMNS:
        value = v[name]
        if value is not None and not isinstance(value, str):
            raise _unreadable(store, key, f"its {name} is not text")
        texts[name] = value
    if texts["decision_id"] is None or texts["arm"] is None:
        raise _unreadable(store, key, "it has no decision id or model")
    return DecisionRecord(
        texts["decision_id"], texts["arm"], vector(embedding, np.float32),
        number("cost_weight", False), number("time", False), number("expires", False),  # type: ignore[arg-type]
        texts["session"], texts["run_id"], number("propensity"), number("cost"), texts["prompt"],
        texts["shadows"], _seconds(v["latency"]),
    )  # fmt: skip
