"""The MetaLLM router: a linear contextual bandit over a pool of models.

Each arm (model) has a ridge model of quality and of cost over the query embedding plus a
bias term. A query goes to the arm with the highest upper confidence bound on
``quality - p * cost / cost_scale``; feedback updates only the chosen arm (rank-1).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from metallm.embedding.embedders import Embedder, SentenceTransformerEmbedder, check_texts
from metallm.exceptions import (
    ConfigurationError,
    DimensionMismatchError,
    DuplicateFeedbackError,
    InvalidFeedbackError,
    InvalidInputError,
    StateFileError,
    UnknownArmError,
    UnknownDecisionError,
)
from metallm.learning.features import FeatureMap, ProjectedFeatures, feature_map_from_state
from metallm.learning.policies import LinUCB, Policy, policy_from_dict
from metallm.learning.reward import calibrate_cost_weight, cost_scale
from metallm.learning.ridge import RidgeStatistics
from metallm.learning.tuning import AUTO_TUNE_ROWS, DEFAULT_CANDIDATES, Tuning, tune_features
from metallm.serving.failover import Attempts, Cooldown, Fallbacks
from metallm.state._state_file import FORMAT_VERSION, read_state, write_state
from metallm.state.stores import FeedbackEvent, Snapshot, StateStore, snapshot_bytes

__all__ = ["Decision", "Prediction", "Router", "find_router"]

Query = str | np.ndarray | Sequence[float]

logger = logging.getLogger(__name__)

DEFAULT_PROJECTION_DIMS = 128

_ROUTERS: weakref.WeakValueDictionary[str, Router] = weakref.WeakValueDictionary()


def find_router(router_id: str) -> Router:
    """The live router with this id (as carried in a decision's metadata)."""
    router = _ROUTERS.get(router_id)
    if router is None:
        raise UnknownDecisionError(
            f"no live router with id {router_id!r}: pass the router explicitly"
        )
    return router


RowsOfValues = np.ndarray | list[list[float]]
"""Per-arm values, one row per decision: an (n, k) array, or for one decision a list of one list."""
Rows = np.ndarray | list[np.ndarray]
"""Vectors, one row per decision: an (n, dim) array, or for one decision a list of one vector."""


class Selection:
    """What one ``select`` / ``select_batch`` call computed; its decisions read their rows from it.

    Decisions share these arrays instead of holding per-decision numpy views, so a decision is
    one small tuple: that keeps ``select_batch`` above 100,000 decisions/s (docs/performance.md).
    """

    __slots__ = ("arms", "index", "scores", "bonus", "embeddings", "features", "prompts")

    def __init__(self, arms: tuple[str, ...], index: dict[str, int], scores: RowsOfValues, bonus: RowsOfValues,
                 embeddings: Rows, features: Rows, prompts: list[str | None] | None) -> None:
        self.arms, self.index, self.scores, self.bonus = arms, index, scores, bonus
        self.embeddings, self.features, self.prompts = embeddings, features, prompts


class ArmValues(Mapping[str, float]):
    """A read-only ``{arm: value}`` view over one row of a selection's scores (built without a dict)."""

    __slots__ = ("_arms", "_index", "_values", "_row")

    def __init__(self, selection: Selection, values: RowsOfValues, row: int) -> None:
        self._arms, self._index, self._values, self._row = selection.arms, selection.index, values, row

    def __getitem__(self, arm: str) -> float:
        return float(self._values[self._row][self._index[arm]])

    def __iter__(self) -> Iterator[str]:
        return iter(self._arms)

    def __len__(self) -> int:
        return len(self._arms)

    def __repr__(self) -> str:
        return repr(dict(self))


class Decision(NamedTuple):
    """One routing decision: the chosen arm, why, and what the later update needs (immutable).

    ``scores``, ``bonus`` and ``embedding`` are read from the :class:`Selection` that made the
    decision, so a decision costs one tuple however many arms there are.
    """

    id: str
    arm: str
    cost_weight: float
    selection: Selection
    row: int
    """This decision's row in ``selection``."""
    forced: bool = False
    """True when the caller named the arm instead of letting the router choose."""
    sticky: bool = False
    """True when the arm was kept from earlier in the same session."""

    @property
    def scores(self) -> Mapping[str, float]:
        """Upper confidence bound per arm: predicted reward plus ``bonus``."""
        return ArmValues(self.selection, self.selection.scores, self.row)

    @property
    def bonus(self) -> Mapping[str, float]:
        """The exploration bonus per arm (``alpha * width`` for LinUCB)."""
        return ArmValues(self.selection, self.selection.bonus, self.row)

    @property
    def embedding(self) -> np.ndarray:
        """The query's embedding (a read-only view)."""
        row: np.ndarray = self.selection.embeddings[self.row]
        row.setflags(write=False)
        return row

    def to_metadata(self) -> dict[str, Any]:
        """A JSON-friendly summary for response metadata."""
        return {
            "decision_id": self.id,
            "model": self.arm,
            "scores": dict(self.scores.items()),
            "bonus": dict(self.bonus.items()),
            "cost_weight": self.cost_weight,
            "forced": self.forced,
            "sticky": self.sticky,
        }

    def __repr__(self) -> str:
        return (f"Decision(id={self.id!r}, arm={self.arm!r}, cost_weight={self.cost_weight}, "
                f"forced={self.forced}, sticky={self.sticky})")


class Prediction(NamedTuple):
    """Per-arm predictions, each (n_queries, n_arms)."""

    quality: np.ndarray
    cost: np.ndarray
    """In USD (not normalised)."""
    width: np.ndarray
    """Confidence width ``sqrt(x^T A^-1 x)``."""


class Router:
    """Route each query to the model with the best expected quality for the money.

    Args:
        arms: Names of the models in the pool (unique, at least one).
        cost_weight: ``p`` in ``reward = quality - p * cost / cost_scale``. 0 ignores cost.
        policy: How predictions become a choice; default ``LinUCB(alpha=1.0, l2=1.0)``.
        embedder: Turns query text into a vector; default a lazily loaded Sentence-BERT.
        cost_scale: Fix the cost normaliser (USD); default: the priciest arm's mean
            observed cost, so that arm's mean normalised cost is 1.
        max_pending: How many decisions awaiting feedback are kept; older ones are evicted
            (counted in :attr:`evicted_decisions`).
        features: What the per-arm models see of an embedding; default a 128-d projection
            of it plus a bias (penalty: the policy's ``l2``), which learns online faster and
            routes faster than the full embedding. ``EmbeddingFeatures()`` is the paper's
            model. :meth:`fit` may replace it with a map chosen by cross-validation (``tune``).
        cooldown: When a failing model is left out of routing, and for how long.
        max_sessions: How many sessions' models are remembered for sticky routing.
        store: Where feedback events and snapshots live (:class:`metallm.SQLiteStore`,
            :class:`metallm.RedisStore`). The learned state is restored from it now, every
            ``record`` is written to it before it returns, and events written by other
            processes are folded in (see :meth:`sync`).
        snapshot_every: Events between two snapshots in the store.
        sync_interval: Seconds between automatic :meth:`sync` calls in ``select``; None: never.
        seed: Seed of the tie-breaking and exploration randomness.

    >>> import numpy as np
    >>> router = Router(["small", "large"], embedder=None)
    >>> decision = router.select(np.array([1.0, 0.0]))   # an untrained router still selects
    >>> router.record(decision.id, quality=1.0, cost=0.002)
    >>> sorted(decision.scores)
    ['large', 'small']
    """

    def __init__(
        self,
        arms: Sequence[str],
        *,
        cost_weight: float = 0.1,
        policy: Policy | None = None,
        embedder: Embedder | None | str = "default",
        cost_scale: float | None = None,
        max_pending: int = 10_000,
        features: FeatureMap | None = None,
        cooldown: Cooldown | None = None,
        max_sessions: int = 10_000,
        store: StateStore | None = None,
        snapshot_every: int = 1_000,
        sync_interval: float | None = 1.0,
        seed: int | None = None,
    ) -> None:
        names = list(arms)
        if not names:
            raise ConfigurationError("the pool is empty: give the router at least one model")
        if any(not isinstance(a, str) or not a for a in names):
            raise ConfigurationError(f"model names must be non-empty strings, got {names!r}")
        if len(set(names)) != len(names):
            dupes = sorted({a for a in names if names.count(a) > 1})
            raise ConfigurationError(f"duplicate model names: {dupes}")
        self.arms: tuple[str, ...] = tuple(names)
        self._index = {a: i for i, a in enumerate(self.arms)}
        self.cost_weight = _check_cost_weight(cost_weight)
        self.policy: Policy = policy if policy is not None else LinUCB()
        self.features: FeatureMap = (
            features if features is not None else ProjectedFeatures(DEFAULT_PROJECTION_DIMS, l2=self.policy.l2)
        )
        self.tuning_: Tuning | None = None
        """The cross-validation that chose :attr:`features` in the last :meth:`fit`, if any."""
        self.embedder: Embedder | None = (
            SentenceTransformerEmbedder() if embedder == "default" else embedder  # type: ignore[assignment]
        )
        if cost_scale is not None and not (math.isfinite(cost_scale) and cost_scale > 0):
            raise ConfigurationError(f"cost_scale must be a positive number, got {cost_scale!r}")
        self.fixed_cost_scale = cost_scale
        if max_pending < 1:
            raise ConfigurationError("max_pending must be at least 1")
        self.max_pending = max_pending
        self.cooldown = cooldown if cooldown is not None else Cooldown()
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self.id = uuid.uuid4().hex
        self._decisions = 0  # decision ids: this router's random id + a counter (unique, cheap)
        self._rng = np.random.default_rng(seed)
        self._stats: RidgeStatistics | None = None
        self._embedding_dim = 0
        self._scale_key: tuple[int, int] | None = None
        self._scale = 1.0
        self._pending: OrderedDict[str, Decision] = OrderedDict()
        self._observed_costs: dict[str, float] = {}
        self._recorded: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.RLock()
        self.evicted_decisions = 0
        """Decisions dropped from the pending buffer before their feedback arrived."""
        self.n_updates = 0
        """Feedback events learned from (online records and offline rows)."""
        self.store = store
        self.snapshot_every = snapshot_every
        self.sync_interval = sync_interval
        self.restored_from_log = False
        """True when a corrupt snapshot was skipped and the whole event log replayed."""
        self._store_position: str | None = None
        self._since_snapshot = 0
        self._last_sync = 0.0
        _ROUTERS[self.id] = self
        if store is not None:
            self._restore()

    # -- properties ---------------------------------------------------------------------
    @property
    def dimension(self) -> int | None:
        """Embedding size, known after the first query or fit (None before)."""
        return None if self._stats is None else self._embedding_dim

    @property
    def pending_decisions(self) -> int:
        """Decisions still waiting for feedback."""
        return len(self._pending)

    @property
    def cost_scale(self) -> float:
        """The cost normaliser in USD: fixed, or the priciest arm's mean observed cost."""
        if self.fixed_cost_scale is not None:
            return self.fixed_cost_scale
        if self._stats is None:
            return 1.0
        key = (id(self._stats), self.n_updates)
        if self._scale_key != key:  # recomputed only after the statistics changed
            self._scale_key, self._scale = key, cost_scale(self._stats.counts(), self._stats.cost_sums())
        return self._scale

    @property
    def counts(self) -> dict[str, int]:
        """Feedback events learned per arm."""
        if self._stats is None:
            return dict.fromkeys(self.arms, 0)
        return {a: int(c) for a, c in zip(self.arms, self._stats.counts(), strict=False)}

    # -- embedding ----------------------------------------------------------------------
    def embed(self, queries: Sequence[Query] | np.ndarray) -> np.ndarray:
        """Embeddings (n, dim) of texts, or the given embeddings checked."""
        if isinstance(queries, np.ndarray) and queries.ndim == 2:
            matrix = np.asarray(queries, dtype=np.float64)
        else:
            items = list(queries)
            if items and all(isinstance(q, str) for q in items):
                if self.embedder is None:
                    raise ConfigurationError(
                        "this router has no embedder: pass embeddings, or an embedder"
                    )
                matrix = np.asarray(self.embedder.embed(check_texts(items)), dtype=np.float64)
            else:
                for i, q in enumerate(items):
                    if isinstance(q, str):
                        raise InvalidInputError(f"query {i} mixes text with embeddings")
                matrix = np.asarray(items, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise InvalidInputError(f"expected a non-empty (n, dim) batch, got shape {matrix.shape}")
        if not math.isfinite(matrix.sum()) and not np.isfinite(matrix).all():  # one cheap sum first
            raise InvalidInputError("embeddings contain NaN or inf")
        if self._stats is not None and matrix.shape[1] != self._embedding_dim:
            raise self._dimension_mismatch(matrix.shape[1])
        return matrix

    def _dimension_mismatch(self, dim: int) -> DimensionMismatchError:
        return DimensionMismatchError(
            f"embedding has {dim} dimensions but the router was built on "
            f"{self._embedding_dim}; use the same embedding model throughout"
        )

    def _features(self, embeddings: np.ndarray) -> np.ndarray:
        return self.features.transform(embeddings)

    def _ensure_stats(self, dim: int) -> RidgeStatistics:
        with self._lock:
            if self._stats is None:
                if not self.features.fitted:
                    raise ConfigurationError(
                        f"{self.features.name} must be fitted first: call router.fit(...) on logged data"
                    )
                self._embedding_dim = dim
                self._stats = RidgeStatistics(
                    len(self.arms), self.features.dimension(dim), self.features.penalties(dim)
                )
            elif self._embedding_dim != dim:
                raise self._dimension_mismatch(dim)
            return self._stats

    # -- prediction and selection -------------------------------------------------------
    def predict(self, queries: Sequence[Query] | np.ndarray) -> Prediction:
        """Predicted quality, cost (USD) and width per arm for each query."""
        embeddings = self.embed(_as_batch(queries))
        stats = self._ensure_stats(embeddings.shape[1])
        X = self._features(embeddings)
        with self._lock:
            quality, cost_norm, width = stats.predict(X)
        return Prediction(quality, cost_norm, width)

    def select(
        self,
        query: Query,
        *,
        exclude: Iterable[str] = (),
        force: str | None = None,
        session: str | None = None,
        ignore_cooldown: bool = False,
    ) -> Decision:
        """Choose an arm for one query (text or embedding).

        ``exclude`` removes arms from this choice (e.g. ones that just failed); ``force``
        names the arm to use (the decision still records scores and learns from feedback);
        ``session`` keeps a conversation on the model it started with (see :meth:`stick`).
        Models cooling down after repeated failures are left out unless every one is.
        """
        excluded = set(exclude)
        if force is None and session is not None:
            with self._lock:
                kept = self._sessions.get(session)
                if kept is not None:
                    self._sessions.move_to_end(session)
            if kept is not None and kept not in excluded and (
                ignore_cooldown or kept not in self.cooldown.cooling()
            ):
                decision = self.select_batch(_one(query), force=kept)[0]
                return decision._replace(forced=False, sticky=True)
        return self._select_one(query, excluded, force, ignore_cooldown)

    def _select_one(self, query: Query, exclude: set[str], force: str | None, ignore_cooldown: bool) -> Decision:
        """:meth:`select_batch` for one query, with as few numpy calls as the maths allows."""
        if self.store is not None:
            self._sync_if_due()
        if isinstance(query, str):
            embedding = self.embed([query])[0]
        else:
            embedding = _one_embedding(query)
        dim = embedding.shape[0]
        stats = self._stats if self._stats is not None else self._ensure_stats(dim)
        if dim != self._embedding_dim:
            raise self._dimension_mismatch(dim)
        if exclude or force is not None or self.cooldown.active:
            excluded, forced = self._allowed(exclude, force, ignore_cooldown)
        else:
            excluded, forced = set(), None
        features = self.features.transform_one(embedding)
        with self._lock:
            # Three matrix products, then plain floats: for one query and a pool of models
            # that is faster than a dozen small numpy calls (docs/performance.md).
            means, quad = stats.predict_one(features)
            bonus = self.policy.bonus(np.sqrt(np.maximum(quad, 0.0, out=quad), out=quad)).tolist()
            quality, cost = means.tolist()
            weight = self.cost_weight / self.cost_scale
            scores = [q - weight * c + b for q, c, b in zip(quality, cost, bonus)]
            if forced is not None:
                chosen = forced
            elif excluded:
                chosen = self.policy.choose_one([-math.inf if i in excluded else v for i, v in enumerate(scores)],
                                                self._rng)
            else:
                chosen = self.policy.choose_one(scores, self._rng)
            prompts: list[str | None] | None = None
            if isinstance(query, str) and self.store is not None and self.store.store_prompts:
                prompts = [query]
            selection = Selection(self.arms, self._index, [scores], [bonus], [embedding], [features], prompts)
            self._decisions += 1
            decision: Decision = tuple.__new__(Decision, (f"{self.id}-{self._decisions:x}", self.arms[chosen],
                                                          self.cost_weight, selection, 0, forced is not None, False))
            self._pending[decision.id] = decision
            if len(self._pending) > self.max_pending:
                self._evict()
        return decision

    def _sync_if_due(self) -> None:
        if self.store is not None and self.sync_interval is not None and (
            time.monotonic() - self._last_sync >= self.sync_interval
        ):
            self.sync()

    def _allowed(self, exclude: Iterable[str], force: str | None, ignore_cooldown: bool) -> tuple[set[int], int | None]:
        """Indices left out of this choice (asked for, or cooling down) and the forced one."""
        excluded = {self._arm_index(a) for a in exclude}
        forced = None if force is None else self._arm_index(force)
        if len(excluded) == len(self.arms) and forced is None:
            raise InvalidInputError("every model is excluded: nothing left to route to")
        if not ignore_cooldown:
            cooling = {self._index[a] for a in self.cooldown.cooling()}
            if cooling and len(excluded | cooling) < len(self.arms):
                excluded |= cooling
        return excluded, forced

    def stick(self, session: str, arm: str) -> None:
        """Keep ``session`` on ``arm`` from now on (until it fails over or is forgotten)."""
        self._arm_index(arm)
        with self._lock:
            self._sessions[session] = arm
            self._sessions.move_to_end(session)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def attempts(
        self,
        query: str,
        *,
        force: str | None = None,
        fallbacks: Fallbacks | None = None,
        session: str | None = None,
        record_errors: bool = True,
    ) -> Attempts:
        """The fallback loop of one call: ``first()``, then ``failed(...)`` / ``succeeded(...)``."""
        return Attempts(self, query, force=force, fallbacks=fallbacks or Fallbacks(),
                        session=session, record_errors=record_errors)

    def select_batch(
        self,
        queries: Sequence[Query] | np.ndarray,
        *,
        exclude: Iterable[str] = (),
        force: str | None = None,
        ignore_cooldown: bool = False,
    ) -> list[Decision]:
        """Choose an arm for each query, vectorised over the batch."""
        self._sync_if_due()
        embeddings = self.embed(queries)
        self._ensure_stats(embeddings.shape[1])
        excluded, forced = self._allowed(exclude, force, ignore_cooldown)
        X = self._features(embeddings)
        with self._lock:
            assert self._stats is not None
            quality, cost, width = self._stats.predict(X, fast_width=True)
            scale = self.cost_scale
            bonus = self.policy.bonus(width)
            scores = quality - self.cost_weight * cost / scale + bonus
            if excluded:
                masked = scores.copy()
                masked[:, sorted(excluded)] = -np.inf
            else:
                masked = scores
            if forced is None:
                chosen = self.policy.choose(masked, self._rng)
            else:
                chosen = np.full(X.shape[0], forced)
            keep_prompts = self.store is not None and self.store.store_prompts and isinstance(queries, list)
            prompts = [q if isinstance(q, str) else None for q in queries] if keep_prompts else None
            if embeddings is queries:
                embeddings = embeddings.copy()  # our own copy: the caller may reuse its array
            selection = Selection(self.arms, self._index, scores, bonus, embeddings, X, prompts)
            # One tuple per decision, built without the NamedTuple constructor's Python frame.
            first, prefix, arms = self._decisions + 1, f"{self.id}-", self.arms
            make, weight, is_forced = tuple.__new__, self.cost_weight, forced is not None
            decisions: list[Decision] = [
                make(Decision, (f"{prefix}{first + row:x}", arms[arm], weight, selection, row, is_forced, False))
                for row, arm in enumerate(chosen.tolist())
            ]
            self._decisions += len(decisions)
            self._pending.update((d[0], d) for d in decisions)
            if len(self._pending) > self.max_pending:
                self._evict()
        return decisions

    def _evict(self) -> None:
        """Drop the oldest pending decisions beyond ``max_pending``."""
        while len(self._pending) > self.max_pending:
            decision_id, _ = self._pending.popitem(last=False)
            self._observed_costs.pop(decision_id, None)
            self.evicted_decisions += 1

    # -- online feedback ----------------------------------------------------------------
    def observe_cost(self, decision_id: str, cost: float) -> None:
        """Attach the measured cost (USD) to a pending decision, for a later :meth:`record`."""
        c = _check_cost(cost)
        with self._lock:
            self._pending_for(decision_id)
            self._observed_costs[decision_id] = c

    def record(self, decision_id: str, *, quality: float, cost: float | None = None) -> None:
        """Learn from the outcome of a decision: updates the chosen arm only.

        ``quality`` is in [0, 1]; ``cost`` is the USD the call cost. When ``cost`` is None
        the cost attached by :meth:`observe_cost` is used.
        """
        q = _check_quality(quality)
        with self._lock:
            decision = self._pending_for(decision_id)
            if cost is None:
                c = self._observed_costs.get(decision_id)
                if c is None:
                    raise InvalidFeedbackError(
                        f"no cost known for decision {decision_id}: pass cost= (USD)"
                    )
            else:
                c = _check_cost(cost)
            selection, row = decision.selection, decision.row
            if self.store is not None:
                prompt = None if selection.prompts is None else selection.prompts[row]
                event = FeedbackEvent(decision_id, decision.arm, selection.embeddings[row], q, c, time.time(), prompt)
                try:
                    self.store.append(event)  # durable before record returns
                except (sqlite3.IntegrityError, ValueError) as e:
                    raise DuplicateFeedbackError(f"feedback for decision {decision_id} is already in the store") from e
            del self._pending[decision_id]
            if self._observed_costs:
                self._observed_costs.pop(decision_id, None)
            self._recorded[decision_id] = None
            if len(self._recorded) > self.max_pending:
                self._recorded.popitem(last=False)
            if self.store is not None:
                self.sync()  # folds this event, and any from other processes, in log order
                return
            assert self._stats is not None
            self._stats.update(self._index[decision.arm], selection.features[row], np.array([q, c]))
            self.n_updates += 1

    def _pending_for(self, decision_id: str) -> Decision:
        decision = self._pending.get(decision_id)
        if decision is not None:
            return decision
        if decision_id in self._recorded:
            raise DuplicateFeedbackError(f"feedback for decision {decision_id} was already recorded")
        raise UnknownDecisionError(
            f"unknown decision id {decision_id!r}: never issued by this router, or evicted "
            f"(only the last {self.max_pending} pending decisions are kept; raise max_pending)"
        )

    # -- the store ----------------------------------------------------------------------
    def sync(self) -> int:
        """Fold the store's events not yet learned (from any process) into this router.

        Returns how many were applied. Events are applied in the store's order, so every
        process that has synced the same events holds exactly the same statistics.
        """
        if self.store is None:
            return 0
        applied = 0
        with self._lock:
            for position, event in self.store.events_after(self._store_position):
                self._apply(event)
                self._store_position = position
                applied += 1
            self._since_snapshot += applied
            self._last_sync = time.monotonic()
            if self._since_snapshot >= self.snapshot_every:
                self.snapshot()
        return applied

    def snapshot(self) -> None:
        """Write the current statistics to the store, so a new process starts fast."""
        if self.store is None or self._store_position is None:
            return
        with self._lock:
            data = snapshot_bytes(self.save)
            self.store.save_snapshot(Snapshot(self._store_position, data))
            self._since_snapshot = 0

    def _apply(self, event: FeedbackEvent) -> None:
        arm = self._index.get(event.arm)
        if arm is None:
            raise StateFileError(str(self.store), f"event {event.decision_id} names unknown model {event.arm!r}")
        embedding = np.asarray(event.embedding, dtype=np.float64)[None, :]
        stats = self._ensure_stats(embedding.shape[1])
        stats.update(arm, self._features(embedding)[0], np.array([event.quality, event.cost]))
        self.n_updates += 1

    def _restore(self) -> None:
        assert self.store is not None
        snapshot = self.store.latest_snapshot()
        if snapshot is not None:
            try:
                header, arrays = read_state(f"{self.store} snapshot", data=snapshot.data)
                self._adopt(header, arrays, f"{self.store} snapshot")
                self._store_position = snapshot.position
            except StateFileError as e:
                logger.warning("%s; replaying the whole event log instead", e)
                self.restored_from_log = True
                self._stats, self.n_updates, self._store_position = None, 0, None
        self.sync()

    # -- offline learning ---------------------------------------------------------------
    def fit(
        self,
        queries: Sequence[Query] | np.ndarray,
        quality: np.ndarray | Sequence[Sequence[float]],
        cost: np.ndarray | Sequence[Sequence[float]],
        *,
        tune: bool | str | Sequence[FeatureMap] = "auto",
        seed: int = 0,
    ) -> Router:
        """Train from scratch on logged data where every arm's outcome is known.

        ``quality`` and ``cost`` are (n, n_arms), columns in :attr:`arms` order.

        With ``tune`` (``"auto"``: when there are at least 300 rows) the feature map is
        chosen among :data:`metallm.tuning.DEFAULT_CANDIDATES` by 5-fold cross-validated
        AIQ on these rows (see :attr:`tuning_`); ``tune`` may also be the candidates to
        choose among, e.g. ``[ProjectedFeatures(64)]`` for fast routing (fitted: PCA).
        Without it, the router keeps its feature map. Either way the result is the ridge regression
        ``theta = (F^T F + diag(penalties))^-1 F^T y`` per arm on the features ``F``.
        """
        embeddings = self.embed(_as_batch(queries))
        Q = _check_matrix(quality, "quality", embeddings.shape[0], len(self.arms))
        C = _check_matrix(cost, "cost", embeddings.shape[0], len(self.arms))
        _check_quality_array(Q)
        _check_cost_array(C)
        candidates: tuple[FeatureMap, ...] = DEFAULT_CANDIDATES
        if isinstance(tune, str):
            if tune != "auto":
                raise ConfigurationError(f'tune must be "auto", True, False or a list of feature maps, got {tune!r}')
            tune = bool(embeddings.shape[0] >= AUTO_TUNE_ROWS)
        elif not isinstance(tune, bool):
            candidates = tuple(tune)
            if not candidates:
                raise ConfigurationError("tune was given no candidate feature maps")
        with self._lock:
            if tune:
                self.tuning_ = tune_features(embeddings, Q, C, candidates=candidates, seed=seed)
                self.features = self.tuning_.chosen
            self.features = self.features.fit(embeddings, seed=seed) if tune or not self.features.fitted else self.features
            self._stats = None
            self._ensure_stats(embeddings.shape[1])
            assert self._stats is not None
            X = self._features(embeddings)
            gram = X.T @ X
            self._stats.A += gram[None]
            self._stats.B[:] = np.einsum("nd,nkj->kdj", X, np.stack([Q, C], axis=2))
            self._stats.refresh()
            self.n_updates = X.shape[0] * len(self.arms)
        return self

    def partial_fit(
        self,
        queries: Sequence[Query] | np.ndarray,
        arms: Sequence[str],
        quality: Sequence[float] | np.ndarray,
        cost: Sequence[float] | np.ndarray,
    ) -> Router:
        """Update from logged bandit data: one (arm, quality, cost) outcome per query."""
        embeddings = self.embed(_as_batch(queries))
        n = embeddings.shape[0]
        arm_names = list(arms)
        if len(arm_names) != n:
            raise InvalidInputError(f"{n} queries but {len(arm_names)} arms")
        idx = np.array([self._arm_index(a) for a in arm_names])
        Q = _check_vector(quality, "quality", n)
        C = _check_vector(cost, "cost", n)
        _check_quality_array(Q)
        _check_cost_array(C)
        stats = self._ensure_stats(embeddings.shape[1])
        X = self._features(embeddings)
        Y = np.stack([Q, C], axis=1)
        with self._lock:
            for k in np.unique(idx):
                rows = idx == k
                stats.add_batch(int(k), X[rows], Y[rows])
            self.n_updates += n
        return self

    def calibrate(
        self,
        budget: float,
        queries: Sequence[Query] | np.ndarray,
        quality: np.ndarray | Sequence[Sequence[float]],
        cost: np.ndarray | Sequence[Sequence[float]],
    ) -> float:
        """Set and return the ``p`` with the best validation quality within ``budget`` $/query.

        Validation rows know every arm's outcome (``quality``, ``cost`` are (n, n_arms)).
        Raises :class:`InfeasibleBudgetError` when no ``p`` gets under the budget.
        """
        if not (math.isfinite(budget) and budget >= 0):
            raise InvalidInputError(f"budget must be a finite number >= 0 USD, got {budget!r}")
        prediction = self.predict(queries)
        n = prediction.quality.shape[0]
        Q = _check_matrix(quality, "quality", n, len(self.arms))
        C = _check_matrix(cost, "cost", n, len(self.arms))
        result = calibrate_cost_weight(
            prediction.quality, prediction.cost / self.cost_scale, Q, C, budget
        )
        self.cost_weight = result.cost_weight
        return result.cost_weight

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the learned state atomically (``.npz`` + JSON header; pending decisions are not saved)."""
        with self._lock:
            feature_header, feature_arrays = self.features.to_state()
            header = {
                "format_version": FORMAT_VERSION,
                "arms": list(self.arms),
                "dimension": self.dimension,
                "cost_weight": self.cost_weight,
                "cost_scale": self.fixed_cost_scale,
                "policy": self.policy.to_dict(),
                "features": feature_header,
                "n_updates": self.n_updates,
                "embedding_model": getattr(self.embedder, "model_name", None),
            }
            arrays: dict[str, np.ndarray] = {f"features_{k}": v for k, v in feature_arrays.items()}
            if self._stats is not None:
                arrays.update(A=self._stats.A.copy(), B=self._stats.B.copy())
        return write_state(path, header, arrays)

    @classmethod
    def load(
        cls, path: str | Path, *, embedder: Embedder | None | str = "default", seed: int | None = None
    ) -> Router:
        """A router with the state saved by :meth:`save`; raises :class:`StateFileError` if bad."""
        header, arrays = read_state(path)
        try:
            router = cls(
                header["arms"],
                cost_weight=header["cost_weight"],
                policy=policy_from_dict(header["policy"]),
                embedder=embedder,
                cost_scale=header["cost_scale"],
                seed=seed,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StateFileError(path, f"the header is incomplete or invalid ({e!r})") from e
        router._adopt(header, arrays, path)
        return router

    def _adopt(self, header: dict[str, Any], arrays: dict[str, np.ndarray], source: str | Path) -> None:
        """Take the learned state (features, statistics) of a saved router."""
        try:
            if list(header["arms"]) != list(self.arms):
                raise StateFileError(source, f"it holds models {header['arms']}, this router {list(self.arms)}")
            features = feature_map_from_state(
                header["features"],
                {k.removeprefix("features_"): v for k, v in arrays.items() if k.startswith("features_")},
            )
            dim = header["dimension"]
            n_updates = int(header["n_updates"])
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, StateFileError):
                raise
            raise StateFileError(source, f"the header is incomplete or invalid ({e!r})") from e
        if dim is None:
            self.features, self._stats, self.n_updates = features, None, n_updates
            return
        if "A" not in arrays or "B" not in arrays:
            raise StateFileError(source, "the arrays A and B are missing")
        k, d = len(self.arms), features.dimension(int(dim))
        A, B = arrays["A"], arrays["B"]
        if A.shape != (k, d, d) or B.shape != (k, d, 2):
            raise StateFileError(
                source, f"array shapes A{A.shape} B{B.shape} do not match {k} arms of dimension {dim}"
            )
        if not (np.isfinite(A).all() and np.isfinite(B).all()):
            raise StateFileError(source, "the arrays contain NaN or inf")
        stats = RidgeStatistics(k, d, features.penalties(int(dim)))
        stats.A[:] = A
        stats.B[:] = B
        try:
            stats.refresh()
        except np.linalg.LinAlgError as e:
            raise StateFileError(source, "matrix A is not positive definite (corrupt statistics)") from e
        with self._lock:
            self.features, self._stats, self._embedding_dim, self.n_updates = features, stats, int(dim), n_updates

    def _arm_index(self, arm: str) -> int:
        try:
            return self._index[arm]
        except (KeyError, TypeError):
            raise UnknownArmError(arm, self.arms) from None

    def __repr__(self) -> str:
        return (
            f"Router(arms={list(self.arms)}, cost_weight={self.cost_weight}, "
            f"policy={self.policy}, n_updates={self.n_updates})"
        )


# -- validation helpers -----------------------------------------------------------------
def _as_batch(queries: Any) -> Any:
    if isinstance(queries, str):
        return [queries]
    if isinstance(queries, np.ndarray) and queries.ndim == 1:
        return queries[None, :]
    return queries


def _one(query: Query) -> list[str] | np.ndarray:
    """One query as a batch: a list of one text, or a (1, dim) array."""
    if isinstance(query, str):
        return [query]
    return np.asarray(query, dtype=np.float64).reshape(1, -1)


def _one_embedding(query: np.ndarray | Sequence[float]) -> np.ndarray:
    """One embedding (dim,), checked, in an array of our own (the caller may reuse theirs)."""
    embedding = np.array(query, dtype=np.float64)
    if embedding.ndim == 2 and embedding.shape[0] == 1:
        embedding = embedding[0]
    if embedding.ndim != 1 or embedding.shape[0] == 0:
        raise InvalidInputError(f"expected one embedding of shape (dim,), got shape {embedding.shape}")
    if not math.isfinite(np.dot(embedding, embedding)):  # one call; NaN and inf both reach it
        raise InvalidInputError("embeddings contain NaN or inf")
    return embedding


def _check_cost_weight(p: float) -> float:
    if not (isinstance(p, (int, float)) and math.isfinite(p) and p >= 0):
        raise ConfigurationError(f"cost_weight must be a finite number >= 0, got {p!r}")
    return float(p)


def _check_quality(quality: float) -> float:
    try:
        q = float(quality)
    except (TypeError, ValueError):
        raise InvalidFeedbackError(f"quality must be a number in [0, 1], got {quality!r}") from None
    if not math.isfinite(q) or not 0.0 <= q <= 1.0:
        raise InvalidFeedbackError(f"quality must be a number in [0, 1], got {quality!r}")
    return q


def _check_cost(cost: float) -> float:
    try:
        c = float(cost)
    except (TypeError, ValueError):
        raise InvalidFeedbackError(f"cost must be a number of USD >= 0, got {cost!r}") from None
    if not math.isfinite(c) or c < 0:
        raise InvalidFeedbackError(f"cost must be a finite number of USD >= 0, got {cost!r}")
    return c


def _check_matrix(values: Any, name: str, n: int, k: int) -> np.ndarray:
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidFeedbackError(f"{name} must be numeric: {e}") from e
    if matrix.shape != (n, k):
        raise InvalidFeedbackError(f"{name} must have shape ({n}, {k}) (queries x models), got {matrix.shape}")
    return matrix


def _check_vector(values: Any, name: str, n: int) -> np.ndarray:
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidFeedbackError(f"{name} must be numeric: {e}") from e
    if vector.shape != (n,):
        raise InvalidFeedbackError(f"{name} must have shape ({n},), got {vector.shape}")
    return vector


def _check_quality_array(Q: np.ndarray) -> None:
    bad = ~np.isfinite(Q) | (Q < 0) | (Q > 1)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidFeedbackError(f"quality must be in [0, 1]; found {float(Q[pos])!r} at {pos}")


def _check_cost_array(C: np.ndarray) -> None:
    bad = ~np.isfinite(C) | (C < 0)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidFeedbackError(f"cost must be finite and >= 0 USD; found {float(C[pos])!r} at {pos}")
