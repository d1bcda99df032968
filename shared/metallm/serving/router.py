"""The MetaLLM router: a linear contextual bandit over a pool of named models, made safe to serve.

The :class:`Router` composes small parts, each with one job:

* :class:`~metallm.learning.bandit.LinearBandit` — the learning: per-arm ridge models of
  quality and cost, and the policy that turns them into a choice (arms by index, no ids,
  locks, clocks or stores);
* :class:`~metallm.serving.ledger.PendingDecisions` — decisions awaiting feedback;
* :class:`~metallm.serving.sessions.StickySessions` — conversations kept on one model;
* :class:`~metallm.serving.failover.Cooldown` — failing models left out for a while;
* :class:`~metallm.serving.sync.StoreSync` — the event log shared through a store.

It adds model names, decision ids, input checks and a lock around them. A query goes to the
arm with the highest upper confidence bound on ``quality - p * cost / cost_scale``; feedback
updates only the chosen arm (rank-1).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from metallm.embedding.choice import default_embedder
from metallm.embedding.embedders import Embedder, check_texts
from metallm.exceptions import (
    ConfigurationError,
    CorruptStoreError,
    DuplicateFeedbackError,
    ExpiredDecisionError,
    InvalidFeedbackError,
    InvalidInputError,
    LogTrimmedError,
    StoreError,
    UnknownArmError,
    UnknownDecisionError,
)
from metallm.learning.bandit import LinearBandit
from metallm.learning.features import (
    FeatureMap,
    ProjectedFeatures,
    PromptLengthFeatures,
    reads_prompt_length,
    with_prompt_length,
)
from metallm.learning.neighbours import NeighbourQuality
from metallm.learning.onboarding import (
    combination_start,
    most_similar,
    prior_start,
    quiz_rows,
)
from metallm.learning.policies import LinUCB, Policy
from metallm.learning.tuning import Tuning
from metallm.serving import offline, persistence
from metallm.serving._checks import (
    Query,
    as_batch,
    check_cost,
    check_cost_array,
    check_cost_weight,
    check_embeddings,
    check_id,
    check_latency,
    check_latency_weight,
    check_quality,
    check_quality_array,
    check_vector,
    one_embedding,
)
from metallm.serving.budget import Budget, BudgetKeeper, cheapest_arm
from metallm.serving.call import RoutedCall
from metallm.serving.capabilities import Capabilities, Needs
from metallm.serving.decisions import Decision, Prediction, Selection
from metallm.serving.failover import Cooldown, Fallbacks
from metallm.serving.feedback import Feedback, FeedbackSummary, record_all
from metallm.serving.ledger import PendingDecisions, PendingEntry
from metallm.serving.pricing import Prices
from metallm.serving.sessions import StickySessions
from metallm.serving.shadows import check_shadows, choose_many, choose_one
from metallm.serving.spool import Spool
from metallm.serving.sync import StoreSync, pool_change_problem
from metallm.state.base import (
    DecisionRecord,
    FeedbackEvent,
    MalformedEvent,
    PoolStore,
    SettingsStore,
    StateStore,
    snapshot_bytes,
)

__all__ = ["DEFAULT_FEEDBACK_TTL", "Decision", "Prediction", "Router"]

logger = logging.getLogger(__name__)

DEFAULT_PROJECTION_DIMS = 128
LEDGER_BACKLOG = 100_000
"""Decisions kept for the store's ledger while it cannot take them (about 160 MB of MiniLM vectors)."""

DEFAULT_FEEDBACK_TTL = 7 * 86_400.0
"""Seconds a decision waits for its feedback: 7 days."""


