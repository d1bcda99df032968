"""What every store keeps, and the protocol a store implements.

A store holds three things for the routers that share it:

* the **event log** — one `FeedbackEvent` per learned outcome, written durably before
  ``Router.record`` returns; the learned statistics are a fold of it (plain sums);
* the **decision ledger** — one `DecisionRecord` per decision awaiting feedback, so
  feedback can arrive in any process sharing the store, or after the deciding process restarted;
  a record lives until its feedback is learned or its time to live runs out;
* **snapshots** of the statistics, so a new process starts from "snapshot + the events after it".

Stores know nothing of routing, and raise only `StoreError` (and its
`DuplicateEventError`), never their driver's errors.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from metallm.exceptions import CorruptStoreError, StoreError, UnknownDecisionError

__all__ = [
    "AnswerStore",
    "BudgetState",
    "BudgetStore",
    "DecisionRecord",
    "FeedbackEvent",
    "MalformedEvent",
    "PoolStore",
    "SettingsStore",
    "Snapshot",
    "StateStore",
    "snapshot_bytes",
]


@dataclass(frozen=True)
class FeedbackEvent:
    """One learned outcome: what ``Router.record`` appends.

    Attributes:
        decision_id: The decision.
        arm: The model that answered.
        embedding: The query's vector.
        quality: The outcome in [0, 1].
        cost: USD.
        time: When it was recorded.
        prompt: The prompt, when kept.
        failure: Whether it was a provider's failure.
        propensity: The probability the policy chose the model.
        shadows: The shadows' choices (JSON).
        latency: Seconds, when known.
        source: Who graded it (``"judge"``, ``"check"``, ``"human"``; None: an older log).
        replaces: For a later grade that overrides the one in force: the quality it replaces
            (its ``decision_id`` is then ``"<decision id>#<source>"``).
    """

    decision_id: str
    arm: str
    embedding: np.ndarray
    quality: float
    cost: float
    time: float
    prompt: str | None = None
    failure: bool = False
    """True when this is a provider's failure learned as quality 0, not real feedback."""
    propensity: float | None = None
    """The probability that the logging policy chose ``arm`` (what off-policy evaluation of the
    log reweights by); None in logs written before propensities were kept."""
    shadows: str | None = None
    """What each shadow router would have chosen, as JSON text the store keeps unread."""
    latency: float | None = None
    """Seconds the call took (None when not measured)."""
    source: str | None = None
    """Who graded the answer (None: a log written before grades named their source)."""
    replaces: float | None = None
    """Set on a correction: the quality of the grade in force it replaces (see
    ``metallm.serving.GRADE_SOURCES``)."""


@dataclass(frozen=True)
class MalformedEvent:
    """An entry of the event log that could not be read as a `FeedbackEvent` (and why).

    Attributes:
        reason: Why it could not be read.
        decision_id: Its decision, when readable.
    """

    reason: str
    decision_id: str | None = None


@dataclass(frozen=True)
class DecisionRecord:
    """A decision awaiting feedback, as the store's ledger keeps it.

    ``embedding`` is float32 (what learning from it needs); ``expires`` is a Unix time.

    Attributes:
        decision_id: The decision.
        arm: The chosen model.
        embedding: The vector it was chosen for.
        cost_weight: The ``p`` it was chosen at.
        time: When (Unix time).
        expires: When its feedback is too late.
        session: Its session, if any.
        run_id: The framework's id of the call, if any.
        propensity: The probability the policy chose it.
        cost: Its measured cost, once known.
        prompt: Its prompt, when the store keeps prompts.
        shadows: The shadows' choices (JSON).
        latency: Its measured seconds, once known.
    """

    decision_id: str
    arm: str
    embedding: np.ndarray
    cost_weight: float
    time: float
    expires: float
    session: str | None = None
    run_id: str | None = None
    """The framework's id of the call (e.g. LangChain's run id), to find the decision by."""
    propensity: float | None = None
    """The probability that the policy chose ``arm`` (once the policy has one)."""
    cost: float | None = None
    """The cost (USD) measured when the model answered, for feedback that comes without one."""
    prompt: str | None = None
    shadows: str | None = None
    """What each shadow router would have chosen, as JSON text the store keeps unread."""
    latency: float | None = None
    """Seconds the call took, measured when the model answered."""


@dataclass(frozen=True)
class Snapshot:
    """Serialized router state (``Router.save`` bytes) covering events up to ``position``.

    Attributes:
        position: The last event it covers.
        data: The state file's bytes.
    """

    position: str
    data: bytes


