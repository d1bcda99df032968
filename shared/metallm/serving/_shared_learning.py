"""Learning through a store many processes share: the log, the ledger, the spool, the snapshots.

Every ``record`` appends one event to the store's log (or, while the store cannot be reached,
to a local spool replayed when it is back), and every process folds the log in the store's
order, so all processes that have folded the same events hold exactly the same statistics.
Decisions go to the store's ledger, so feedback works from any process; snapshots let a new
process start from "snapshot + the events after it".
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from metallm.exceptions import (
    ConfigurationError,
    CorruptStoreError,
    DuplicateFeedbackError,
    LogTrimmedError,
    StoreError,
    UnknownDecisionError,
)
from metallm.learning import PromptLengthFeatures
from metallm.serving import _persistence as persistence
from metallm.serving._grades import (
    DEFAULT_SOURCE,
    GradeBook,
    GradeInForce,
    base_id,
    correction_id,
    source_rank,
)
from metallm.serving._learner import Learner
from metallm.serving._learning import Learning, LocalLearning, Pending
from metallm.serving._ledger import PendingDecisions
from metallm.serving._spool import Spool
from metallm.serving._sync import StoreSync, pool_change_problem
from metallm.state import (
    BudgetStore,
    DecisionRecord,
    FeedbackEvent,
    MalformedEvent,
    PoolStore,
    SettingsStore,
    StateStore,
    snapshot_bytes,
)

if TYPE_CHECKING:
    from metallm.serving._decisions import Decision

__all__ = ["LEDGER_BACKLOG", "SharedLearning", "learning_for"]

logger = logging.getLogger("metallm.serving._router")

LEDGER_BACKLOG = 100_000
"""Decisions kept for the store's ledger while it cannot take them (about 160 MB of MiniLM vectors)."""