class Router:
    """Route each query to the model with the best expected quality for the money.

    Args:
        arms: Names of the models in the pool (unique, at least one).
        cost_weight: ``p`` in ``reward = quality - p * cost / cost_scale``. 0 ignores cost.
        policy: How predictions become a choice; default ``LinUCB(alpha=1.0, l2=1.0)``.
        embedder: Turns query text into a vector; default a lazily loaded Sentence-BERT.
        cost_scale: Fix the cost normaliser (USD); default: the priciest arm's mean
            observed cost, so that arm's mean normalised cost is 1.
        max_pending: How many decisions awaiting feedback this process keeps in memory; older
            ones are evicted (counted in :attr:`evicted_decisions`). With a store, they stay in
            the store's ledger, so feedback for them still works (from any process).
        feedback_ttl: Seconds a decision waits for its feedback (default 7 days); later
            feedback raises :class:`~metallm.ExpiredDecisionError` and changes nothing.
        features: What the per-arm models see of an embedding; default a 128-d projection
            of it plus a bias (penalty: the policy's ``l2``), which learns online faster and
            routes faster than the full embedding. ``EmbeddingFeatures()`` is the paper's
            model. :meth:`fit` may replace it with a map chosen by cross-validation (``tune``).
        cooldown: When a failing model is left out of routing, and for how long.
        max_sessions: How many sessions' models are remembered for sticky routing.
        store: Where feedback events, pending decisions and snapshots live
            (:class:`metallm.SQLiteStore`, :class:`metallm.RedisStore`). The learned state is
            restored from it now, every decision is kept in its ledger (so feedback works from
            any process sharing the store, and after a restart), every ``record`` is written to
            it before it returns, and events written by other processes are folded in (see
            :meth:`sync`).
        snapshot_every: Events between two snapshots in the store.
        sync_interval: Seconds between automatic :meth:`sync` calls in ``select``; None: never.
        seed: Seed of the tie-breaking and exploration randomness.
        prompt_length: Let every model's quality and cost depend on the prompt's length too
            (:class:`~metallm.learning.features.PromptLengthFeatures`): cost is mostly price
            times length. Default: on when the router has an embedder (it sees the text),
            off for a router given vectors, whose vectors would have to carry the length.
        shadows: Other routers (by name) that see every query and log what they would have
            chosen, without calling a model, and learn from every outcome this router learns;
            ``metallm evaluate --log`` estimates each from the log (see
            :mod:`~metallm.serving.shadows`). They must route the same models.
        latency_weight: ``l`` in ``reward = quality - p * cost / cost_scale - l * latency /
            latency_scale``, where ``latency_scale`` is the slowest model's mean observed latency
            (so its mean normalised latency is 1, as for cost). 0 (the default) ignores latency;
            latency is measured and learned either way. ``latency_scale`` fixes that
            normaliser (seconds).
        budget: Hold a :class:`~metallm.Budget` (USD per query, per day, or both) by moving
            ``cost_weight`` after every paid call; shared through ``store`` by every process
            using it. At a cap, each request goes to the cheapest model that can serve it.
        neighbours: Blend the linear quality predictions with a second opinion, the outcomes
            of the most similar prompts seen (:class:`~metallm.NeighbourQuality`; its ``k`` and
            weight chosen by :meth:`fit`'s cross-validation when left None). Off by default:
            measured, it gains on the larger shared table and not on the smaller one
            (docs/benchmarks.md).

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
        feedback_ttl: float = DEFAULT_FEEDBACK_TTL,
        features: FeatureMap | None = None,
        cooldown: Cooldown | None = None,
        max_sessions: int = 10_000,
        store: StateStore | None = None,
        snapshot_every: int = 1_000,
        sync_interval: float | None = 1.0,
        seed: int | None = None,
        prompt_length: bool | None = None,
        budget: Budget | None = None,
        shadows: Mapping[str, Router] | None = None,
        latency_weight: float = 0.0,
        latency_scale: float | None = None,
        neighbours: NeighbourQuality | None = None,
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
        """Every model the router knows, retired ones included, in the order they joined."""
        self._index = {a: i for i, a in enumerate(self.arms)}
        self.retired: set[str] = set()
        """Models no longer routed to (their history is kept; see :meth:`retire_arm`)."""
        self._retired_index: set[int] = set()
        self.cost_weight = check_cost_weight(cost_weight)
        self.latency_weight = check_latency_weight(latency_weight)
        chosen_policy: Policy = policy if policy is not None else LinUCB()
        chosen_features: FeatureMap = (
            features
            if features is not None
            else ProjectedFeatures(DEFAULT_PROJECTION_DIMS, l2=chosen_policy.l2)
        )
        self._prompt_length_given = prompt_length
        """The caller's ``prompt_length`` (None: the store's setting, else the default)."""
        if prompt_length is None:
            prompt_length = embedder is not None  # the router sees the text: it can count it
        if prompt_length and not reads_prompt_length(chosen_features):
            chosen_features = PromptLengthFeatures(chosen_features)
        if neighbours is not None and not isinstance(neighbours, NeighbourQuality):
            raise ConfigurationError(
                f"neighbours must be a metallm.NeighbourQuality or None, got {neighbours!r}"
            )
        self.bandit = LinearBandit(
            len(self.arms),
            policy=chosen_policy,
            features=chosen_features,
            seed=seed,
            neighbours=neighbours,
        )
        """The learning: ridge statistics, feature map and policy."""
        self.shadows: dict[str, Router] = {}
        self.shadows = check_shadows(self, shadows)
        """Shadow routers by name (see ``shadows``)."""
        self.embedder: Embedder | None = (
            default_embedder() if embedder == "default" else embedder  # type: ignore[assignment]
        )
        if cost_scale is not None and not (np.isfinite(cost_scale) and cost_scale > 0):
            raise ConfigurationError(f"cost_scale must be a positive number, got {cost_scale!r}")
        self.fixed_cost_scale = cost_scale
        if latency_scale is not None and not (np.isfinite(latency_scale) and latency_scale > 0):
            raise ConfigurationError(
                f"latency_scale must be a positive number of seconds, got {latency_scale!r}"
            )
        self.fixed_latency_scale = latency_scale
        if not (np.isfinite(feedback_ttl) and feedback_ttl > 0):
            raise ConfigurationError(
                f"feedback_ttl must be a positive number of seconds, got {feedback_ttl!r}"
            )
        self.feedback_ttl = float(feedback_ttl)
        self.ledger = PendingDecisions(max_pending)
        """Decisions awaiting feedback, in this process's memory."""
        self.feedback_counts = {"recorded": 0, "unknown": 0, "expired": 0, "duplicate": 0}
        self._failures = [0] * len(self.arms)
        """Feedback calls by outcome (see :meth:`health`)."""
        self.ledger_errors = 0
        """Decisions the store's ledger could not take when they were made (written by a later sync)."""
        self.ledger_dropped = 0
        """Decisions dropped from the backlog for the store's ledger (over ``LEDGER_BACKLOG``)."""
        self._ledger_backlog: deque[DecisionRecord] = deque(maxlen=LEDGER_BACKLOG)
        self._cost_backlog: deque[str] = deque(maxlen=LEDGER_BACKLOG)
        self.cooldown = cooldown if cooldown is not None else Cooldown()
        self.sessions = StickySessions(max_sessions)
        """The model each recent conversation is kept on."""
        self.id = uuid.uuid4().hex
        self._decisions = 0  # decision ids: this router's random id + a counter (unique, cheap)
        self._lock = threading.RLock()
        self.bookkeeping_errors = 0
        """Times metallm's own records failed after a provider answered (logged; the answer was kept)."""
        self.store = store
        # pending decisions keep the embedding (not the features) when a store or the shadows
        # learn from them: each learns on its own features
        # (the neighbours' second opinion remembers embeddings too: see _learns_on_embeddings)
        self._keeps_embeddings = store is not None or bool(self.shadows)
        self._budget: BudgetKeeper | None = None
        self._sync = (
            StoreSync(store, snapshot_every=snapshot_every, sync_interval=sync_interval)
            if store is not None
            else None
        )
        self._sync_lock = threading.Lock()
        self._syncing: threading.Thread | None = None
        self._sync_start_lock = threading.Lock()
        self._features_agreed = False
        self._starting = False
        self._pool_position: str | None = None
        self.spool: Spool | None = None
        """Feedback events waiting for the store (while it cannot be reached)."""
        if self._sync is not None:
            self.spool = Spool(
                getattr(store, "spool_dir", Path.home() / ".cache" / "metallm" / "spool"),
                getattr(store, "spool_name", "metallm"),
            )
            if self._reachable_at_start():
                self._agree_on_features(at_start=True)
                self._starting = True  # a damaged store is an error now, not a silent empty start
                try:
                    self.sync()
                finally:
                    self._starting = False
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigurationError(
                f"budget must be a metallm.Budget, got {type(budget).__name__}: "
                "e.g. Budget(usd_per_query=0.002) or Budget(usd_per_day=500)"
            )
        if budget is not None:
            sync = self._sync
            self._budget = BudgetKeeper(
                budget,
                store,
                cost_weight=self.cost_weight,
                usable=(lambda: True) if sync is None else sync.usable,
                failed=(lambda e: None) if sync is None else sync.failed,
                succeeded=(lambda: None) if sync is None else sync.succeeded,
            )
            self.cost_weight = self._budget.cost_weight

    # -- what the parts hold --------------------------------------------------------------
    @property
    def budget(self) -> Budget | None:
        """The budget this router holds (None: a fixed ``cost_weight``)."""
        return None if self._budget is None else self._budget.budget

    def budget_status(self) -> dict[str, Any] | None:
        """The budget's state now: ``cost_weight``, ``spent_usd``, targets, ``period_end``, ``capped``."""
        return None if self._budget is None else self._budget.status()

    @property
    def policy(self) -> Policy:
        """How predictions become a choice."""
        return self.bandit.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.bandit.policy = policy

    @property
    def features(self) -> FeatureMap:
        """What the per-arm models see of an embedding."""
        return self.bandit.features

    @features.setter
    def features(self, features: FeatureMap) -> None:
        self.bandit.features = features

    @property
    def tuning_(self) -> Tuning | None:
        """The cross-validation that chose :attr:`features` in the last :meth:`fit`, if any."""
        return self.bandit.tuning_

    @property
    def n_updates(self) -> int:
        """Feedback events learned from (online records and offline rows)."""
        return self.bandit.n_updates

    @property
    def dimension(self) -> int | None:
        """Embedding size, known after the first query or fit (None before)."""
        return self.bandit.dimension

    @property
    def max_pending(self) -> int:
        """How many decisions awaiting feedback are kept."""
        return self.ledger.max_pending

    @property
    def max_sessions(self) -> int:
        """How many sessions' models are remembered."""
        return self.sessions.max_sessions

    @property
    def pending_decisions(self) -> int:
        """Decisions still waiting for feedback."""
        return len(self.ledger)

    @property
    def evicted_decisions(self) -> int:
        """Decisions dropped from the pending buffer before their feedback arrived."""
        return self.ledger.evicted

    @property
    def snapshot_every(self) -> int | None:
        """Events between two snapshots in the store (None without a store)."""
        return None if self._sync is None else self._sync.snapshot_every

    @property
    def sync_interval(self) -> float | None:
        """Seconds between automatic syncs with the store (None: never, or no store)."""
        return None if self._sync is None else self._sync.sync_interval

    @property
    def restored_from_log(self) -> bool:
        """True when a corrupt snapshot was skipped and the whole event log replayed."""
        return self._sync is not None and self._sync.restored_from_log

    @property
    def cost_scale(self) -> float:
        """The cost normaliser in USD: fixed, or the priciest arm's mean observed cost."""
        if self.fixed_cost_scale is not None:
            return self.fixed_cost_scale
        return self.bandit.observed_cost_scale()

    @property
    def latency_scale(self) -> float:
        """The latency normaliser in seconds: fixed, or the slowest arm's mean observed latency."""
        if self.fixed_latency_scale is not None:
            return self.fixed_latency_scale
        return self.bandit.observed_latency_scale()

    @property
    def counts(self) -> dict[str, int]:
        """Feedback learned per arm (real outcomes; a provider's failures are in :attr:`failure_counts`)."""
        learned = self.bandit.counts()
        return {a: int(c) - self._failures[i] for i, (a, c) in enumerate(zip(self.arms, learned))}

    @property
    def failure_counts(self) -> dict[str, int]:
        """Provider failures learned per arm (each as quality 0 and cost 0)."""
        return dict(zip(self.arms, self._failures))

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
                if self.reads_prompt_length:
                    matrix = with_prompt_length(matrix, items)
            else:
                for i, q in enumerate(items):
                    if isinstance(q, str):
                        raise InvalidInputError(f"query {i} mixes text with embeddings")
                matrix = np.asarray(items, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise InvalidInputError(
                f"expected a non-empty (n, dim) batch, got shape {matrix.shape}"
            )
        check_embeddings(matrix)
        if self.bandit.stats is not None and matrix.shape[1] != self.bandit.embedding_dim:
            raise self.bandit.dimension_mismatch(matrix.shape[1])
        return matrix

    @property
    def reads_prompt_length(self) -> bool:
        """Whether the router's models read the prompt's length (the last element of its vectors).

        On by default for a router with an embedder (``prompt_length=None``): the router
        appends the length of each text it embeds, and the cost model learns how each model's
        cost grows with it.
        """
        return reads_prompt_length(self.bandit.features)

    def warmup(self, *, background: bool = False) -> threading.Thread | None:
        """Load the embedding model and embed once now, so the first routed call does not wait.

        ``background=True`` does it in a thread (returned; the adapters start one at
        construction): a failure there is logged, and the first call raises it, typed. The
        thread is not a daemon, so a process that exits while it loads waits for it and exits
        cleanly (a daemon thread inside native code at exit aborts the process).
        """
        if self.embedder is None:
            return None
        if not background:
            started = time.perf_counter()
            self.embedder.embed(["metallm warm-up"])
            logger.debug(
                "metallm warmed up %r in %.2f s", self.embedder, time.perf_counter() - started
            )
            return None

        def warm() -> None:
            try:
                self.warmup()
            except Exception as e:  # the first routed call raises it, typed
                logger.warning("metallm could not warm up %r: %s", self.embedder, e)

        # Not a daemon: a daemon thread still inside ONNX Runtime or tokenizers when the
        # interpreter finalizes aborts the process (rc 134), and one still exporting with torch
        # at exit prints torch's finalizer tracebacks. A script that exits during warm-up
        # waits for it (about a second once the model is exported) and exits cleanly.
        thread = threading.Thread(target=warm, name="metallm-warmup", daemon=False)
        thread.start()
        return thread

    # -- prediction and selection -------------------------------------------------------
    def predict(self, queries: Sequence[Query] | np.ndarray, *, widths: bool = True) -> Prediction:
        """Predicted quality, cost (USD, never below zero) and width per arm for each query.

        ``widths=False`` leaves the confidence widths out (``width`` is None): the means alone
        cost about a hundredth of them, for offline scoring of many queries.
        """
        embeddings = self.embed(as_batch(queries))
        with self._lock:
            return Prediction(*self.bandit.predict(embeddings, widths=widths))

    def route(
        self,
        query: Query,
        *,
        force: str | None = None,
        session: str | None = None,
        fallbacks: Fallbacks | None = None,
        record_errors: bool = True,
        prices: Prices | None = None,
        decision: Decision | None = None,
        run_id: str | None = None,
        needs: Needs | None = None,
        capabilities: Mapping[str, Capabilities] | None = None,
        available: Collection[str] | None = None,
    ) -> RoutedCall:
        """Start one routed call with fallbacks: ``call.decision`` names the model to try.

        Then ``call.failed(error)`` on a provider error (the next model, or the error to
        raise) and ``call.succeeded(input_tokens, output_tokens)`` on an answer (its cost
        from ``prices`` and the decision's metadata); see :class:`RoutedCall`. ``decision``
        goes on with a decision already made (e.g. one whose model formatted the tools);
        ``run_id`` is the framework's id of the call, by which :meth:`record_run` finds the
        decision that answered. ``needs`` (what the request needs) and ``capabilities`` (what
        each member can serve) leave out the members that cannot serve it, for this call and
        its fallbacks (``call.excluded`` and the metadata's ``excluded`` say why);
        :class:`~metallm.NoCapableModelError` when none can. ``force`` overrides them.
        ``available``: the models the caller can call (an adapter's members); others in the
        pool (added by another process sharing the store) are left out.
        """
        return RoutedCall(
            self,
            query,
            force=force,
            session=session,
            fallbacks=fallbacks,
            record_errors=record_errors,
            prices=prices,
            decision=decision,
            run_id=run_id,
            needs=needs,
            capabilities=capabilities,
            available=available,
        )

    def select(
        self,
        query: Query,
        *,
        exclude: Iterable[str] = (),
        force: str | None = None,
        session: str | None = None,
        ignore_cooldown: bool = False,
        run_id: str | None = None,
        prices: Prices | None = None,
    ) -> Decision:
        """Choose an arm for one query (text or embedding).

        ``exclude`` removes arms from this choice (e.g. ones that just failed); ``force``
        names the arm to use (the decision still records scores and learns from feedback);
        ``session`` keeps a conversation on the model it started with (see :meth:`stick`);
        ``run_id`` is the framework's id of the call, by which feedback can find the
        decision (:meth:`record_run`). Models cooling down after repeated failures are left
        out unless every one is. ``prices`` (USD per 1M input/output tokens) rank the models
        when a budget's cap is reached and the cheapest must be chosen.
        """
        excluded = set(exclude)
        if force is None and session is not None:
            kept = self.sessions.get(session)
            if (
                kept is not None
                and kept not in excluded
                and kept not in self.retired
                and (ignore_cooldown or kept not in self.cooldown.cooling())
            ):
                decision = self._select_one(query, excluded, kept, True, run_id, session, prices)
                return decision._replace(forced=False, sticky=True)
            if kept is None:
                # A new session: the first choice claims it at once, so calls of the same
                # session running concurrently (a batch) all go where the first one went.
                decision = self._select_one(
                    query, excluded, None, ignore_cooldown, run_id, session, prices
                )
                winner = self.sessions.claim(session, decision.arm)
                if winner == decision.arm:
                    return decision
                with self._lock:
                    self.ledger.discard(decision.id)
                decision = self._select_one(query, excluded, winner, True, run_id, session, prices)
                return decision._replace(forced=False, sticky=True)
        return self._select_one(query, excluded, force, ignore_cooldown, run_id, session, prices)

    def _propensity(
        self, scores: list[float], chosen: int, excluded: set[int], forced: int | None
    ) -> float:
        """The probability that the policy chose ``chosen`` (1.0 when the caller forced it)."""
        if forced is not None:
            return 1.0
        if excluded:
            scores = [-math.inf if i in excluded else v for i, v in enumerate(scores)]
        return self.bandit.choosing_policy().probability_one(scores, chosen)

    def _select_one(
        self,
        query: Query,
        exclude: set[str],
        force: str | None,
        ignore_cooldown: bool,
        run_id: str | None = None,
        session: str | None = None,
        prices: Prices | None = None,
    ) -> Decision:
        """:meth:`select_batch` for one query, with as few numpy calls as the maths allows."""
        if self._sync is not None:
            self._sync_if_due()
        embedding = self.embed([query])[0] if isinstance(query, str) else one_embedding(query)
        if exclude or force is not None or self.cooldown.active or self._retired_index:
            excluded, forced = self._allowed(exclude, force, ignore_cooldown)
        else:
            excluded, forced = set(), None
        capped = forced is None and self._budget is not None and self._budget.capped()
        shadowed = (
            choose_one(self.shadows, embedding, [self.arms[i] for i in excluded])
            if self.shadows
            else None
        )
        prompt = (
            query
            if isinstance(query, str) and self.store is not None and self.store.store_prompts
            else None
        )
        now = time.time()
        with self._lock:
            chosen, scores, bonus, features, quality, cost, latency = self.bandit.score_one(
                embedding,
                cost_weight=self.cost_weight,
                scale=self.cost_scale,
                excluded=excluded,
                forced=forced,
                latency_weight=self.latency_weight,
                latency_scale=self.latency_scale,
            )
            if capped:  # the budget's cap is reached: the cheapest model that can serve it
                chosen = cheapest_arm(self.arms, cost, excluded, prices)
            propensity = self._propensity(scores, chosen, excluded, chosen if capped else forced)
            selection = Selection(
                self.arms,
                self._index,
                [scores],
                [bonus],
                [embedding],
                [features],
                None if prompt is None else [prompt],
                [quality],
                [cost],
                [propensity],
                None if shadowed is None else [shadowed],
                None if latency is None else [latency],
            )
            self._decisions += 1
            decision: Decision = tuple.__new__(
                Decision,
                (
                    f"{self.id}-{self._decisions:x}",
                    self.arms[chosen],
                    self.cost_weight,
                    selection,
                    0,
                    forced is not None,
                    False,
                ),
            )
            vector = embedding.astype(np.float32) if self._learns_on_embeddings else features
            self.ledger.add(
                decision.id,
                PendingEntry(chosen, [vector], 0, now, run_id, prompt, propensity, shadowed),
            )
        if self._sync is not None:
            self._keep_in_store([(decision, vector)], now, run_id=run_id, session=session)
        return decision

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
        self.bandit.ensure(embeddings.shape[1])
        excluded, forced = self._allowed(exclude, force, ignore_cooldown)
        capped = forced is None and self._budget is not None and self._budget.capped()
        shadowed = (
            choose_many(self.shadows, embeddings, [self.arms[i] for i in excluded])
            if self.shadows
            else None
        )
        now = time.time()
        with self._lock:
            chosen, scores, bonus, X, quality, cost, latency = self.bandit.score_many(
                embeddings,
                cost_weight=self.cost_weight,
                scale=self.cost_scale,
                excluded=excluded,
                forced=forced,
                latency_weight=self.latency_weight,
                latency_scale=self.latency_scale,
            )
            keep_prompts = (
                self.store is not None and self.store.store_prompts and isinstance(queries, list)
            )
            prompts = [q if isinstance(q, str) else None for q in queries] if keep_prompts else None
            if embeddings is queries:
                embeddings = embeddings.copy()  # our own copy: the caller may reuse its array
            if capped:  # the budget's cap is reached: the cheapest model for each query
                chosen = np.array([cheapest_arm(self.arms, row, excluded) for row in cost.tolist()])
            if forced is not None or capped:
                propensity = np.ones(len(chosen))
            else:
                masked = scores
                if excluded:
                    masked = scores.copy()
                    masked[:, sorted(excluded)] = -np.inf
                propensity = self.bandit.choosing_policy().probabilities(masked, chosen)
            selection = Selection(
                self.arms,
                self._index,
                scores,
                bonus,
                embeddings,
                X,
                prompts,
                quality,
                cost,
                propensity,
                shadowed,
                latency,
            )
            # One tuple per decision, built without the NamedTuple constructor's Python frame.
            first, prefix, arms = self._decisions + 1, f"{self.id}-", self.arms
            make, weight, is_forced = tuple.__new__, self.cost_weight, forced is not None
            picks = chosen.tolist()
            decisions: list[Decision] = [
                make(
                    Decision,
                    (
                        f"{prefix}{first + row:x}",
                        arms[arm],
                        weight,
                        selection,
                        row,
                        is_forced,
                        False,
                    ),
                )
                for row, arm in enumerate(picks)
            ]
            self._decisions += len(decisions)
            vectors = embeddings.astype(np.float32) if self._learns_on_embeddings else X
            self.ledger.add_many(
                (
                    d[0],
                    make(
                        PendingEntry,
                        (
                            arm,
                            vectors,
                            row,
                            now,
                            None,
                            None if prompts is None else prompts[row],
                            float(propensity[row]),
                            None if shadowed is None else shadowed[row],
                        ),
                    ),
                )
                for row, (d, arm) in enumerate(zip(decisions, picks))
            )
        if self._sync is not None:
            self._keep_in_store([(d, vectors[row]) for row, d in enumerate(decisions)], now)
        return decisions

    def _keep_in_store(
        self,
        made: list[tuple[Decision, np.ndarray]],
        now: float,
        *,
        run_id: str | None = None,
        session: str | None = None,
    ) -> None:
        """Write decisions to the store's ledger; while it fails, keep them for the next sync.

        Routing never waits for the store beyond its routing timeout: decisions it could not
        take wait in :attr:`_ledger_backlog` (bounded) and are written by the next sync that
        reaches it, so feedback from another process works for them once the store is back.
        """
        assert self._sync is not None
        expires = now + self.feedback_ttl
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
            for d, vector in made
        ]
        if self._sync.usable():
            try:
                self._sync.store.put_decisions(records)
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
        with self._lock:
            self.ledger_errors += len(records)
            dropped = len(self._ledger_backlog) + len(records) - LEDGER_BACKLOG
            self._ledger_backlog.extend(records)
            if dropped > 0:
                self.ledger_dropped += dropped

    def _flush_ledger_backlog(self) -> None:
        """Write the decisions the store could not take when they were made (store I/O)."""
        assert self._sync is not None
        with self._lock:
            waiting = list(self._ledger_backlog)
            self._ledger_backlog.clear()
            in_records = {r.decision_id for r in waiting}
            costs = [
                (d, self.ledger.cost_of(d), self.ledger.latency_of(d))
                for d in dict.fromkeys(self._cost_backlog)
                if d in self.ledger and d not in in_records
            ]
            self._cost_backlog.clear()
            records = []
            for r in waiting:
                if r.decision_id not in self.ledger:
                    continue  # settled (its feedback is in the log) or evicted meanwhile
                records.append(
                    replace(
                        r,
                        cost=self.ledger.cost_of(r.decision_id),
                        latency=self.ledger.latency_of(r.decision_id),
                    )
                )
        written = costs_written = 0
        try:
            while written < len(records):
                self._sync.store.put_decisions(records[written : written + 500])
                written = min(written + 500, len(records))
            for decision_id, cost, latency in costs:
                if cost is not None:
                    self._sync.store.set_decision_cost(decision_id, cost, latency)
                costs_written += 1
        except StoreError:
            with self._lock:  # back in front, in order, for the next sync
                self._ledger_backlog.extendleft(reversed(records[written:]))
                self._cost_backlog.extendleft(reversed([d for d, _, _ in costs[costs_written:]]))
            raise

    def _sync_if_due(self) -> None:
        """Start a sync in the background when one is due: routing never waits for the store."""
        if self._sync is None or not self._sync.due() or not self._sync.usable():
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
        """Wait until a background sync started by routing (``sync_interval``) is done.

        Args:
            timeout: Seconds to wait at most (None: as long as it takes).
        """
        thread = self._syncing
        if thread is not None:
            thread.join(timeout)

    def _allowed(
        self, exclude: Iterable[str], force: str | None, ignore_cooldown: bool
    ) -> tuple[set[int], int | None]:
        """Indices left out of this choice (asked for, or cooling down) and the forced one."""
        excluded = {self._arm_index(a) for a in exclude} | self._retired_index
        forced = None if force is None else self._arm_index(force)
        if forced is not None and forced in self._retired_index:
            raise ConfigurationError(
                f"{force!r} is retired: it is no longer routed to (add it under a new name)"
            )
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
        self.sessions.stick(session, arm)

    # -- online feedback ----------------------------------------------------------------
    def observe_cost(
        self,
        decision_id: str,
        cost: float,
        *,
        spend: bool = True,
        latency: float | None = None,
    ) -> None:
        """Attach the measured cost (USD), and latency (seconds), for a later :meth:`record`.

        With a budget, the cost is spent from it (``spend=False``: a placeholder, not spent),
        even when the decision is unknown here: the call was paid for either way.
        """
        c = check_cost(cost)
        seconds = None if latency is None else check_latency(latency)
        check_id(decision_id, "decision")
        if spend and self._budget is not None:
            self._spend(c)
        with self._lock:
            in_memory = self.ledger.observe_cost(decision_id, c, seconds)
        if self._sync is not None:
            written = False
            if self._sync.usable():
                try:
                    self._sync.store.set_decision_cost(decision_id, c, seconds)
                    written = True
                except StoreError as e:
                    self._sync.failed(e)
            if not written and in_memory:
                with self._lock:  # written to the store's ledger by the next sync
                    self._cost_backlog.append(decision_id)
            if not in_memory and not self._sync.available:
                raise StoreError(
                    f"{self.store} cannot be reached to attach the cost of decision {decision_id}"
                )
        elif not in_memory:
            self.ledger.get(decision_id)  # a settled id: DuplicateFeedbackError
            raise self._unknown(decision_id)

    def _spend(self, cost: float) -> None:
        """Count a paid call against the budget and route with the ``p`` it leaves."""
        assert self._budget is not None
        known = self.fixed_cost_scale is not None or self.bandit.n_updates > 0
        self.cost_weight = self._budget.spend(cost, self.cost_scale if known else None)

    def record(
        self,
        decision_id: str,
        *,
        quality: float,
        cost: float | None = None,
        latency: float | None = None,
    ) -> None:
        """Learn from the outcome of a decision: updates the chosen arm only.

        ``quality`` is in [0, 1]; ``cost`` is the USD the call cost. When ``cost`` is None
        the cost attached by :meth:`observe_cost` is used; ``latency`` (seconds) likewise
        (the adapters measure it; None and none attached: no latency is learned). With a store this works in any
        process that shares it, and after the deciding process restarted.

        Raises :class:`~metallm.UnknownDecisionError`, :class:`~metallm.ExpiredDecisionError`
        or :class:`~metallm.DuplicateFeedbackError`; each leaves the statistics unchanged.
        """
        q = check_quality(quality)
        given = None if cost is None else check_cost(cost)
        seconds = None if latency is None else check_latency(latency)
        try:
            check_id(decision_id, "decision")
            self._record(decision_id, q, given, latency=seconds)
        except DuplicateFeedbackError:
            self._count("duplicate")
            raise
        except ExpiredDecisionError:
            self._count("expired")
            raise
        except UnknownDecisionError:
            self._count("unknown")
            raise

    def record_run(
        self,
        run_id: str,
        *,
        quality: float,
        cost: float | None = None,
        latency: float | None = None,
    ) -> None:
        """:meth:`record` for the decision that answered a framework call (e.g. a LangChain run id)."""
        decision_id = self._decision_of_run(check_id(str(run_id), "run"))
        self.record(decision_id, quality=quality, cost=cost, latency=latency)

    def record_many(self, feedback: Iterable[Feedback]) -> FeedbackSummary:
        """Record many outcomes (a grading job); what became of each, without stopping at errors.

        >>> router = Router(["a", "b"], embedder=None)
        >>> made = router.select_batch([[1.0, 0.0], [0.0, 1.0]])
        >>> summary = router.record_many([Feedback(d.id, quality=1.0, cost=0.0) for d in made])
        >>> summary.recorded, summary.unknown
        (2, 0)
        """
        return record_all(self, feedback)

    def health(self) -> dict[str, Any]:
        """What an operator watches: pending decisions, feedback outcomes, bookkeeping trouble.

        ``feedback`` counts this process's feedback calls by outcome: many ``expired`` means
        feedback arrives later than ``feedback_ttl``; many ``unknown``, ids from elsewhere
        (another store, or a router without one whose memory was evicted).
        """
        spool = None if self.spool is None else self.spool.status()
        with self._lock:
            return {
                "pending_in_memory": len(self.ledger),
                "evicted_from_memory": self.ledger.evicted,
                "feedback": dict(self.feedback_counts),
                "feedback_ttl_s": self.feedback_ttl,
                "ledger_errors": self.ledger_errors,
                "ledger_backlog": len(self._ledger_backlog),
                "ledger_dropped": self.ledger_dropped,
                "bookkeeping_errors": self.bookkeeping_errors,
                "store": None if self.store is None else repr(self.store),
                "store_position": None if self._sync is None else self._sync.position,
                "quarantined_events": self.quarantined_events,
                "store_available": None if self._sync is None else self._sync.available,
                "store_error": None if self._sync is None else self._sync.last_error,
                "store_identity": None
                if self.store is None
                else getattr(self.store, "identity_problem", None) or "unchanged",
                "store_persistence": getattr(self.store, "persistence", None),
                "refused_pool_changes": 0
                if self._sync is None
                else self._sync.refused_pool_changes,
                "refused_snapshots": 0 if self._sync is None else self._sync.refused_snapshots,
                "spooled_events": 0 if spool is None else spool["events"],
                "spool": spool,
                "n_updates": self.n_updates,
                "embedder": repr(self.embedder),
                "budget": self.budget_status(),
            }

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.feedback_counts[outcome] += 1

    def _unknown(self, decision_id: str) -> UnknownDecisionError:
        if self._sync is None:
            hint = f"only the last {self.ledger.max_pending} pending decisions are kept in memory; raise max_pending, or give the router a store"
        else:
            hint = f"not in {self.store}'s ledger: made by a router with another store, or expired more than a day ago"
        return UnknownDecisionError(
            f"unknown decision id {decision_id!r}: never issued by this router, or evicted ({hint})"
        )

    def _decision_of_run(self, run_id: str) -> str:
        with self._lock:
            decision_id = self.ledger.by_run(run_id)
        if decision_id is None and self._sync is not None:
            found = self._sync.store.find_decision(run_id)
            decision_id = None if found is None else found.decision_id
        if decision_id is None:
            self._count("unknown")
            raise UnknownDecisionError(
                f"no pending decision for run {run_id!r}: its feedback was recorded, or it expired"
            )
        return decision_id

    def _record_failure(self, decision_id: str) -> None:
        """Learn a provider's failure on this decision: quality 0, cost 0, counted apart."""
        self._record(decision_id, 0.0, 0.0, failure=True)

    def _record(
        self,
        decision_id: str,
        q: float,
        given: float | None,
        *,
        failure: bool = False,
        latency: float | None = None,
    ) -> None:
        now = time.time()
        if self._sync is None:
            with self._lock:  # without a store: check, settle and learn in one step
                entry = self.ledger.get(decision_id)  # DuplicateFeedbackError when settled here
                if entry is None:
                    raise self._unknown(decision_id)
                if now > entry.time + self.feedback_ttl:
                    raise ExpiredDecisionError(
                        decision_id, entry.time, entry.time + self.feedback_ttl
                    )
                known_cost = self.ledger.cost_of(decision_id)
                seconds = latency if latency is not None else self.ledger.latency_of(decision_id)
                c = given if given is not None else known_cost
                if c is None:
                    raise InvalidFeedbackError(
                        f"no cost known for decision {decision_id}: pass cost= (USD)"
                    )
                self.ledger.settle(decision_id)
                vector = entry.vectors[entry.row]
                if self._learns_on_embeddings:  # shadows, neighbours: learn on the embedding
                    self.bandit.learn(entry.arm, vector, quality=q, cost=c, latency=seconds)
                    self._teach_shadows(self.arms[entry.arm], vector, q, c, seconds)
                else:
                    self.bandit.update(entry.arm, vector, q, c, seconds)
                if failure:
                    self._failures[entry.arm] += 1
                else:
                    self.feedback_counts["recorded"] += 1
            if self._budget is not None and known_cost is None and not failure:
                self._spend(c)  # a cost first known from the feedback
            return
        with self._lock:
            entry = self.ledger.get(decision_id)  # DuplicateFeedbackError when settled here
            known_cost = self.ledger.cost_of(decision_id)
            known_latency = self.ledger.latency_of(decision_id)
        if entry is not None:
            arm, vector, decided_at, prompt, propensity, shadowed = (
                entry.arm,
                entry.vectors[entry.row],
                entry.time,
                entry.prompt,
                entry.propensity,
                entry.shadows,
            )
        elif self._sync is not None:
            found = self._sync.store.get_decision(decision_id)
            if found is None:
                if self._sync.store.has_event(decision_id):
                    raise DuplicateFeedbackError(
                        f"feedback for decision {decision_id} is already in the store"
                    )
                raise self._unknown(decision_id)
            arm, vector, decided_at, prompt, propensity, shadowed = (
                self._arm_index(found.arm),
                found.embedding,
                found.time,
                found.prompt,
                found.propensity,
                found.shadows,
            )
            known_cost = found.cost
            known_latency = found.latency
        else:
            raise self._unknown(decision_id)
        if now > decided_at + self.feedback_ttl:
            raise ExpiredDecisionError(decision_id, decided_at, decided_at + self.feedback_ttl)
        c = given if given is not None else known_cost
        if c is None:
            raise InvalidFeedbackError(
                f"no cost known for decision {decision_id}: pass cost= (USD)"
            )
        event = FeedbackEvent(
            decision_id,
            self.arms[arm],
            np.asarray(vector, dtype=np.float64),
            q,
            c,
            now,
            prompt,
            failure,
            propensity,
            shadowed,
            latency if latency is not None else known_latency,
        )
        stored = False
        if self._sync.usable():
            try:
                self._sync.append(
                    event
                )  # durable before record returns; a second feedback is refused here
                stored = True
            except StoreError as e:
                self._sync.failed(e)
        if not stored:
            assert self.spool is not None
            self.spool.add(event)  # durable locally; replayed, in order, when the store is back
            with self._lock:
                self.ledger.settle(decision_id)
                self.feedback_counts["recorded"] += not failure
        else:
            with self._lock:
                self.ledger.settle(decision_id)
                self.feedback_counts["recorded"] += not failure
        if self._budget is not None and known_cost is None and not failure:
            self._spend(c)  # a cost first known from the feedback
        if stored:
            self.sync()  # folds this event, and any from other processes, in log order

    def _count_bookkeeping_error(self) -> None:
        with self._lock:
            self.bookkeeping_errors += 1

    # -- the store ----------------------------------------------------------------------
    def sync(self, *, wait: bool = True) -> int:
        """Fold the store's events not yet learned (from any process) into this router.

        Returns how many were applied. Events are applied in the store's order, so every
        process that has synced the same events holds exactly the same statistics. The store
        is read outside the router's lock, so routing never waits for it; while it cannot be
        reached this returns 0, routing goes on with what was learned, and spooled feedback
        is replayed first when it is back. ``wait=False`` skips when another thread is syncing.
        """
        if self._sync is None:
            return 0
        if not self._sync_lock.acquire(blocking=wait):
            return 0
        try:
            return self._sync_now()
        finally:
            self._sync_lock.release()

    def _sync_now(self) -> int:
        assert self._sync is not None and self.spool is not None
        if self._budget is not None:  # other processes' spend, and the shared p
            self._budget.refresh()
            self.cost_weight = self._budget.cost_weight
        try:
            return self._sync_steps()
        except LogTrimmedError as e:
            logger.warning(
                "%s; restarting from the latest snapshot", e
            )  # fell behind a trimmed log
            with self._lock:
                self.bandit.reset()
                self._failures = [0] * len(self.arms)
                self._sync.forget_folded()
                self._sync.position, self._sync.restored = None, False
            try:
                return self._sync_steps()
            except StoreError as again:
                self._sync.failed(again)
                return 0

    def _reachable_at_start(self) -> bool:
        """Whether the store answers its cheap check (a stalled one is not waited for at start)."""
        assert self._sync is not None
        ping = getattr(self._sync.store, "ping", None)
        if ping is None:
            return True
        try:
            ping()
        except StoreError as e:
            self._sync.failed(e)
            return False
        return True

    def _agree_on_features(self, *, at_start: bool = False) -> None:
        """Read the vectors of routers sharing the store the same way (the prompt's length or not).

        Every router sharing a store learns from the same events, so all must read their
        vectors the same way: the first router that embeds text (or says ``prompt_length=``)
        writes the setting, and one that left ``prompt_length`` open (a feedback-only router
        without an embedder) takes it, relearning from the store. An explicit setting that
        differs is a :class:`~metallm.ConfigurationError` at construction.
        """
        assert self._sync is not None
        store = self._sync.store
        if self._features_agreed or not isinstance(store, SettingsStore):
            return
        mine = "on" if self.reads_prompt_length else "off"
        try:
            if self._prompt_length_given is not None or self.embedder is not None:
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
            with self._lock:
                features = self.bandit.features
                self.bandit.features = (
                    PromptLengthFeatures(features) if held == "on" else features.inner  # type: ignore[attr-defined]
                )
                self.bandit.reset()
                self._failures = [0] * len(self.arms)
                self._sync.forget_folded()
                self._sync.position, self._sync.restored = None, False
            logger.info(
                "metallm: reading the prompt's length %s, as the routers sharing %s do", held, store
            )
        self._features_agreed = True

    def _sync_pool(self) -> None:
        """Apply the pool changes other processes made (models added and retired)."""
        assert self._sync is not None
        store = self._sync.store
        if not isinstance(store, PoolStore):
            return
        for position, action, arm in store.pool_changes_after(self._pool_position):
            problem = pool_change_problem(action, arm, self.arms, self.active_arms)
            if problem is None and action == "add":
                self._add_arm_here(arm)
            elif problem is None and action == "retire":
                self._retire_arm_here(arm)
            elif problem is not None:
                self._sync.refuse_pool_change(position, action, arm, problem)
            self._pool_position = position

    def _sync_steps(self) -> int:
        assert self._sync is not None and self.spool is not None
        applied = 0
        try:
            self._agree_on_features()
            self._sync_pool()  # before the snapshot and the events, which may name new models
            if not self._sync.restored:
                self._sync.restore(self._adopt_snapshot, self.bandit.reset)
            self.spool.replay(self._sync.store)
            if self._ledger_backlog or self._cost_backlog:
                self._flush_ledger_backlog()
            while True:
                events = self._sync.fetch()  # store I/O, outside the router's lock
                with self._lock:
                    applied += self._sync.fold(events, self._apply)
                if len(events) < 1000:
                    break
            if self._sync.snapshot_due:
                self.snapshot()
        except LogTrimmedError:
            raise
        except StoreError as e:
            if self._starting and isinstance(e, CorruptStoreError):
                raise
            self._sync.failed(e)
            return applied
        self._sync.succeeded()
        return applied

    def close(self, timeout: float = 10.0) -> None:
        """Hand what waits for the store to it, then close the store's connections.

        Call it when a worker shuts down: a background sync is waited for (``timeout``
        seconds at most), and spooled feedback and decisions the store could not take yet are
        written, trying until ``timeout`` while the store cannot be reached (what is still
        spooled then is replayed by the next process). Routing after ``close`` reopens
        connections as needed.

        Args:
            timeout: Seconds to spend at most handing over what waits.
        """
        if self._sync is None:
            return
        deadline = time.monotonic() + timeout
        self.wait_for_sync(timeout)
        while True:  # tries whatever the backoff says: the process is going away
            self.sync()
            waiting = len(self._ledger_backlog) + len(self._cost_backlog) + len(self.spool or ())
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
        self._sync.store.close()

    def snapshot(self) -> None:
        """Write the current statistics to the store, so a new process starts fast."""
        if self._sync is None:
            return
        with self._lock:
            data, position = snapshot_bytes(self.save), self._sync.position
        if position is not None and position == self._sync.position:
            self._sync.push_snapshot(data)

    def _apply(self, position: str, event: FeedbackEvent | MalformedEvent) -> None:
        """Fold one event of the store's log; a bad one is quarantined, never learned, never fatal."""
        assert self._sync is not None
        if isinstance(event, FeedbackEvent) and event.arm not in self._index:
            self._sync_pool()  # a model another process added after this sync began
        if not self._sync.admit(position, event, self._index, self.bandit.dimension):
            return
        assert isinstance(event, FeedbackEvent)
        arm = self._index[event.arm]
        self.bandit.learn(
            arm, event.embedding, quality=event.quality, cost=event.cost, latency=event.latency
        )
        self._teach_shadows(event.arm, event.embedding, event.quality, event.cost, event.latency)
        if event.failure:
            self._failures[arm] += 1

    def set_shadows(self, shadows: Mapping[str, Router] | None) -> None:
        """Replace the shadow routers (see ``shadows``); before routing, or with a store.

        >>> live = Router(["small", "large"], embedder=None, cost_weight=0.1)
        >>> live.set_shadows({"thrifty": Router(["small", "large"], embedder=None, cost_weight=1.0)})
        >>> sorted(live.select([1.0, 0.0]).shadows)
        ['thrifty']
        """
        checked = check_shadows(self, shadows)
        with self._lock:
            if checked and not self._learns_on_embeddings and len(self.ledger):
                raise ConfigurationError(
                    "add shadows before routing: decisions already pending in this router "
                    "(without a store) keep features the shadows cannot learn from"
                )
            self.shadows = checked
            self._keeps_embeddings = self._keeps_embeddings or bool(checked)

    def _teach_shadows(
        self,
        arm: str,
        embedding: np.ndarray,
        quality: float,
        cost: float,
        latency: float | None = None,
    ) -> None:
        """The shadows learn every outcome this router learns (on their own features)."""
        for shadow in self.shadows.values():
            with shadow._lock:
                shadow.bandit.learn(
                    shadow._index[arm], embedding, quality=quality, cost=cost, latency=latency
                )

    @property
    def quarantined_events(self) -> int:
        """Events of the store's log that could not be learned (see :attr:`quarantine`)."""
        return 0 if self._sync is None else self._sync.quarantined_events

    @property
    def quarantine(self) -> list[tuple[str, str | None, str]]:
        """The latest quarantined events: (position in the log, decision id, why)."""
        return [] if self._sync is None else list(self._sync.quarantine)

    def _adopt_snapshot(self, data: bytes, source: str) -> None:
        persistence.adopt_bytes(self, data, source)

    # -- offline learning ---------------------------------------------------------------
    def fit(
        self,
        queries: Sequence[Query] | np.ndarray,
        quality: np.ndarray | Sequence[Sequence[float]],
        cost: np.ndarray | Sequence[Sequence[float]],
        *,
        tune: bool | str | Sequence[FeatureMap] = "auto",
        seed: int = 0,
        latency: np.ndarray | Sequence[Sequence[float]] | None = None,
    ) -> Router:
        """Train from scratch on logged data where every arm's outcome is known.

        ``quality`` and ``cost`` (and ``latency``, seconds, when known) are (n, n_arms),
        columns in :attr:`arms` order.

        With ``tune`` (``"auto"``: when there are at least 300 rows) the feature map is
        chosen among :data:`metallm.learning.tuning.DEFAULT_CANDIDATES` by 5-fold cross-validated
        AIQ on these rows (see :attr:`tuning_`); ``tune`` may also be the candidates to
        choose among, e.g. ``[ProjectedFeatures(64)]`` for fast routing (fitted: PCA).
        Without it, the router keeps its feature map. Either way the result is the ridge regression
        ``theta = (F^T F + diag(penalties))^-1 F^T y`` per arm on the features ``F``.
        """
        offline.fit(self, queries, quality, cost, tune=tune, seed=seed, latency=latency)
        return self

    def partial_fit(
        self,
        queries: Sequence[Query] | np.ndarray,
        arms: Sequence[str],
        quality: Sequence[float] | np.ndarray,
        cost: Sequence[float] | np.ndarray,
        latency: Sequence[float] | np.ndarray | None = None,
    ) -> Router:
        """Update from logged bandit data: one (arm, quality, cost[, latency]) outcome per query."""
        offline.partial_fit(self, queries, arms, quality, cost, latency)
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
        self.cost_weight = offline.calibrate(self, budget, queries, quality, cost)
        return self.cost_weight

    @property
    def _learns_on_embeddings(self) -> bool:
        """Whether pending decisions keep the embedding, not the features.

        A store, the shadows and the neighbours' memory each learn on it.
        """
        return self._keeps_embeddings or self.bandit.neighbours is not None

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the learned state atomically (``.npz`` + JSON header; pending decisions are not saved)."""
        return persistence.save(self, path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        embedder: Embedder | None | str = "default",
        seed: int | None = None,
    ) -> Router:
        """A router with the state saved by :meth:`save`; raises :class:`StateFileError` if bad."""
        return persistence.load(cls, path, embedder=embedder, seed=seed)

    # -- the pool -----------------------------------------------------------------------
    @property
    def active_arms(self) -> tuple[str, ...]:
        """The models routed to: :attr:`arms` less the retired ones."""
        return tuple(a for a in self.arms if a not in self.retired)

    def add_arm(
        self,
        name: str,
        *,
        prior: tuple[float, float] | None = None,
        prior_weight: float = 10.0,
    ) -> None:
        """Add a model to the pool now; it starts knowing nothing.

        Teach it with :meth:`partial_fit` (e.g. its answers to :meth:`quiz` prompts). With a store, the change is written there first, so every process sharing it sees the
        new pool (on its next sync) and a restart keeps it. Raises
        :class:`~metallm.ConfigurationError` when the name is already in the pool (retired
        models included: their history stays under their name). ``prior`` = (quality, cost in
        USD), e.g. from a leaderboard, starts it at that mean, worth ``prior_weight`` outcomes
        (in this process; others learn it from the feedback that follows).
        """
        if name in self._index:
            state = "retired" if name in self.retired else "in the pool"
            raise ConfigurationError(f"{name!r} is already {state}: give the new model a new name")
        problem = pool_change_problem("add", name, self.arms, self.active_arms)
        if problem is not None:
            raise ConfigurationError(f"cannot add this model: {problem}")
        if prior is not None:
            quality, cost = check_quality(prior[0]), check_cost(prior[1])
            if not (np.isfinite(prior_weight) and prior_weight > 0):
                raise ConfigurationError(f"prior_weight must be positive, got {prior_weight!r}")
        if self._sync is not None:
            self._write_pool_change("add", name)
        self._add_arm_here(name)
        if prior is not None:
            with self._lock:
                prior_start(self.bandit, self._index[name], quality, cost, weight=prior_weight)

    def retire_arm(self, name: str) -> None:
        """Stop routing to a model (a provider retired it, say); its history is kept.

        Persisted and shared through the store like :meth:`add_arm`. Raises
        :class:`~metallm.UnknownArmError` for a name not in the pool and
        :class:`~metallm.ConfigurationError` for the last model still routed to.
        """
        self._arm_index(name)
        if name in self.retired:
            return
        if len(self.active_arms) == 1:
            raise ConfigurationError(
                f"{name!r} is the last model routed to: add another before retiring it"
            )
        if self._sync is not None:
            self._write_pool_change("retire", name)
        self._retire_arm_here(name)

    def quiz(self, name: str, texts: Sequence[Query] | np.ndarray, n: int = 30) -> list[int]:
        """The indices of the ``n`` of ``texts`` to ask model ``name`` first.

        ``texts``: logged traffic, or a routing table's prompts. The picks are where what the
        model is worth is least known and the current models disagree most, spread over the
        queries (:func:`metallm.learning.onboarding.quiz_rows`). Returns their indices, best first. Run the model on them, grade the answers, and
        :meth:`onboard` the outcomes.
        """
        index = self._arm_index(name)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigurationError(f"n must be a positive number of queries, got {n!r}")
        embeddings = self.embed(as_batch(texts))
        with self._lock:
            return quiz_rows(self.bandit, index, embeddings, n)

    def onboard(
        self,
        name: str,
        queries: Sequence[Query] | np.ndarray,
        quality: Sequence[float] | np.ndarray,
        cost: Sequence[float] | np.ndarray,
        *,
        warm_start: str | None = "combination",
        pessimism: float = 1.0,
    ) -> Router:
        """Teach a new model from its outcomes on some queries (e.g. a :meth:`quiz`).

        ``warm_start="combination"`` first starts it as the combination of the other models
        that best explains these outcomes
        (:func:`metallm.learning.onboarding.combination_start`), so a few dozen outcomes place it
        among models learned from thousands, its quality level lowered by ``pessimism`` standard
        errors of that combination (so it does not take prompts on a guess; 0: none);
        ``"similar"`` starts it as a copy of the current model whose predicted quality is
        closest to these outcomes (:func:`~metallm.learning.onboarding.most_similar`); None
        learns from the outcomes alone. Then the outcomes are learned like any logged feedback
        (:meth:`partial_fit`). In this process only: other processes learn the model from the
        feedback that follows.
        """
        index = self._arm_index(name)
        if warm_start not in ("combination", "similar", None):
            raise ConfigurationError(
                f'warm_start must be "combination", "similar" or None, got {warm_start!r}'
            )
        if not (math.isfinite(pessimism) and pessimism >= 0):
            raise ConfigurationError(f"pessimism must be a finite number >= 0, got {pessimism!r}")
        embeddings = self.embed(as_batch(queries))
        n = embeddings.shape[0]
        Q = check_vector(quality, "quality", n)
        C = check_vector(cost, "cost", n)
        check_quality_array(Q)
        check_cost_array(C)
        known = [self._index[a] for a in self.active_arms if a != name]
        if warm_start is not None and known and self.bandit.n_updates:
            with self._lock:
                only = (
                    most_similar(self.bandit, embeddings, Q, known=known)
                    if warm_start == "similar"
                    else None
                )
                combination_start(
                    self.bandit,
                    index,
                    embeddings,
                    Q,
                    C,
                    known=known,
                    pessimism=pessimism,
                    only=only,
                )
        return self.partial_fit(embeddings, [name] * n, Q, C)

    def _write_pool_change(self, action: str, name: str) -> None:
        assert self._sync is not None
        store = self._sync.store
        if not isinstance(store, PoolStore):
            raise ConfigurationError(f"{store} cannot hold pool changes")
        store.add_pool_change(action, name)  # StoreError: nothing changed anywhere

    def _add_arm_here(self, name: str) -> None:
        with self._lock:
            if name in self._index:
                return
            self.bandit.add_arm()
            self.arms = (*self.arms, name)
            self._index[name] = len(self.arms) - 1
            self._failures.append(0)
            for shadow in self.shadows.values():
                shadow._add_arm_here(name)
        logger.info("metallm: %s joined the pool %s", name, list(self.active_arms))

    def _retire_arm_here(self, name: str) -> None:
        with self._lock:
            self.retired.add(name)
            self._retired_index.add(self._index[name])
            for shadow in self.shadows.values():
                if name in shadow._index:
                    shadow._retire_arm_here(name)
        logger.info("metallm: %s retired; the pool is now %s", name, list(self.active_arms))

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