@dataclass(frozen=True)
class BudgetState:
    """What a store holds of one budget: this period's spend and the controller's cost weight.

    ``spent`` and ``queries`` are sums over every process sharing the store (each adds its
    own calls); ``previous_queries`` is the count of the period before, for pacing early in a
    period; ``cost_weight`` is the shared ``p`` (None before the first update).

    Attributes:
        period: The period's index.
        spent: USD spent in it.
        queries: Calls paid in it.
        cost_weight: The shared ``p`` (None: none yet).
        previous_queries: Calls paid in the period before (for pacing early on).
    """

    period: int
    spent: float = 0.0
    queries: int = 0
    cost_weight: float | None = None
    previous_queries: int = 0


@runtime_checkable
class BudgetStore(Protocol):
    """A store that can hold budgets for many processes (both of metallm's stores can)."""

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
        """Add to the period's sums and move the shared cost weight, in one atomic step.

        Args:
            name: The budget's name (routers sharing it share the budget).
            period: The period's index.
            cost: USD to add.
            queries: Calls to add.
            change: How far the shared cost weight moves.
            floor: Its lowest value.
            ceiling: Its highest value.
            initial: Its value before any move.

        Returns:
            The state after it.
        """
        ...

    def budget_state(self, name: str, period: int) -> BudgetState:
        """The budget's state for ``period`` (zero sums when nothing was spent in it yet).

        Args:
            name: The budget's name.
            period: The period's index.
        """
        ...


@runtime_checkable
class AnswerStore(Protocol):
    """A store that keeps routed answers for a grading process elsewhere (where prompts are kept).

    A worker hands each sampled answer to the ledger entry of its decision; a grading process
    reads the answered decisions, has a judge grade them, and records the grades. An answer
    leaves with its decision: when it is graded, or when its feedback window ends.
    """

    store_prompts: bool

    def keep_answer(self, decision_id: str, handoff: str) -> bool:
        """Attach a routed answer (JSON: answer, reference, context) to a pending decision.

        Args:
            decision_id: The decision.
            handoff: The answer, as JSON text.

        Returns:
            False when the decision is no longer pending (graded or expired).

        Raises:
            StoreError: It cannot be written.
        """
        ...

    def answered_decisions(self, limit: int = 100) -> list[tuple[DecisionRecord, str]]:
        """The oldest pending decisions with an answer kept, and that answer's JSON.

        Args:
            limit: The most returned.

        Raises:
            StoreError: They cannot be read.
        """
        ...


@runtime_checkable
class PoolStore(Protocol):
    """A store that keeps the pool's changes (models added and retired), for every process."""

    def add_pool_change(self, action: str, arm: str) -> str:
        """Append a pool change durably; its position.

        Args:
            action: ``"add"`` or ``"retire"``.
            arm: The model.
        """
        ...

    def pool_changes_after(self, position: str | None) -> list[tuple[str, str, str]]:
        """``(position, action, arm)`` after ``position``, in order.

        Args:
            position: The last change seen (None: from the start).
        """
        ...


