"""SQLiteStore: the event log, the decision ledger and snapshots in one SQLite file (WAL mode)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from metallm.exceptions import DuplicateEventError, StateFileError, StoreError
from metallm.state.base import (
    BudgetState,
    DecisionRecord,
    FeedbackEvent,
    MalformedEvent,
    Snapshot,
    driver_errors,
    vector,
    vector_bytes,
)

__all__ = ["SQLiteStore"]


def _seconds(value: object) -> float | None:
    """A stored latency, or None when absent or not a number of seconds."""
    if isinstance(value, (int, float)) and np.isfinite(value) and value >= 0:
        return float(value)
    return None


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL UNIQUE,
        arm TEXT NOT NULL, embedding BLOB NOT NULL, quality REAL NOT NULL,
        cost REAL NOT NULL, time REAL NOT NULL, prompt TEXT, failure INTEGER NOT NULL DEFAULT 0,
        propensity REAL, shadows TEXT, latency REAL)""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT, position TEXT NOT NULL, data BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_id TEXT PRIMARY KEY, arm TEXT NOT NULL, embedding BLOB NOT NULL,
        cost_weight REAL NOT NULL, time REAL NOT NULL, expires REAL NOT NULL, session TEXT,
        run_id TEXT, propensity REAL, cost REAL, prompt TEXT, shadows TEXT, latency REAL)""",
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


class SQLiteStore:
    """Feedback events, pending decisions and snapshots in one SQLite file (WAL mode).

    Each ``append`` is one committed transaction, so an event is in the file when
    ``record`` returns; a process killed at any moment leaves a file that loads. With
    ``durable=True`` every commit is also flushed to the disk (``synchronous=FULL``), which
    survives power loss too at the price of an fsync per event.

    Expired decisions are kept ``expired_grace`` seconds past their expiry (so late feedback
    is told it expired, and when) and then purged. A write waits at most ``timeout`` seconds
    for another writer's lock, then fails as a :class:`~metallm.StoreError` (the router goes on).
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
    ) -> None:
        self.path = Path(path)
        self.spool_dir = self.path.parent
        """Where feedback is spooled while the file cannot be written (beside it)."""
        self.spool_name = self.path.name
        self.store_prompts = store_prompts
        self.durable = durable
        self.expired_grace = expired_grace
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
        ledger = {row[1] for row in db.execute("PRAGMA table_info(decisions)")}
        if "shadows" not in ledger:
            db.execute("ALTER TABLE decisions ADD COLUMN shadows TEXT")
        if "latency" not in ledger:
            db.execute("ALTER TABLE decisions ADD COLUMN latency REAL")

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
        db = self._db(routing=routing)
        try:
            db.execute("BEGIN IMMEDIATE")
            cursor = None
            for sql, args in statements:
                cursor = db.execute(sql, args)
            db.execute("COMMIT")
        except BaseException as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(e, sqlite3.IntegrityError):
                raise DuplicateEventError(f"{self} already holds it: {what}") from e
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"{self} could not {what}: {type(e).__name__}: {e}") from e
            raise
        return None if cursor is None else cursor.lastrowid

    # -- the event log ------------------------------------------------------------------
    def append(self, event: FeedbackEvent) -> str:
        """Write the event durably in one transaction (settling its decision); its position."""
        insert = (
            "INSERT INTO events (decision_id, arm, embedding, quality, cost, time, prompt, failure, propensity, shadows, latency) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
        """Events after ``position`` (all when None), in log order, with their positions."""
        start = int(position) if position else 0
        with driver_errors(self, "read its events", (sqlite3.Error,)):
            rows = self._db().execute(
                "SELECT seq, decision_id, arm, embedding, quality, cost, time, prompt, failure, propensity, shadows, latency FROM events WHERE seq > ? ORDER BY seq",
                (start,),
            )
            for row in rows:
                (
                    seq,
                    decision_id,
                    arm,
                    embedding,
                    quality,
                    cost,
                    stamp,
                    prompt,
                    failure,
                    p,
                    shadows,
                    latency,
                ) = row
                if not all(isinstance(v, (int, float)) for v in (quality, cost, stamp)):
                    yield (
                        str(seq),
                        MalformedEvent(
                            f"quality, cost or time is not a number: {quality!r}, {cost!r}",
                            str(decision_id),
                        ),
                    )
                    continue
                if not isinstance(embedding, bytes) or len(embedding) % 8:
                    yield (
                        str(seq),
                        MalformedEvent("the embedding is not float64s", str(decision_id)),
                    )
                    continue
                yield (
                    str(seq),
                    FeedbackEvent(
                        str(decision_id),
                        str(arm),
                        vector(embedding),
                        quality,
                        cost,
                        stamp,
                        prompt,
                        bool(failure),
                        float(p) if isinstance(p, (int, float)) and 0 < p <= 1 else None,
                        shadows if isinstance(shadows, str) else None,
                        _seconds(latency),
                    ),
                )

    def has_event(self, decision_id: str) -> bool:
        """Whether feedback for this decision is already in the log."""
        with driver_errors(self, "read its events", (sqlite3.Error,)):
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
        with driver_errors(self, "read its decision ledger", (sqlite3.Error,)):
            row = (
                self._db()
                .execute(f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE {where} LIMIT 1", (key,))
                .fetchone()
            )
        if row is None:
            return None
        (
            decision_id,
            arm,
            embedding,
            cost_weight,
            stamp,
            expires,
            session,
            run_id,
            propensity,
            cost,
            prompt,
            shadows,
            latency,
        ) = row
        return DecisionRecord(
            decision_id, arm, vector(embedding, np.float32), cost_weight, stamp, expires,
            session, run_id, propensity, cost, prompt, shadows, _seconds(latency),
        )  # fmt: skip

    def set_decision_cost(
        self, decision_id: str, cost: float, latency: float | None = None
    ) -> None:
        """Attach the measured cost (USD) and latency (seconds) to a pending decision."""
        with driver_errors(self, "update its decision ledger", (sqlite3.Error,)):
            self._db(routing=True).execute(
                "UPDATE decisions SET cost = ?, latency = ? WHERE decision_id = ?",
                (cost, latency, decision_id),
            )

    def pending_count(self) -> int:
        """Decisions in the ledger (expired ones not yet purged included)."""
        with driver_errors(self, "read its decision ledger", (sqlite3.Error,)):
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
        with driver_errors(self, "read its pool", (sqlite3.Error,)):
            rows = self._db().execute(
                "SELECT seq, action, arm FROM pool WHERE seq > ? ORDER BY seq",
                (int(position) if position else 0,),
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
        with driver_errors(self, "read its settings", (sqlite3.Error,)):
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
        with driver_errors(self, f"read budget {name!r}", (sqlite3.Error,)):
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
        return BudgetState(
            period,
            float(spent),
            int(queries),
            None if weight is None else float(weight[0]),
            int(rows.get(period - 1, (0.0, 0))[1]),
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
        with driver_errors(self, "read its snapshot", (sqlite3.Error,)):
            row = (
                self._db()
                .execute("SELECT position, data FROM snapshots ORDER BY id DESC LIMIT 1")
                .fetchone()
            )
        return None if row is None else Snapshot(str(row[0]), bytes(row[1]))

    def close(self) -> None:
        """Close this thread's connections."""
        for name in ("db", "routing_db"):
            db = getattr(self._local, name, None)
            if db is not None:
                db.close()
                setattr(self._local, name, None)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
