"""RedisStore: the event log in a Redis Stream, the decision ledger in expiring keys, snapshots in a key."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metallm.exceptions import (
    ConfigurationError,
    CorruptStoreError,
    DuplicateEventError,
    LogTrimmedError,
    StateFileError,
    StoreError,
    UnknownDecisionError,
)
from metallm.state._base import (
    MAX_BATCH_BYTES,
    MAX_EMBEDDING_BYTES,
    MAX_FIELD_BYTES,
    MAX_SNAPSHOT_BYTES,
    BudgetState,
    DecisionRecord,
    FeedbackEvent,
    MalformedEvent,
    Snapshot,
    checked_budget_state,
    driver_errors,
    oversize,
    unreadable_decision,
    vector,
    vector_bytes,
)

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

# One round trip: refuse a duplicate decision id, else add the event to the stream and
# settle its decision in the ledger.
# KEYS: ids (sorted by time), stream, the decision's ledger key, ids of metallm 0.1 (a set);
# ARGV: decision id, time, then the event's fields.
_APPEND = (
    "if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 "
    "then return false end "
    "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) "
    "redis.call('DEL', KEYS[3]) "
    "return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))"
)
_SET_COST = (
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'cost', ARGV[1]) "
    "if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'latency', ARGV[2]) end end return 0"
)
# Keep a routed answer on a pending decision (never on one already graded or expired) and
# index it by time for the grading process. KEYS: the decision, the index; ARGV: answer, time, id.
_KEEP_ANSWER = (
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'answer', ARGV[1]) "
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) return 1 end return 0"
)
# One round trip: add to a budget period's sums and move its shared cost weight within bounds.
# KEYS: the period's hash, the weight, the previous period's hash;
# ARGV: cost, queries, change, floor, ceiling, initial weight, seconds the period's hash is kept.
_ADD_SPEND = (
    "local spent = redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[1]) "
    "local queries = redis.call('HINCRBY', KEYS[1], 'queries', ARGV[2]) "
    "redis.call('EXPIRE', KEYS[1], ARGV[7]) "
    "local w = tonumber(redis.call('GET', KEYS[2]) or ARGV[6]) "
    "w = math.min(math.max(w + tonumber(ARGV[3]), tonumber(ARGV[4])), tonumber(ARGV[5])) "
    "local text = string.format('%.17g', w) "
    "redis.call('SET', KEYS[2], text) "
    "return {spent, tostring(queries), text, redis.call('HGET', KEYS[3], 'queries') or '0'}"
)
_FLOATS = ("cost_weight", "time", "expires", "propensity", "cost", "latency")
_OVERSIZE = b"\x00metallm-oversize:"
# Lua: replace each value of the flat array f over `limit` bytes by `marker` .. its size, so a
# field another client made huge never leaves the server (the scripts below share it).
_CAP_VALUES = "for i = 1, #f do if #f[i] > limit then f[i] = marker .. #f[i] end end "
# Read the log in one round trip, never handing a client a field over ARGV[3] bytes nor more
# than about ARGV[4] bytes in all.
# KEYS: stream; ARGV: exclusive start ("-" or "(id"), count, field limit, batch limit, marker.
_READ_EVENTS = (
    "local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2]) "
    "local limit, budget, marker, total, out = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], 0, {} "
    "for _, e in ipairs(entries) do "
    "  local f = e[2] " + _CAP_VALUES + "  for i = 1, #f do total = total + #f[i] end "
    "  out[#out + 1] = e "
    "  if total > budget then break end "
    "end "
    "return out"
)
# A hash's fields, capped. KEYS: the hash; ARGV: field limit, marker.
_READ_HASH = (
    "local f = redis.call('HGETALL', KEYS[1]) "
    "local limit, marker = tonumber(ARGV[1]), ARGV[2] " + _CAP_VALUES + "return f"
)
# Up to ARGV[2] entries of a list from ARGV[1], capped. KEYS: the list; ARGV: ..., limit, marker.
_READ_LIST = (
    "local f = redis.call('LRANGE', KEYS[1], ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1) "
    "local limit, marker = tonumber(ARGV[3]), ARGV[4] " + _CAP_VALUES + "return f"
)


def _oversized(entry: dict[str, bytes]) -> str | None:
    """Why an entry read through the scripts above was refused for its size, or None."""
    for name, value in entry.items():
        if value.startswith(_OVERSIZE):
            return oversize(name, int(value[len(_OVERSIZE) :]), MAX_FIELD_BYTES)
    return None


def redacted(url: str) -> str:
    """``url`` without its password (what logs, reprs and errors show).

    >>> redacted("redis://user:s3cret@host:6379/0")
    'redis://user:***@host:6379/0'
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ('***' if user and not colon else '')}@{host}"