class SharedLearning:
    """A router's learning through a store (see the module's docstring).

    Args:
        store: The store shared with other processes.
        learner: The router's learned state.
        ledger: The decisions awaiting feedback in this process's memory.
        snapshot_every: Events between two snapshots in the store.
        sync_interval: Seconds between automatic syncs (None: never).
        feedback_ttl: Seconds a decision waits for its feedback (the store's ledger expiry).
        decides_features: Whether this router may say how vectors are read (it embeds text, or
            its caller set ``prompt_length``); one that may not follows the store's setting.
        prompt_length_given: The caller's ``prompt_length`` (None: left open).
        clock: Seconds, for backoff and due syncs.
    """

    def __init__(
        self,
        store: StateStore,
        learner: Learner,
        ledger: PendingDecisions,
        *,
        snapshot_every: int,
        sync_interval: float | None,
        feedback_ttl: float,
        decides_features: bool,
        prompt_length_given: bool | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._learner = learner
        self._ledger = ledger
        self._feedback_ttl = feedback_ttl
        self._decides_features = decides_features
        self._prompt_length_given = prompt_length_given
        self._sync = StoreSync(
            store, snapshot_every=snapshot_every, sync_interval=sync_interval, clock=clock
        )
        self.spool = Spool(store.spool_dir, store.spool_name)
        """Feedback events waiting for the store (while it cannot be reached)."""
        self.grades = GradeBook(ledger.max_pending)
        """The latest graded decisions' grades in force, from every process's events."""
        self.ledger_errors = 0
        """Decisions the store's ledger could not take when they were made (written by a later sync)."""
        self.ledger_dropped = 0
        """Decisions dropped from the backlog for the store's ledger (over ``LEDGER_BACKLOG``)."""
        self._ledger_backlog: deque[DecisionRecord] = deque(maxlen=LEDGER_BACKLOG)
        self._cost_backlog: deque[str] = deque(maxlen=LEDGER_BACKLOG)
        self._sync_lock = threading.Lock()
        self._syncing: threading.Thread | None = None
        self._sync_start_lock = threading.Lock()
        self._features_agreed = False
        self._starting = False
        self._pool_position: str | None = None
        self.before_sync: Callable[[], None] = lambda: None
        """Called at the start of each sync (a budget reads the shared spend there)."""

    def start(self) -> None:
        """Catch up with the store now; a damaged store is an error now, not a silent empty start.

        Raises:
            ConfigurationError: The store's routers read vectors another way than this one.
            CorruptStoreError: The store holds what no metallm router wrote.
        """
        if not self._reachable_at_start():
            return
        self._agree_on_features(at_start=True)
        self._agree_on_pool()
        self._starting = True
        try:
            self.sync()
        finally:
            self._starting = False

    # -- what it reports ----------------------------------------------------------------
    @property
    def learns_on_embeddings(self) -> bool:
        """Always: the log's events carry embeddings, and each process learns its own features."""
        return True

    @property
    def keeps_prompts(self) -> bool:
        """Whether the store keeps prompts (``store_prompts``)."""
        return bool(self.store.store_prompts)

    snapshot_every = property(
        lambda self: self._sync.snapshot_every, doc="Events between snapshots."
    )
    sync_interval = property(lambda self: self._sync.sync_interval, doc="Seconds between syncs.")
    restored_from_log = property(
        lambda self: self._sync.restored_from_log, doc="A corrupt snapshot was skipped."
    )
    quarantined_events = property(
        lambda self: self._sync.quarantined_events, doc="Events of the log not learned."
    )
    quarantine = property(lambda self: list(self._sync.quarantine), doc="The latest of them.")

    def usable(self) -> bool:
        """Whether to try the store now: it is up, or its retry time has come."""
        return self._sync.usable()

    def failed(self, error: Exception) -> None:
        """A store operation failed: route on what is known, try again after a backoff."""
        self._sync.failed(error)

    def succeeded(self) -> None:
        """A store operation worked again."""
        self._sync.succeeded()

    def health(self) -> dict[str, Any]:
        """The store's part of ``Router.health()``."""
        sync = self._sync
        spool = self.spool.status()
        return {
            "ledger_errors": self.ledger_errors,
            "ledger_backlog": len(self._ledger_backlog),
            "ledger_dropped": self.ledger_dropped,
            "store": repr(self.store),
            "store_position": sync.position,
            "quarantined_events": sync.quarantined_events,
            "store_available": sync.available,
            "store_error": sync.last_error,
            "store_identity": self.store.identity_problem or "unchanged",
            "store_persistence": self.store.persistence,
            "refused_pool_changes": sync.refused_pool_changes,
            "refused_snapshots": sync.refused_snapshots,
            "refused_settings": sync.refused_settings,
            "superseded_grades": sync.superseded_grades,
            "spooled_events": spool["events"],
            "spool": spool,
        }

    def budget_book(self) -> BudgetStore | None:
        """The store, when it can sum a budget's spend for every process."""
        return self.store if isinstance(self.store, BudgetStore) else None

    def unknown(self, decision_id: str) -> UnknownDecisionError:
        """Unknown: not in the store's ledger."""
        return UnknownDecisionError(
            f"unknown decision id {decision_id!r}: never issued by this router, or evicted (not "
            f"in {self.store}'s ledger: made by a router with another store, or expired more "
            "than a day ago)"
        )

    # -- decisions ----------------------------------------------------------------------
    def keep(
        self,
        decisions: Sequence[Decision],
        vectors: Sequence[np.ndarray] | np.ndarray,
        now: float,
        run_id: str | None,
        session: str | None,
    ) -> None:
        """Write decisions to the store's ledger; while it fails, keep them for the next sync.

        Routing never waits for the store beyond its routing timeout: decisions it could not
        take wait in a bounded backlog and are written by the next sync that reaches it, so
        feedback from another process works for them once the store is back.
        """
        expires = now + self._feedback_ttl
        records = [
            DecisionRecord(
                d.id,
                d.arm,
                vector,
                d.cost_weight,
                now,
                expires,
                session,
                run_id,
                d.propensity,
                None,
                d.prompt,
                None if d.selection.shadows is None else d.selection.shadows[d.row],
            )
            for d, vector in zip(decisions, vectors)
        ]
        if self._sync.usable():
            try:
                self.store.put_decisions(records)
                return
            except StoreError as e:
                self._sync.failed(e)
                logger.warning(
                    "metallm could not keep %d decision(s) in %s (%s); they are written when it "
                    "is back (until then their feedback works in this process only)",
                    len(records),
                    self.store,
                    e,
                )
        with self._learner.lock:
            self.ledger_errors += len(records)
            dropped = len(self._ledger_backlog) + len(records) - LEDGER_BACKLOG
            self._ledger_backlog.extend(records)
            if dropped > 0:
                self.ledger_dropped += dropped

    def attach_cost(
        self, decision_id: str, cost: float, latency: float | None, in_memory: bool
    ) -> None:
        """Attach the cost in the store's ledger (or for the next sync, while it fails).

        Raises:
            StoreError: The decision is not in memory and the store cannot be reached.
        """
        written = False
        if self._sync.usable():
            try:
                self.store.set_decision_cost(decision_id, cost, latency)
                written = True
            except StoreError as e:
                self._sync.failed(e)
        if not written and in_memory:
            with self._learner.lock:  # written to the store's ledger by the next sync
                self._cost_backlog.append(decision_id)
        if not in_memory and not self._sync.available:
            raise StoreError(
                f"{self.store} cannot be reached to attach the cost of decision {decision_id}"
            )

    def look_up(self, decision_id: str, pool_index: dict[str, int]) -> Pending | None:
        """A decision from the store's ledger (made by any process sharing it).

        Raises:
            DuplicateFeedbackError: Its feedback is already in the log.
            UnknownArmError: It names a model this process does not know yet.
        """
        found = self.store.get_decision(decision_id)
        if found is None:
            if self.store.has_event(decision_id):
                raise DuplicateFeedbackError(
                    f"feedback for decision {decision_id} is already in the store"
                )
            return None
        return Pending(
            self._learner.pool.index_of(found.arm),
            found.embedding,
            found.time,
            found.prompt,
            found.propensity,
            found.shadows,
            found.cost,
            found.latency,
        )

    def where(self) -> str:
        """Where else decisions were looked for, for error messages."""
        return f" or in {self.store}'s ledger"

    def run_decision(self, run_id: str) -> str | None:
        """The store's pending decision for a run id."""
        found = self.store.find_decision(run_id)
        return None if found is None else found.decision_id

    def learn(
        self,
        decision_id: str,
        pending: Pending,
        quality: float,
        cost: float,
        latency: float | None,
        failure: bool,
        now: float,
        source: str,
    ) -> bool:
        """Append the outcome to the log (durable before this returns), or spool it.

        Returns:
            True when it is in the log (fold it now), False when spooled.

        Raises:
            DuplicateFeedbackError: The log already holds feedback for this decision.
            SpoolFullError: Neither the store nor the local disk could take the event.
        """
        event = FeedbackEvent(
            decision_id,
            self._learner.pool.names[pending.arm],
            np.asarray(pending.vector, dtype=np.float64),
            quality,
            cost,
            now,
            pending.prompt,
            failure,
            pending.propensity,
            pending.shadows,
            latency,
            source,
        )
        stored = self._write(event)
        with self._learner.lock:
            self._ledger.settle(decision_id)
        return stored

    def correct(
        self, decision_id: str, in_force: GradeInForce, quality: float, source: str, now: float
    ) -> bool:
        """Append a correction to the log (or spool it); every process applies it when folding.

        Returns:
            True when it is in the log (fold it now), False when spooled.

        Raises:
            DuplicateFeedbackError: The log already holds this source's grade of the decision.
        """
        event = FeedbackEvent(
            correction_id(decision_id, source),
            in_force.arm,
            np.asarray(in_force.vector, dtype=np.float64),
            quality,
            0.0,  # the call's cost was learned with its first grade
            now,
            None,
            False,
            in_force.propensity,
            None,
            None,
            source,
            in_force.quality,
        )
        return self._write(event)

    def _write(self, event: FeedbackEvent) -> bool:
        """Append ``event`` durably, or spool it while the store cannot take it; whether stored."""
        if self._sync.usable():
            try:
                self._sync.append(event)  # a second feedback is refused here
                return True
            except StoreError as e:
                self._sync.failed(e)
        self.spool.add(event)  # durable locally; replayed, in order, when the store is back
        return False

    def write_pool_change(self, action: str, name: str) -> None:
        """Write a pool change to the store first, so every process sees it.

        Raises:
            ConfigurationError: The store cannot hold pool changes.
            StoreError: It failed (nothing changed anywhere).
        """
        if not isinstance(self.store, PoolStore):
            raise ConfigurationError(f"{self.store} cannot hold pool changes")
        self.store.add_pool_change(action, name)

    # -- catching up --------------------------------------------------------------------
    def sync_if_due(self) -> None:
        """Start a sync in the background when one is due: routing never waits for the store."""
        sync = self._sync
        if not sync.due() or not sync.usable():
            return
        with self._sync_start_lock:
            if self._syncing is not None and self._syncing.is_alive():
                return
            self._syncing = threading.Thread(
                target=self._sync_in_background, name="metallm-sync", daemon=True
            )
            self._syncing.start()

    def _sync_in_background(self) -> None:
        try:
            self.sync(wait=False)
        except Exception as e:  # never fatal: the next due sync tries again
            logger.warning("metallm could not sync with %s in the background: %s", self.store, e)

    def wait_for_sync(self, timeout: float | None = None) -> None:
        """Wait until a background sync started by routing is done (``timeout`` seconds at most)."""
        thread = self._syncing
        if thread is not None:
            thread.join(timeout)

    def sync(self, *, wait: bool = True) -> int:
        """Fold the store's events not yet learned; see ``Router.sync``."""
        if not self._sync_lock.acquire(blocking=wait):
            return 0
        try:
            return self._sync_now()
        finally:
            self._sync_lock.release()

    def _sync_now(self) -> int:
        self.before_sync()
        try:
            return self._sync_steps()
        except LogTrimmedError as e:
            logger.warning(
                "%s; restarting from the latest snapshot", e
            )  # fell behind a trimmed log
            self._start_over()
            try:
                return self._sync_steps()
            except StoreError as again:
                self._sync.failed(again)
                return 0

    def _start_over(self) -> None:
        """Forget the statistics and where this process was in the log."""
        with self._learner.lock:
            self._learner.reset()
            self._sync.forget_folded()
            self.grades.clear()
            self._sync.position, self._sync.restored = None, False

    def _reachable_at_start(self) -> bool:
        """Whether the store answers its cheap check (a stalled one is not waited for at start)."""
        try:
            self.store.ping()
        except StoreError as e:
            self._sync.failed(e)
            return False
        return True

    def _agree_on_features(self, *, at_start: bool = False) -> None:
        """Read the vectors of routers sharing the store the same way (the prompt's length or not).

        Every router sharing a store learns from the same events, so all must read their
        vectors the same way: the first router that embeds text (or says ``prompt_length=``)
        writes the setting, and one that left ``prompt_length`` open (a feedback-only router
        without an embedder) takes it, relearning from the store.

        Raises:
            ConfigurationError: At construction, when this router's explicit setting differs.
        """
        store = self.store
        if self._features_agreed or not isinstance(store, SettingsStore):
            return
        learner = self._learner
        mine = "on" if learner.reads_prompt_length else "off"
        try:
            if self._decides_features:
                held: str | None = store.claim_setting("prompt_length", mine)
            else:
                held = store.setting("prompt_length")
        except StoreError as e:
            self._sync.failed(e)
            return  # agreed on at the next sync
        if held is None:
            return  # nobody has said yet: a router without an embedder waits for one that has
        if held not in ("on", "off"):
            self._sync.refuse_setting("prompt_length", held)
            self._features_agreed = True
            return
        if held != mine and self._prompt_length_given is not None:
            message = (
                f"the routers sharing {store} read the prompt's length {held}, this one "
                f"prompt_length={self._prompt_length_given}: every router sharing a store must "
                f"read its vectors the same way (leave prompt_length unset to follow the store)"
            )
            if at_start:
                raise ConfigurationError(message)
            logger.error("metallm: %s", message)
        elif held != mine:
            with learner.lock:
                features = learner.bandit.features
                learner.bandit.features = (
                    PromptLengthFeatures(features) if held == "on" else features.inner  # type: ignore[attr-defined]
                )
            self._start_over()
            logger.info(
                "metallm: reading the prompt's length %s, as the routers sharing %s do", held, store
            )
        self._features_agreed = True

    def _agree_on_pool(self) -> None:
        """Refuse to start on a store that routes among other models than this router's.

        The first router on a store writes its models; a later one must name the same, give or
        take the models added and retired since (those it learns from the store's pool
        changes): a process started before a change, or after it, starts. A router with
        another pool would quarantine every event naming a model it lacks, silently.

        Raises:
            ConfigurationError: This router names a model the store never had, or lacks one
                of the store's first models that was never retired.
        """
        store = self.store
        if not isinstance(store, SettingsStore):
            return
        mine = list(self._learner.pool.names)
        try:
            held = store.claim_setting("pool", json.dumps(mine))
            changes = store.pool_changes_after(None) if isinstance(store, PoolStore) else []
        except StoreError as e:
            self._sync.failed(e)
            return
        try:
            first = json.loads(held)
            if not (isinstance(first, list) and all(isinstance(n, str) for n in first)):
                raise ValueError(held)
        except ValueError:
            self._sync.refuse_setting("pool", held)
            return
        ever = set(first) | {arm for _, action, arm in changes if action == "add"}
        retired = {arm for _, action, arm in changes if action == "retire"}
        unknown = [name for name in mine if name not in ever]
        missing = [name for name in first if name not in retired and name not in mine]
        if unknown or missing:
            active = [name for name in [*first, *sorted(ever - set(first))] if name not in retired]
            raise ConfigurationError(
                f"{store} routes among {active}, this router among {mine}"
                + (f" (the store never had {unknown})" if unknown else "")
                + (f" (it lacks {missing})" if missing else "")
                + ": name the store's models (added and retired ones are followed from the "
                "store), change the pool with add_arm/retire_arm in one process so every "
                "process follows, or use another store for another pool"
            )

    def _sync_pool(self) -> None:
        """Apply the pool changes other processes made (models added and retired)."""
        store = self.store
        if not isinstance(store, PoolStore):
            return
        learner = self._learner
        for position, action, arm in store.pool_changes_after(self._pool_position):
            problem = pool_change_problem(action, arm, learner.pool.names, learner.pool.active)
            if problem is None and action == "add":
                learner.add_arm(arm)
            elif problem is None and action == "retire":
                learner.retire_arm(arm)
            elif problem is not None:
                self._sync.refuse_pool_change(position, action, arm, problem)
            self._pool_position = position

    def _sync_steps(self) -> int:
        sync = self._sync
        applied = 0
        try:
            self._agree_on_features()
            self._sync_pool()  # before the snapshot and the events, which may name new models
            if not sync.restored:
                sync.restore(self._adopt_snapshot, self._learner.reset)
            self.spool.replay(self.store)
            if self._ledger_backlog or self._cost_backlog:
                self._flush_ledger_backlog()
            while True:
                events = sync.fetch()  # store I/O, outside the learner's lock
                with self._learner.lock:
                    applied += sync.fold(events, self._apply)
                if len(events) < 1000:
                    break
            if sync.snapshot_due:
                self.snapshot()
        except LogTrimmedError:
            raise
        except StoreError as e:
            if self._starting and isinstance(e, CorruptStoreError):
                raise
            sync.failed(e)
            return applied
        sync.succeeded()
        return applied

    def _flush_ledger_backlog(self) -> None:
        """Write the decisions the store could not take when they were made (store I/O)."""
        ledger = self._ledger
        with self._learner.lock:
            waiting = list(self._ledger_backlog)
            self._ledger_backlog.clear()
            in_records = {r.decision_id for r in waiting}
            costs = [
                (d, ledger.cost_of(d), ledger.latency_of(d))
                for d in dict.fromkeys(self._cost_backlog)
                if d in ledger and d not in in_records
            ]
            self._cost_backlog.clear()
            records = [
                replace(
                    r, cost=ledger.cost_of(r.decision_id), latency=ledger.latency_of(r.decision_id)
                )
                for r in waiting
                if r.decision_id in ledger  # else settled (in the log) or evicted meanwhile
            ]
        written = costs_written = 0
        try:
            while written < len(records):
                self.store.put_decisions(records[written : written + 500])
                written = min(written + 500, len(records))
            for decision_id, cost, latency in costs:
                if cost is not None:
                    self.store.set_decision_cost(decision_id, cost, latency)
                costs_written += 1
        except StoreError:
            with self._learner.lock:  # back in front, in order, for the next sync
                self._ledger_backlog.extendleft(reversed(records[written:]))
                self._cost_backlog.extendleft(reversed([d for d, _, _ in costs[costs_written:]]))
            raise

    def _apply(self, position: str, event: FeedbackEvent | MalformedEvent) -> None:
        """Fold one event of the log; a bad one is quarantined, never learned, never fatal."""
        learner = self._learner
        if isinstance(event, FeedbackEvent) and event.arm not in learner.pool.index:
            self._sync_pool()  # a model another process added after this sync began
        if not self._sync.admit(position, event, learner.pool.index, learner.bandit.dimension):
            return
        assert isinstance(event, FeedbackEvent)
        arm = learner.pool.index[event.arm]
        if event.replaces is not None:
            self._apply_correction(arm, event)
            return
        learner.learn(arm, event.embedding, event.quality, event.cost, event.latency, event.failure)
        if not event.failure:
            self.grades.put(
                event.decision_id,
                GradeInForce(event.arm, event.embedding, event.quality, event.source or DEFAULT_SOURCE,
                             event.time, event.propensity, event.shadows),
            )  # fmt: skip

    def _apply_correction(self, arm: int, event: FeedbackEvent) -> None:
        """Replace a decision's grade in force by a later one from the log, in log order.

        The grade it replaces is the one this process folded (the correction's own
        ``replaces`` only when that is older than what this process has seen, e.g. before its
        snapshot); one ranked at or below the grade in force is skipped (counted).
        """
        base = base_id(event.decision_id)
        folded = self._sync.in_force(base)
        if folded is not None:
            if source_rank(event.source) <= source_rank(folded[2]):
                self._sync.superseded_grades += 1
                return
            old = folded[1]
        else:
            old = float(event.replaces or 0.0)
        self._learner.correct(arm, event.embedding, old, event.quality)
        self._sync.set_in_force(base, event.arm, event.quality, event.source or DEFAULT_SOURCE)
        known = self.grades.get(base)
        self.grades.put(
            base,
            GradeInForce(event.arm, event.embedding, event.quality, event.source or DEFAULT_SOURCE,
                         known.time if known else event.time, event.propensity, None),
        )  # fmt: skip

    def _adopt_snapshot(self, data: bytes, source: str) -> None:
        persistence.adopt_bytes(self._learner, data, source)

    def snapshot(self) -> None:
        """Write the current statistics to the store, so a new process starts fast."""
        learner = self._learner
        with learner.lock:
            data = snapshot_bytes(lambda path: persistence.save(learner, path))
            position = self._sync.position
        if position is not None and position == self._sync.position:
            self._sync.push_snapshot(data)

    def close(self, timeout: float) -> None:
        """Hand what waits for the store to it, then close the store's connections (see ``Router.close``)."""
        deadline = time.monotonic() + timeout
        self.wait_for_sync(timeout)
        while True:  # tries whatever the backoff says: the process is going away
            self.sync()
            waiting = len(self._ledger_backlog) + len(self._cost_backlog) + len(self.spool)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if waiting:
            logger.warning(
                "metallm closes with %d decision(s) and feedback event(s) not yet in %s: spooled "
                "feedback is replayed by the next process; other processes cannot grade the "
                "decisions",
                waiting,
                self.store,
            )
        self.store.close()


def learning_for(
    store: StateStore | None,
    learner: Learner,
    ledger: PendingDecisions,
    *,
    snapshot_every: int,
    sync_interval: float | None,
    feedback_ttl: float,
    prompt_length: bool | None,
    embeds: bool,
    clock: Callable[[], float] = time.monotonic,
) -> Learning:
    """A router's learning strategy, chosen once: in this process, or through ``store``.

    With a store, the router catches up with it now (see `SharedLearning.start`).

    Args:
        store: The shared store (None: this process only).
        learner: The router's learned state.
        ledger: The decisions awaiting feedback in memory.
        snapshot_every: Events between two snapshots in the store.
        sync_interval: Seconds between automatic syncs (None: never).
        feedback_ttl: Seconds a decision waits for its feedback.
        prompt_length: The caller's ``prompt_length`` (None: left open).
        embeds: Whether the router embeds text itself.
        clock: Seconds, for the store's retry backoff and due syncs.

    Raises:
        ConfigurationError: The store's routers read vectors another way than this one.
        CorruptStoreError: The store holds what no metallm router wrote.
    """
    if store is None:
        return LocalLearning(learner, ledger)
    shared = SharedLearning(
        store,
        learner,
        ledger,
        snapshot_every=snapshot_every,
        sync_interval=sync_interval,
        feedback_ttl=feedback_ttl,
        decides_features=prompt_length is not None or embeds,
        prompt_length_given=prompt_length,
        clock=clock,
    )
    shared.start()
    return shared