@runtime_checkable
class SettingsStore(Protocol):
    """A store that keeps settings every router sharing it must agree on (first writer wins)."""

    def claim_setting(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless one is there already; the value it holds.

        Args:
            name: The setting.
            value: This router's value.
        """
        ...

    def setting(self, name: str) -> str | None:
        """The value held under ``name``, or None.

        Args:
            name: The setting.
        """
        ...


@runtime_checkable
class StateStore(Protocol):
    """Where a router's feedback events, pending decisions and snapshots live.

    Everything a router reads of a store is declared here.
    """

    store_prompts: bool
    """Whether decisions and events keep the prompt's text."""
    spool_dir: Path
    """The local folder where feedback waits while the store cannot be reached."""
    spool_name: str
    """This store's spool file name in that folder (one per store)."""
    identity_problem: str | None
    """How the store's file or server changed under this process (None: it did not)."""
    persistence: str | None
    """How durable an acknowledged write is (e.g. ``aof-always``, ``wal-full``)."""

    def ping(self) -> None:
        """A cheap check that the store answers; `StoreError` when it does not."""
        ...

    def append(self, event: FeedbackEvent) -> str:
        """Write the event durably and settle its decision in the ledger; returns its position.

        Args:
            event: The outcome.

        Raises:
            DuplicateEventError: The log already holds an event of this decision.
            StoreError: The store failed.
        """
        ...

    def events_after(
        self, position: str | None
    ) -> Iterator[tuple[str, FeedbackEvent | MalformedEvent]]:
        """Events after ``position``, in order, with their positions.

        An entry that cannot be read is yielded as a ``MalformedEvent``, never raised.

        Args:
            position: The last event seen (None: from the start).
        """
        ...

    def has_event(self, decision_id: str) -> bool:
        """Whether feedback for this decision is already in the log.

        Args:
            decision_id: The decision.
        """
        ...

    def put_decisions(self, records: Sequence[DecisionRecord]) -> None:
        """Keep these decisions in the ledger until they are settled or expire (one write).

        Args:
            records: The decisions.
        """
        ...

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        """The ledger's record of a decision (also when expired but not yet purged), or None.

        Args:
            decision_id: The decision.
        """
        ...

    def find_decision(self, run_id: str) -> DecisionRecord | None:
        """The latest pending decision made for a framework call's run id, or None.

        Args:
            run_id: The framework's id of the call.
        """
        ...

    def set_decision_cost(
        self, decision_id: str, cost: float, latency: float | None = None
    ) -> None:
        """Attach the measured cost and latency to a pending decision.

        Args:
            decision_id: The decision.
            cost: USD.
            latency: Seconds (None: unknown).
        """
        ...

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot of the learned state (older ones are dropped).

        Args:
            snapshot: The state and the log position it covers.
        """
        ...

    def latest_snapshot(self) -> Snapshot | None:
        """The newest snapshot, or None."""
        ...

    def close(self) -> None:
        """Close this process's connection(s)."""
        ...


MAX_EMBEDDING_BYTES = 64 << 10
"""The largest embedding the store hands to a router (8,192 float64s; MiniLM's is 3 KiB)."""
MAX_FIELD_BYTES = 1 << 20
"""The largest text field (a prompt, the shadows' JSON, an id) read from the store."""
MAX_SNAPSHOT_BYTES = 64 << 20
"""The largest snapshot read from the store (a 10-model router's is about 5 MB compressed)."""
MAX_BATCH_BYTES = 16 << 20
"""About the most one read of the event log holds in memory."""


def oversize(what: str, size: int, limit: int) -> str:
    """Why an entry was refused for its size.

    >>> oversize("embedding", 10, 8)
    'its embedding of 10 bytes is over the 8-byte limit'
    """
    return f"its {what} of {size} bytes is over the {limit}-byte limit"


def checked_budget_state(
    store: object,
    name: str,
    period: int,
    spent: object,
    queries: object,
    cost_weight: object,
    previous: object,
) -> BudgetState:
    """A budget's state read from a store, its numbers checked like a router's own.

    Raises:
        CorruptStoreError: a value another client wrote is not a finite number in its range (a spend
            of ``inf`` would cap every process for good, a NaN weight would break routing);
            the router goes on with its own view, as when the store is down.
    """
    try:
        values = (
            float(spent or 0.0),  # type: ignore[arg-type]
            float(queries or 0),  # type: ignore[arg-type]
            None if cost_weight is None else float(cost_weight),  # type: ignore[arg-type]
            float(previous or 0),  # type: ignore[arg-type]
        )
    except (TypeError, ValueError) as e:
        raise CorruptStoreError(
            f"{store}: budget {name!r} holds a value that is not a number ({e}); it was written "
            "by another client: delete its keys or rows to start the budget again"
        ) from None
    s, q, w, p = values
    if not all(math.isfinite(v) and 0 <= v < 1e15 for v in (s, q, p)) or (
        w is not None and not (math.isfinite(w) and 0 <= w <= 1e6)
    ):
        raise CorruptStoreError(
            f"{store}: budget {name!r} holds {values!r}, not finite numbers in range; it was "
            "written by another client: delete its keys or rows to start the budget again"
        )
    return BudgetState(period, s, int(q), w, int(p))


def unreadable_decision(store: object, key: str, why: str) -> UnknownDecisionError:
    """The error for a ledger record another client wrote badly: its feedback cannot be learned."""
    return UnknownDecisionError(
        f"the ledger record {key[:80]!r} in {store} cannot be used ({why}): it was written by "
        "another client; its feedback cannot be learned"
    )


@contextmanager
def driver_errors(
    store: object, what: str, errors: tuple[type[BaseException], ...]
) -> Iterator[None]:
    """Turn the driver's own errors into `StoreError` naming the store and the operation."""
    try:
        yield
    except errors as e:
        raise StoreError(f"{store} could not {what}: {type(e).__name__}: {e}") from e


def vector_bytes(vector: np.ndarray, dtype: type = np.float64) -> bytes:
    """The raw bytes of a vector (float64 for events, float32 for the ledger)."""
    return np.asarray(vector, dtype=dtype).tobytes()


def vector(data: bytes, dtype: type = np.float64) -> np.ndarray:
    """A vector from `vector_bytes`."""
    return np.frombuffer(data, dtype=dtype)


def snapshot_bytes(save: Callable[[Path], object]) -> bytes:
    """Bytes of a router state written by ``save(path)`` through a temporary file.

    Args:
        save: Writes the state to a path.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.npz"
        save(path)
        return path.read_bytes()