class RedisStore:
    """Feedback events in a Redis Stream, pending decisions in expiring keys; for many processes.

    Every process appends its events to the stream and folds the stream, in stream order,
    into its own statistics, so all processes converge to the same state. A pending decision
    is a hash that Redis drops ``expired_grace`` seconds after its feedback time ran out.
    Every call waits at most ``timeout`` seconds (a stalled server is then a
    `StoreError`, and the router goes on without it).

    Args:
        url: The server (``redis://``, ``rediss://`` or ``unix://``; a password is never shown).
        prefix: The keys' prefix: routers sharing it share the state.
        store_prompts: Keep each decision's prompt (for rules evaluated from the log).
        client: A ready ``redis.Redis`` client (None: one from ``url``).
        expired_grace: Seconds an expired decision is kept before Redis drops it.
        timeout: Seconds a call waits before the store counts as unavailable.
        spool_dir: Where feedback waits while the server cannot be reached.
        retention: Seconds of the event log kept (older events are trimmed after a snapshot).
        check_persistence: Read the server's persistence settings and warn when a crash can
            lose acknowledged writes.
        routing_timeout: Seconds the routing path waits (shorter: routing never stalls).
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "metallm",
        store_prompts: bool = False,
        client: Any = None,
        expired_grace: float = 86_400.0,
        timeout: float = 2.0,
        spool_dir: str | Path | None = None,
        retention: float = 8 * 86_400.0,
        check_persistence: bool = True,
        routing_timeout: float = 0.25,
    ) -> None:
        routing_client = client
        if client is None:
            try:
                import redis
            except ImportError as e:  # pragma: no cover - depends on the install
                raise ImportError(
                    "RedisStore needs the redis package: pip install 'metallm[redis]'"
                ) from e
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            routing_client = redis.Redis.from_url(
                url, socket_timeout=routing_timeout, socket_connect_timeout=routing_timeout
            )
        self.routing_timeout = routing_timeout
        """Seconds a call on the routing path (a decision's ledger entry, its cost, the budget) waits."""
        self._routing = routing_client
        self.spool_dir = (
            Path(spool_dir)
            if spool_dir is not None
            else Path.home() / ".cache" / "metallm" / "spool"
        )
        """Where feedback is spooled while Redis cannot be reached (``timeout``: seconds any call may wait)."""
        self.spool_name = f"redis-{prefix}"
        self.client = client
        self.url = redacted(url)
        """The server's URL, its password left out."""
        self.prefix = prefix
        self.store_prompts = store_prompts
        self.expired_grace = expired_grace
        self.stream = f"{prefix}:events"
        self.snapshot_key = f"{prefix}:snapshot"
        self.ids_key = f"{prefix}:decision_ids_by_time"
        self.legacy_ids_key = f"{prefix}:decision_ids"
        self.trimmed_key = f"{prefix}:trimmed_to"
        self.retention = retention
        try:
            from redis import RedisError

            self._errors: tuple[type[BaseException], ...] = (RedisError,)
        except ImportError:  # pragma: no cover - a client of another library was passed
            self._errors = ()
        self._append = client.register_script(_APPEND)
        self._set_cost = self._routing.register_script(_SET_COST)
        self._keep_answer = self._routing.register_script(_KEEP_ANSWER)
        self._add_spend = self._routing.register_script(_ADD_SPEND)
        self._read_events = client.register_script(_READ_EVENTS)
        self._read_hash = client.register_script(_READ_HASH)
        self._read_list = client.register_script(_READ_LIST)
        self.identity_problem: str | None = None
        """Always None: a Redis server is reached by address (its persistence is checked instead)."""
        self.persistence: str | None = (
            self._check_persistence() if check_persistence else "unchecked"
        )
        """How the server persists writes: "aof-always", "aof-everysec", "aof-no", "rdb", "none" or "unknown"."""

    def _check_persistence(self) -> str:
        """Read the server's persistence settings, and warn when a crash can lose acknowledged events."""
        try:
            appendonly = self._routing.config_get("appendonly").get("appendonly")
            fsync = self._routing.config_get("appendfsync").get("appendfsync")
            save = self._routing.config_get("save").get("save")
        except Exception as e:  # CONFIG disabled (managed Redis) or the server is down right now
            logger.info(
                "metallm could not read %s's persistence settings (%s); make sure AOF is on",
                self,
                e,
            )
            return "unknown"
        kind = f"aof-{fsync}" if appendonly == "yes" else ("rdb" if save else "none")
        if kind not in ("aof-always", "aof-everysec"):
            logger.warning(
                "%s persists with %s: a Redis crash can lose feedback that record() already acknowledged, "
                "and processes would then disagree. Run Redis with appendonly yes and appendfsync "
                "everysec (at most about one second lost) or always (none lost).",
                self,
                kind,
            )
        return kind

    def _trim(self, position: str) -> None:
        """Drop events older than both the snapshot at ``position`` and the retention window."""
        cutoff_ms = int((time.time() - self.retention) * 1000)
        snapshot_ms, _, snapshot_seq = position.partition("-")
        min_id = (
            f"{cutoff_ms}-0"
            if cutoff_ms < int(snapshot_ms)
            else f"{snapshot_ms}-{snapshot_seq or 0}"
        )
        removed = self.client.xtrim(self.stream, minid=min_id, approximate=False)
        self.client.zremrangebyscore(self.ids_key, "-inf", time.time() - self.retention)
        if removed:  # only then can a process that is behind miss events
            self.client.set(self.trimmed_key, min_id)

    def _decision_key(self, decision_id: str) -> str:
        return f"{self.prefix}:decision:{decision_id}"

    def _run_key(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    # -- the event log ------------------------------------------------------------------
    def append(self, event: FeedbackEvent) -> str:
        """Write the event durably in one round trip (settling its decision); its position in the log."""
        fields: dict[str, Any] = {
            "decision_id": event.decision_id,
            "arm": event.arm,
            "embedding": vector_bytes(event.embedding),
            "quality": repr(event.quality),
            "cost": repr(event.cost),
            "time": repr(event.time),
        }
        if self.store_prompts and event.prompt is not None:
            fields["prompt"] = event.prompt
        if event.failure:
            fields["failure"] = "1"
        if event.propensity is not None:
            fields["propensity"] = repr(event.propensity)
        if event.shadows is not None:
            fields["shadows"] = event.shadows
        if event.latency is not None:
            fields["latency"] = repr(event.latency)
        if event.source is not None:
            fields["source"] = event.source
        if event.replaces is not None:
            fields["replaces"] = repr(event.replaces)
        flat: list[Any] = []
        for key, value in fields.items():
            flat += [key, value]
        keys = [
            self.ids_key,
            self.stream,
            self._decision_key(event.decision_id),
            self.legacy_ids_key,
        ]
        with driver_errors(
            self, f"append the event for decision {event.decision_id}", self._errors
        ):
            position = self._append(keys=keys, args=[event.decision_id, repr(event.time), *flat])
        if position is None:
            raise DuplicateEventError(
                f"{self} already holds feedback for decision {event.decision_id}"
            )
        return position.decode() if isinstance(position, bytes) else str(position)

    def events_after(
        self, position: str | None
    ) -> Iterator[tuple[str, FeedbackEvent | MalformedEvent]]:
        """Events after ``position`` (all when None), in log order, with their positions.

        A field over `MAX_FIELD_BYTES` never leaves the server: its
        entry is a `MalformedEvent`; one read holds about
        `MAX_BATCH_BYTES` at most.
        """
        if position and _stream_id(position) is None:
            raise StoreError(f"{self}: {position[:40]!r} is not a position of its event log")
        start = "-" if not position else f"({position}"
        with driver_errors(self, "read its events", self._errors):
            trimmed = self.client.get(self.trimmed_key)
            batch = self._batch(start)
        trimmed_at = None if trimmed is None else _stream_id(trimmed.decode(errors="replace"))
        if trimmed_at is not None and (not position or _stream_id(position) < trimmed_at):  # type: ignore[operator]
            raise LogTrimmedError(
                f"{self} trimmed its log past position {position}: start from the latest snapshot"
            )
        while True:
            if not batch:
                return
            for raw_id, fields in batch:
                yield raw_id.decode(), _parse_event(fields)
            start = f"({batch[-1][0].decode()}"
            with driver_errors(self, "read its events", self._errors):
                batch = self._batch(start)

    def _batch(self, start: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        raw = self._read_events(
            keys=[self.stream],
            args=[start, 1000, MAX_FIELD_BYTES, MAX_BATCH_BYTES, _OVERSIZE],
        )
        return [(entry_id, dict(zip(flat[::2], flat[1::2]))) for entry_id, flat in raw]

    def has_event(self, decision_id: str) -> bool:
        """Whether feedback for this decision is already in the log."""
        with driver_errors(self, "read its events", self._errors):
            return self.client.zscore(self.ids_key, decision_id) is not None or bool(
                self.client.sismember(self.legacy_ids_key, decision_id)
            )

    # -- the decision ledger ------------------------------------------------------------
    def put_decisions(self, records: Sequence[DecisionRecord]) -> None:
        """Keep these decisions in the ledger, each key expiring past its time to live (one round trip)."""
        pipe = self._routing.pipeline(transaction=False)
        for r in records:
            key = self._decision_key(r.decision_id)
            mapping: dict[str, Any] = {
                "arm": r.arm,
                "embedding": vector_bytes(r.embedding, np.float32),
                "cost_weight": repr(r.cost_weight),
                "time": repr(r.time),
                "expires": repr(r.expires),
            }
            for name, value in (
                ("session", r.session),
                ("run_id", r.run_id),
                ("propensity", r.propensity),
                ("cost", r.cost),
                ("shadows", r.shadows),
                ("latency", r.latency),
            ):
                if value is not None:
                    mapping[name] = value if isinstance(value, str) else repr(value)
            if self.store_prompts and r.prompt is not None:
                mapping["prompt"] = r.prompt
            pipe.hset(key, mapping=mapping)
            pipe.expireat(key, int(r.expires + self.expired_grace) + 1)
            if r.run_id is not None:
                pipe.set(
                    self._run_key(r.run_id),
                    r.decision_id,
                    exat=int(r.expires + self.expired_grace) + 1,
                )
        with driver_errors(self, "keep pending decisions", self._errors):
            pipe.execute()

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        """The ledger's record of a decision (also when expired but not yet dropped), or None.

        A record another client wrote badly is an `UnknownDecisionError`
        that says so (its feedback cannot be learned).
        """
        with driver_errors(self, "read its decision ledger", self._errors):
            flat = self._read_hash(
                keys=[self._decision_key(decision_id)], args=[MAX_FIELD_BYTES, _OVERSIZE]
            )
        if not flat:
            return None
        entry = dict(zip(flat[::2], flat[1::2]))
        try:
            return _parse_decision(decision_id, entry)
        except (KeyError, ValueError, UnicodeDecodeError, TypeError) as e:
            why = f"the field {e} is missing" if isinstance(e, KeyError) else str(e)[:200]
            raise unreadable_decision(self, decision_id, why) from None

    def find_decision(self, run_id: str) -> DecisionRecord | None:
        """The latest pending decision made for a framework call's run id, or None."""
        with driver_errors(self, "read its decision ledger", self._errors):
            decision_id = self.client.getrange(self._run_key(run_id), 0, 1000)
        if not decision_id:
            return None
        try:
            return self.get_decision(decision_id.decode())
        except UnicodeDecodeError:
            raise unreadable_decision(self, run_id, "its decision id is not text") from None

    def set_decision_cost(
        self, decision_id: str, cost: float, latency: float | None = None
    ) -> None:
        """Attach the measured cost (USD) and latency (seconds) to a pending decision."""
        seconds = "" if latency is None else repr(latency)
        with driver_errors(self, "update its decision ledger", self._errors):
            self._set_cost(keys=[self._decision_key(decision_id)], args=[repr(cost), seconds])

    @property
    def answered_key(self) -> str:
        """The index of decisions with a routed answer kept for a grading process."""
        return f"{self.prefix}:answered"

    def keep_answer(self, decision_id: str, handoff: str) -> bool:
        """Attach a routed answer (JSON) to a pending decision, for a grading process.

        Args:
            decision_id: The decision.
            handoff: The answer, as JSON text.

        Returns:
            False when the decision is no longer pending (graded or expired).

        Raises:
            ConfigurationError: The store does not keep prompts (``store_prompts=True``).
        """
        if not self.store_prompts:
            raise ConfigurationError(
                f"{self} does not keep prompts, so it keeps no answers either: open it with "
                "store_prompts=True to grade answers in another process"
            )
        keys = [self._decision_key(decision_id), self.answered_key]
        with driver_errors(self, "update its decision ledger", self._errors):
            kept = self._keep_answer(keys=keys, args=[handoff, repr(time.time()), decision_id])
        return bool(kept)

    def answered_decisions(self, limit: int = 100) -> list[tuple[DecisionRecord, str]]:
        """The oldest pending decisions with an answer kept, and the answer's JSON.

        Entries whose decision is gone (graded, or expired) leave the index as they are met.

        Args:
            limit: The most returned.
        """
        out: list[tuple[DecisionRecord, str]] = []
        with driver_errors(self, "read its decision ledger", self._errors):
            members = self.client.zrange(self.answered_key, 0, max(int(limit) * 2, 1) - 1)
        for raw in members:
            decision_id = raw.decode(errors="replace")
            try:
                record = self.get_decision(decision_id)
            except UnknownDecisionError:
                record = None  # written badly by another client: never graded
            key = self._decision_key(decision_id)
            with driver_errors(self, "read its decision ledger", self._errors):
                size = self.client.hstrlen(key, "answer")
                answer = self.client.hget(key, "answer") if 0 < size <= MAX_FIELD_BYTES else None
                if record is None or answer is None:
                    self.client.zrem(self.answered_key, raw)
                    continue
            out.append((record, answer.decode(errors="replace")))
            if len(out) >= limit:
                break
        return out

    # -- the pool -----------------------------------------------------------------------
    def add_pool_change(self, action: str, arm: str) -> str:
        """Append a pool change (``"add"`` or ``"retire"`` a model) to a list; its position."""
        entry = json.dumps({"action": action, "arm": arm, "time": time.time()})
        with driver_errors(self, f"{action} model {arm!r}", self._errors):
            length = self.client.rpush(f"{self.prefix}:pool", entry)
        return str(int(length))

    def pool_changes_after(self, position: str | None) -> list[tuple[str, str, str]]:
        """``(position, action, arm)`` after ``position`` (all when None), in order."""
        if position and not position.isdigit():
            raise StoreError(f"{self}: {position[:40]!r} is not a position of its pool list")
        start = int(position) if position else 0
        with driver_errors(self, "read its pool", self._errors):
            raw = self._read_list(
                keys=[f"{self.prefix}:pool"], args=[start, 1000, 10_000, _OVERSIZE]
            )
        out = []
        for offset, item in enumerate(raw):
            try:
                entry = json.loads(item)
                out.append((str(start + offset + 1), str(entry["action"]), str(entry["arm"])))
            except (ValueError, KeyError, TypeError, AttributeError):
                out.append((str(start + offset + 1), "unreadable", "?"))
                logger.warning(
                    "%s: an unreadable pool change at %d is skipped", self, start + offset + 1
                )
        return out

    # -- settings -----------------------------------------------------------------------
    def claim_setting(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless one is there already; the value it holds."""
        with driver_errors(self, f"keep setting {name!r}", self._errors):
            self.client.hsetnx(f"{self.prefix}:settings", name, value)
        held = self.setting(name)
        return value if held is None else held

    def setting(self, name: str) -> str | None:
        """The value held under ``name``, or None (a value that is not short text counts as none)."""
        key = f"{self.prefix}:settings"
        with driver_errors(self, "read its settings", self._errors):
            if self.client.hstrlen(key, name) > 1000:
                return None
            raw = self.client.hget(key, name)
        try:
            return None if raw is None else raw.decode()
        except UnicodeDecodeError:
            return None

    # -- budgets ------------------------------------------------------------------------
    def _budget_keys(self, name: str, period: int) -> list[str]:
        base = f"{self.prefix}:budget:{name}"
        return [f"{base}:{period}", f"{base}:weight", f"{base}:{period - 1}"]

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
        """Add to the period's spend and move the shared cost weight, in one round trip."""
        args = [repr(cost), queries, repr(change), repr(floor), repr(ceiling), repr(initial)]
        try:
            with driver_errors(self, f"add to budget {name!r}", self._errors):
                spent, count, weight, previous = self._add_spend(
                    keys=self._budget_keys(name, period), args=[*args, int(self.retention)]
                )
        except StoreError as e:
            if type(e.__cause__).__name__ == "ResponseError":  # the script met another's bad value
                raise CorruptStoreError(
                    f"{self}: budget {name!r} holds a value that is not a number ({e.__cause__}); "
                    "it was written by another client: delete its keys to start the budget again"
                ) from e
            raise
        return checked_budget_state(self, name, period, spent, count, weight, previous)

    def budget_state(self, name: str, period: int) -> BudgetState:
        """The budget's state for ``period`` (zero sums when nothing was spent in it yet)."""
        current, weight, before = self._budget_keys(name, period)
        with driver_errors(self, f"read budget {name!r}", self._errors):
            pipe = self._routing.pipeline(transaction=False)
            pipe.hmget(current, "spent", "queries")
            pipe.get(weight)
            pipe.hget(before, "queries")
            (spent, queries), cost_weight, previous = pipe.execute()
        return checked_budget_state(self, name, period, spent, queries, cost_weight, previous)

    # -- snapshots ----------------------------------------------------------------------
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot of the learned state (older ones are dropped)."""
        payload = json.dumps({"position": snapshot.position}).encode() + b"\n" + snapshot.data
        with driver_errors(self, "save a snapshot", self._errors):
            self.client.set(self.snapshot_key, payload)
            self._trim(snapshot.position)

    def latest_snapshot(self) -> Snapshot | None:
        """The newest snapshot, or None."""
        source = f"redis:{self.snapshot_key}"
        with driver_errors(self, "read its snapshot", self._errors):
            size = self.client.strlen(self.snapshot_key)
            if size > MAX_SNAPSHOT_BYTES:
                raise StateFileError(source, oversize("snapshot", size, MAX_SNAPSHOT_BYTES))
            payload = self.client.get(self.snapshot_key)
            last = self._last_id()
        if payload is None:
            return None
        head, _, data = payload.partition(b"\n")
        try:
            position = str(json.loads(head[:200])["position"])
        except (ValueError, KeyError, TypeError) as e:
            raise StateFileError(source, f"the snapshot header is corrupt ({e})") from e
        at = _stream_id(position)
        if at is None or last is None or at > last:
            raise StateFileError(
                source,
                f"its position {position[:40]!r} is not a position of the event log (which ends "
                f"at {'nothing' if last is None else '-'.join(map(str, last))})",
            )
        return Snapshot(position, data)

    def _last_id(self) -> tuple[int, int] | None:
        """The id of the newest entry the stream ever had (trimmed ones count), or None."""
        try:
            info = self.client.xinfo_stream(self.stream)
        except self._errors as e:
            if "no such key" in str(e).lower():
                return None
            raise
        last = info.get("last-generated-id")
        return (
            None
            if last is None
            else _stream_id(last.decode() if isinstance(last, bytes) else str(last))
        )

    def ping(self) -> None:
        """Raise `StoreError` when the server does not answer within the routing timeout."""
        with driver_errors(self, "answer a ping", self._errors):
            self._routing.ping()

    def close(self) -> None:
        """Close this process's connection(s)."""
        self.client.close()
        if self._routing is not self.client:
            self._routing.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"


def _seconds(raw: bytes | None) -> float | None:
    """A stored latency, or None when absent or not a number of seconds."""
    if raw is None:
        return None
    value = float(raw)
    return value if np.isfinite(value) and value >= 0 else None


def _propensity(raw: bytes | None) -> float | None:
    """A stored propensity, or None when absent or not a probability."""
    if raw is None:
        return None
    value = float(raw)
    return value if 0.0 < value <= 1.0 else None


def _parse_decision(decision_id: str, raw: dict[bytes, bytes]) -> DecisionRecord:
    """A ledger hash as a record (KeyError, ValueError, UnicodeDecodeError when it is not one)."""
    entry = {k.decode(): v for k, v in raw.items()}
    problem = _oversized(entry)
    if problem is not None:
        raise ValueError(problem)
    embedding = entry["embedding"]
    if len(embedding) > MAX_EMBEDDING_BYTES or len(embedding) % 4:
        raise ValueError(
            f"its embedding of {len(embedding)} bytes is not float32s within the limit"
        )
    text = {k: v.decode() for k, v in entry.items() if k != "embedding"}
    numbers = {k: float(text[k]) if k in text else None for k in _FLOATS}
    return DecisionRecord(
        decision_id=decision_id,
        arm=text["arm"],
        embedding=vector(embedding, np.float32),
        cost_weight=float(text["cost_weight"]),
        time=float(text["time"]),
        expires=float(text["expires"]),
        session=text.get("session"),
        run_id=text.get("run_id"),
        propensity=numbers["propensity"],
        cost=numbers["cost"],
        prompt=text.get("prompt"),
        shadows=text.get("shadows"),
        latency=numbers["latency"],
    )


def _parse_event(fields: dict[bytes, bytes]) -> FeedbackEvent | MalformedEvent:
    """One stream entry as an event, or why it is not one (missing field, bad number, ...)."""
    decision_id = None
    try:
        entry = {k.decode(): v for k, v in fields.items()}
        raw_id = entry["decision_id"]
        full_id = None if raw_id.startswith(_OVERSIZE) else raw_id.decode()
        decision_id = None if full_id is None else full_id[:200]  # what a quarantine shows
        problem = _oversized(entry)
        if problem is not None:
            return MalformedEvent(problem, decision_id)
        embedding = entry["embedding"]
        if len(embedding) > MAX_EMBEDDING_BYTES:
            return MalformedEvent(
                oversize("embedding", len(embedding), MAX_EMBEDDING_BYTES), decision_id
            )
        if len(embedding) % 8:
            return MalformedEvent(
                f"an embedding of {len(embedding)} bytes is not float64s", decision_id
            )
        assert full_id is not None  # an oversized id returned above
        return FeedbackEvent(
            full_id,
            entry["arm"].decode(),
            vector(embedding),
            float(entry["quality"]),
            float(entry["cost"]),
            float(entry["time"]),
            entry["prompt"].decode() if "prompt" in entry else None,
            entry.get("failure") == b"1",
            _propensity(entry.get("propensity")),
            entry["shadows"].decode() if "shadows" in entry else None,
            _seconds(entry.get("latency")),
            entry["source"].decode() if "source" in entry else None,
            float(entry["replaces"]) if "replaces" in entry else None,
        )
    except KeyError as e:
        return MalformedEvent(f"the field {e} is missing", decision_id)
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        return MalformedEvent(f"{type(e).__name__}: {e}", decision_id)


def _stream_id(value: str) -> tuple[int, int] | None:
    """A stream id as numbers, or None when ``value`` is not one."""
    ms, _, seq = value.partition("-")
    if not ms.isdigit() or not (seq or "0").isdigit() or len(value) > 45:
        return None
    return int(ms), int(seq or 0)
