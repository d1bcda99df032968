"""The MetaLLM router: a linear contextual bandit over a pool of named models, made safe to serve.

``Router`` wires named parts and delegates to them, each in a module of its name (the table
in docs/core.md: ``Learner``, ``Decider``, ``FeedbackPath``, the learning strategy, ...).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from metallm.embedding import Embedder, default_embedder
from metallm.exceptions import ConfigurationError
from metallm.learning import CapacityGrowth, DriftDetector, FeatureMap, NeighbourQuality, Policy
from metallm.serving import _offline as offline
from metallm.serving import _persistence as persistence
from metallm.serving import _pickling as pickling
from metallm.serving._budget import Budget
from metallm.serving._call import RoutedCall
from metallm.serving._capabilities import Capabilities, Needs
from metallm.serving._checks import Query, as_batch, check_part, check_ttl
from metallm.serving._deciding import Decider
from metallm.serving._decisions import Decision, Prediction
from metallm.serving._embedding import QueryEmbedder
from metallm.serving._failover import Cooldown, Fallbacks
from metallm.serving._feedback import Feedback, FeedbackSummary, record_all
from metallm.serving._feedback_path import FeedbackPath
from metallm.serving._grades import DEFAULT_SOURCE
from metallm.serving._grading import Grade, Grader, Judge
from metallm.serving._health import RouterHealth
from metallm.serving._learner import Learner
from metallm.serving._ledger import PendingDecisions
from metallm.serving._ledger_grading import GradingHandoff
from metallm.serving._pool_changes import PoolChanges
from metallm.serving._pricing import Prices
from metallm.serving._reward_setting import RewardSetting
from metallm.serving._sessions import StickySessions
from metallm.serving._shadows import check_shadows
from metallm.serving._shared_learning import learning_for
from metallm.serving._spending import spending_for
from metallm.serving._telemetry import Telemetry, telemetry_for
from metallm.state import StateStore

__all__ = ["DEFAULT_FEEDBACK_TTL", "Decision", "Prediction", "Router", "RouterHealth"]


def _view(path: str, doc: str) -> Any:
    """A read-only property that reads a part's attribute (``"_part.attribute"``)."""
    return property(attrgetter(path), doc=doc)


logger = logging.getLogger(__name__)

DEFAULT_FEEDBACK_TTL = 7 * 86_400.0
"""Seconds a decision waits for its feedback: 7 days."""


class Router:
    """Route each query to the model with the best expected quality for the money.

    A query goes to the model with the highest upper confidence bound on ``quality - p * cost
    / cost_scale - l * latency / latency_scale`` (3% of queries, by default, to a random model,
    so the log supports off-policy evaluation); feedback updates only the chosen model.

    Args:
        arms: Names of the models in the pool (unique, at least one).
        cost_weight: ``p``, the weight of cost. 0 ignores cost.
        policy: How predictions become a choice; default ``LinUCB(explore=0.03)`` (UCB with a
            3% exploration floor; ``LinUCB()`` is deterministic UCB).
        embedder: Turns query text into a vector; default a lazily loaded Sentence-BERT
            (None: the caller passes vectors).
        cost_scale: A fixed cost normaliser (USD); default the priciest model's mean observed cost.
        max_pending: Decisions awaiting feedback kept in memory (older ones are evicted; with a
            store they stay in its ledger, so their feedback still works).
        feedback_ttl: Seconds a decision waits for its feedback (default 7 days).
        features: What the per-model ridge models see of an embedding; default a 128-d
            projection plus a bias. ``EmbeddingFeatures()`` is the paper's model.
        cooldown: When a failing model is left out of routing, and for how long.
        max_sessions: Sessions whose model is remembered for sticky routing.
        store: Where feedback events, pending decisions and snapshots live (``SQLiteStore``,
            ``RedisStore``), shared by every process using it; restored from now.
        snapshot_every: Events between two snapshots in the store.
        sync_interval: Seconds between automatic syncs with the store (None: never).
        seed: Seed of the tie-breaking and exploration randomness.
        prompt_length: Let quality and cost depend on the prompt's length too. Default: on
            with an embedder (it sees the text); with a store, what the store's routers use.
        budget: A ``Budget`` (USD per query, per day, or both) held by moving ``p``, shared
            through ``store``; at a cap each request goes to the cheapest model.
        shadows: Other routers (by name) that see every query, log what they would have chosen,
            and learn every outcome this one learns (``metallm evaluate --log``).
        latency_weight: ``l``, the weight of latency. 0 (default) ignores it (still learned).
        latency_scale: A fixed latency normaliser (seconds); default the slowest model's mean.
        neighbours: Blend the linear quality predictions with the outcomes of the most similar
            prompts seen (``NeighbourQuality``), always. Off by default.
        blend: A kNN blend a tuned ``fit`` weighs over the best linear map, against the
            nonlinear maps, and keeps only where its cross-validated AIQ is the best
            (``"default"``: ``metallm.learning.default_blend()``, the table's 2,000 prompts in
            64 principal directions, chosen ``k`` and weight; a select then runs the linear map
            and the blend, never the cluster map too). None: a fit weighs feature maps only.
        drift: What notices that a model changed (a silent snapshot update) and forgets its
            past so new outcomes decide: default ``DriftDetector()``, a CUSUM on each model's
            prediction errors; None: a model's whole past weighs alike.
        growth: What grows a cold router's capacity online: default ``CapacityGrowth()`` (its
            first 4,000 outcomes kept; every 500, a richer feature map taken when its held-out
            error of quality is lower; a tuned ``fit`` stops it, a fit on fewer than 300 rows
            keeps them and grows from them); None: the map stays until ``fit``.
        clock: Seconds since the epoch: decisions' expiry, the store's retry backoff and due
            syncs (a test passes its own instead of sleeping).
        telemetry: Where each routed call and feedback is reported: ``"auto"`` (OpenTelemetry
            spans and metrics through the application's providers when ``opentelemetry-api``
            is installed; nothing when it is not, or none is configured), None, or a
            ``metallm.serving.OpenTelemetry(tracer_provider, meter_provider)``.

    Raises:
        ConfigurationError: An argument is invalid (the message says which and why), or this
            router reads vectors another way than the routers sharing its store.

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
        drift: DriftDetector | None | str = "default",
        growth: CapacityGrowth | None | str = "default",
        blend: NeighbourQuality | None | str = "default",
        clock: Callable[[], float] = time.time,
        telemetry: Telemetry | str | None = "auto",
    ) -> None:
        self.feedback_ttl = check_ttl(feedback_ttl)
        self._telemetry = telemetry_for(telemetry)
        """Seconds a decision waits for its feedback."""
        check_part(neighbours, NeighbourQuality, "neighbours", "NeighbourQuality()")
        check_part(budget, Budget, "budget", "Budget(usd_per_query=0.002)")
        self._embedder_given = "default" if embedder == "default" else embedder
        if embedder == "default":
            embedder = default_embedder()
        self._learner = Learner.build(
            arms, RewardSetting(cost_weight, latency_weight, cost_scale, latency_scale),
            policy=policy, features=features, seed=seed, neighbours=neighbours,
            drift=drift, growth=growth, blend=blend,
            reads_length=embedder is not None if prompt_length is None else prompt_length,
            embedding_model=getattr(embedder, "model_name", None),
        )  # fmt: skip
        self._embedding = QueryEmbedder(embedder, self._learner)  # type: ignore[arg-type]
        self.id = uuid.uuid4().hex
        """This router's random id (decision ids start with it)."""
        self._shadows: dict[str, Router] = {}
        self._ledger = PendingDecisions(max_pending)
        self._cooldown = cooldown if cooldown is not None else Cooldown()
        self._sessions = StickySessions(max_sessions)
        self.set_shadows(shadows)
        self._learning = learning_for(
            store, self._learner, self._ledger, snapshot_every=snapshot_every,
            sync_interval=sync_interval, feedback_ttl=self.feedback_ttl,
            prompt_length=prompt_length, embeds=embedder is not None, clock=clock,
        )  # fmt: skip
        self._spending = spending_for(budget, self._learner, self._learning)
        self._decider = Decider(
            self.id, self._learner, self._ledger, self._learning, self._cooldown,
            self._sessions, self.embed, self._spending.capped, clock,
        )  # fmt: skip
        self._feedback = FeedbackPath(
            self._learner, self._ledger, self._learning, self._cooldown, self.feedback_ttl,
            self._spending.spend, clock, self._telemetry,
        )  # fmt: skip
        self._pool_changes = PoolChanges(self._learner, self._learning, self.embed)
        self._graders: list[Grader] = []
        self._telemetry.watch(self)  # its pending, spooled, quarantined counts and budget

    arms = _view("_learner.pool.names", "Every model, retired ones included, in joining order.")
    active_arms = _view("_learner.pool.active", "The models routed to (``arms`` less the retired).")
    bandit = _view("_learner.bandit", "The learning: ridge statistics, features and policy.")
    embedder = _view(
        "_embedding.embedder", "What embeds query text (None: the caller passes vectors)."
    )
    store = _view("_learning.store", "The shared store (None: this process only).")
    cooldown = _view("_cooldown", "When failing models are left out, and for how long.")
    latency_weight = _view("_learner.reward.latency_weight", "``l``, the weight of latency.")
    cost_scale = _view("_learner.cost_scale", "The cost normaliser in USD (fixed or observed).")
    latency_scale = _view("_learner.latency_scale", "The latency normaliser in seconds.")
    tuning_ = _view("_learner.bandit.tuning_", "The cross-validation of the last ``fit``.")
    n_updates = _view("_learner.bandit.n_updates", "Outcomes learned (online and offline).")
    dimension = _view("_learner.bandit.dimension", "Embedding size (None before any).")
    reads_prompt_length = _view("_learner.reads_prompt_length", "Whether length is read.")
    evicted_decisions = _view("_ledger.evicted", "Decisions evicted before their feedback.")
    bookkeeping_errors = _view("_feedback.bookkeeping_errors", "Own records that failed.")
    restored_from_log = _view("_learning.restored_from_log", "A corrupt snapshot was skipped.")
    quarantined_events = _view("_learning.quarantined_events", "Log events not learned.")
    quarantine = _view("_learning.quarantine", "The latest: (position, decision id, why).")

    retired = property(lambda r: frozenset(r._learner.pool.retired), doc="Models not routed to.")
    shadows = property(lambda r: dict(r._shadows), doc="The shadow routers by name.")
    counts = property(lambda r: r._learner.counts(), doc="Real outcomes learned per model.")
    failure_counts = property(
        lambda r: dict(zip(r.arms, r._learner.pool.failures)), doc="Provider failures per model."
    )
    pending_decisions = property(lambda r: len(r._ledger), doc="Decisions awaiting feedback.")
    budget = _view("_spending.budget", "The budget held (None: a fixed ``p``).")

    @property
    def cost_weight(self) -> float:
        """``p``, the weight of cost (moved by a budget; set by ``calibrate``)."""
        return self._learner.reward.cost_weight

    @cost_weight.setter
    def cost_weight(self, value: float) -> None:
        self._learner.reward = self._learner.reward.with_cost_weight(value)

    policy = _view("_learner.bandit.policy", "How predictions become a choice.")
    features = _view("_learner.bandit.features", "What the ridge models see of an embedding.")

    def budget_status(self) -> dict[str, Any] | None:
        """The budget's state: ``cost_weight``, ``spent_usd``, targets, ``capped`` (None: none)."""
        return self._spending.status()

    def embed(self, queries: Sequence[Query] | np.ndarray) -> np.ndarray:
        """Embeddings (n, dim) of texts, or the given embeddings checked.

        Args:
            queries: Texts (embedded, with the prompt's length when the router reads it), or
                embeddings (checked and returned as float64).

        Returns:
            The (n, dim) matrix the router scores.

        Raises:
            ConfigurationError: Texts were given to a router without an embedder.
            InvalidInputError: The batch is empty, mixes texts with vectors or holds bad numbers.
            DimensionMismatchError: The vectors' size differs from what the router learned on.
        """
        return self._embedding.embed(queries)

    def warmup(self, *, background: bool = False) -> threading.Thread | None:
        """Load the embedding model and embed once now, so the first routed call does not wait.

        Args:
            background: Do it in a thread, returned (not a daemon: a process that exits while
                it loads waits and exits cleanly); a failure is logged and raised, typed, by
                the first call.
        """
        return self._embedding.warmup(background)

    def predict(self, queries: Sequence[Query] | np.ndarray, *, widths: bool = True) -> Prediction:
        """Predicted quality, cost (USD, never below zero) and width per model for each query.

        Args:
            queries: Texts or embeddings.
            widths: False leaves the confidence widths out (a hundredth of the cost).
        """
        embeddings = self.embed(as_batch(queries))
        with self._learner.lock:
            return Prediction(*self._learner.bandit.predict(embeddings, widths=widths))

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

        Then ``call.failed(error)`` on a provider error and ``call.succeeded(input_tokens,
        output_tokens)`` on an answer (see ``RoutedCall``).

        Args:
            query: The routing text or embedding.
            force: The model to use (capabilities and exclusions are then ignored).
            session: Keep a conversation on the model it started with.
            fallbacks: How many models to try on provider errors.
            record_errors: Learn provider failures (quality 0, cost 0).
            prices: USD per 1M input/output tokens per model, to price the answer.
            decision: Go on with a decision already made.
            run_id: The framework's id of the call (``record_run`` finds the decision by it).
            needs: What the request needs; ``capabilities``: what each member can serve.
            capabilities: What each member can serve (members that cannot are left out).
            available: The models the caller can call (others in the pool are left out).

        Raises:
            NoCapableModelError: No member can serve what the request needs.
        """
        return RoutedCall(
            self, self._feedback, query, force=force, session=session, fallbacks=fallbacks,
            record_errors=record_errors, prices=prices, decision=decision, run_id=run_id,
            needs=needs, capabilities=capabilities, available=available,
            telemetry=self._telemetry,
        )  # fmt: skip

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
        """Choose a model for one query (text or embedding).

        Args:
            query: The text, or its embedding.
            exclude: Models left out of this choice (e.g. ones that just failed).
            force: The model to use (the decision still records scores and learns).
            session: Keep a conversation on the model it started with (see ``stick``).
            ignore_cooldown: Consider models cooling down after failures too.
            run_id: The framework's id of the call, by which ``record_run`` finds it.
            prices: USD per 1M tokens, ranking the models when a budget's cap is reached.

        Returns:
            The decision: ``.arm`` is the model to call, ``.id`` the id for ``record``.

        Raises:
            UnknownArmError: A name is not in the pool.
            InvalidInputError: The query is empty or bad, or every model is excluded.
        """
        return self._decider.select(query, exclude, force, session, ignore_cooldown, run_id, prices)

    def select_batch(
        self,
        queries: Sequence[Query] | np.ndarray,
        *,
        exclude: Iterable[str] = (),
        force: str | None = None,
        ignore_cooldown: bool = False,
    ) -> list[Decision]:
        """Choose a model for each query, vectorised over the batch.

        Args:
            queries: Texts or an (n, dim) array of embeddings.
            exclude: Models left out of every choice.
            force: The model for every query (scores are still recorded).
            ignore_cooldown: Consider models cooling down after failures too.

        Returns:
            One decision per query, in order.

        Raises:
            UnknownArmError: A name is not in the pool.
            InvalidInputError: A query is bad, or every model is excluded.
        """
        return self._decider.many(queries, set(exclude), force, ignore_cooldown)

    def stick(self, session: str, arm: str) -> None:
        """Keep a session on a model from now on (until it fails over or is forgotten).

        Args:
            session: The session's id (a conversation, a user, an agent run).
            arm: The model.

        Raises:
            UnknownArmError: ``arm`` is not in the pool.
        """
        self._learner.pool.index_of(arm)
        self._sessions.stick(session, arm)

    def observe_cost(
        self, decision_id: str, cost: float, *, spend: bool = True, latency: float | None = None
    ) -> None:
        """Attach the measured cost (USD), and latency (seconds), for a later ``record``.

        Args:
            decision_id: The decision.
            cost: What the call cost, USD.
            spend: Count it against the budget (False: a placeholder), even for an unknown id.
            latency: Seconds the call took.

        Raises:
            UnknownDecisionError: No such pending decision (without a store).
            StoreError: The decision is elsewhere and the store cannot be reached.
        """
        self._feedback.observe_cost(decision_id, cost, spend, latency)

    def record(
        self,
        decision_id: str,
        *,
        quality: float,
        cost: float | None = None,
        latency: float | None = None,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        """Learn from the outcome of a decision: updates the chosen model only.

        With a store this works in any process that shares it, and after a restart. A
        decision graded already may be graded again by a source ranked above the grade in
        force (``judge < check < human``): the later grade replaces it (see
        `metallm.serving._grades`).

        Args:
            decision_id: The decision's id.
            quality: The answer's quality in [0, 1].
            cost: USD the call cost (None: the cost attached by ``observe_cost``).
            latency: Seconds (None: the latency attached by ``observe_cost``, if any).
            source: Who graded it: ``"judge"``, ``"check"`` (a label, a test: the default) or
                ``"human"``.

        Raises:
            UnknownDecisionError: Never issued, or evicted (the message says where it looked).
            ExpiredDecisionError: Later than ``feedback_ttl``.
            DuplicateFeedbackError: Already graded by this source or one ranked above it.
            InvalidFeedbackError: A bad value, an unknown source, or no cost known.
        """
        self._feedback.record(decision_id, quality, cost, latency, source)

    def grade_in_force(self, decision_id: str) -> tuple[str, float] | None:
        """Who graded a decision, and the quality learned from it (a later grade may replace it).

        Args:
            decision_id: The decision's id.

        Returns:
            ``(source, quality)``, or None when it is not graded (or among the last
            ``max_pending`` graded decisions no longer).
        """
        return self._feedback.grade_in_force(decision_id)

    def record_run(
        self,
        run_id: str,
        *,
        quality: float,
        cost: float | None = None,
        latency: float | None = None,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        """``record`` for the decision that answered a framework call.

        Args:
            run_id: The framework's id of the call (a LangChain run id, given to ``route``).
            quality: The answer's quality in [0, 1].
            cost: USD (None: the cost attached when the model answered).
            latency: Seconds (None: the latency measured then).
            source: Who graded it (see ``record``).

        Raises:
            UnknownDecisionError: No pending decision has this run id.
        """
        decision_id = self._feedback.decision_of_run(str(run_id), source)
        self.record(decision_id, quality=quality, cost=cost, latency=latency, source=source)

    def record_many(self, feedback: Iterable[Feedback]) -> FeedbackSummary:
        """Record many outcomes (a grading job); what became of each, without stopping at errors.

        Args:
            feedback: The outcomes, each by decision id or run id.

        Returns:
            How many were recorded, unknown, expired, duplicate or invalid, with each error.

        >>> router = Router(["a", "b"], embedder=None)
        >>> made = router.select_batch([[1.0, 0.0], [0.0, 1.0]])
        >>> summary = router.record_many([Feedback(d.id, quality=1.0, cost=0.0) for d in made])
        >>> summary.recorded, summary.unknown
        (2, 0)
        """
        return record_all(self, feedback)

    def health(self) -> RouterHealth:
        """What an operator watches: pending decisions, feedback outcomes, the store, the budget.

        Many ``feedback["expired"]`` means feedback arrives later than ``feedback_ttl``; many
        ``unknown``, ids from elsewhere (another store, or evicted from memory). ``grading``
        holds each grader's counts (see `Grader.stats`).
        """
        return self._feedback.health(
            self._learning.health(),
            repr(self._embedding.embedder),
            self.budget_status(),
            [grader.stats() for grader in self._graders],
        )

    def grade_with(
        self,
        judge: Judge | Callable[..., Grade | float],
        *,
        sample_rate: float = 0.1,
        max_queue: int = 1_000,
        budget_usd: float | None = None,
    ) -> Grader:
        """Grade a sampled share of answers with ``judge`` in the background, as feedback.

        ``grader.submit(decision_id, prompt, answer)`` returns at once; the grade is recorded
        like ``record(decision_id, quality=grade)`` (the call's measured cost) when the judge
        has answered. The adapters' feedback handlers take a grader and submit every answer.

        Args:
            judge: Grades an answer in [0, 1] (see `Judge`).
            sample_rate: The share of answers graded.
            max_queue: The most answers waiting for the judge (more are dropped, counted).
            budget_usd: The most the judge may spend (None: no cap).

        Returns:
            The grader (``stats()``, ``wait()``, ``close()``).

        Raises:
            ConfigurationError: A bad rate, queue size or budget.
        """
        grader = Grader(
            lambda decision_id, quality: self.record(decision_id, quality=quality, source="judge"),
            judge,
            sample_rate=sample_rate,
            max_queue=max_queue,
            budget_usd=budget_usd,
        )
        self._graders.append(grader)
        return grader

    def hand_off_grading(
        self, *, sample_rate: float = 0.1, max_queue: int = 1_000
    ) -> GradingHandoff:
        """Hand a sampled share of answers to the store, for a judge in a separate process.

        The adapters' feedback handlers take what this returns as ``grader=``; a grading
        process (`metallm.serving.LedgerGrader`, or ``metallm grade --store ...``) reads the
        answers from the store and records the judge's grades. The store must keep prompts
        (``store_prompts=True``): answers are kept only where prompts are.

        Args:
            sample_rate: The share of answers handed off (decided by the decision id).
            max_queue: The most answers waiting for the store (more are dropped, counted).

        Returns:
            The handoff (``submit``, ``stats()``, ``wait()``, ``close()``).

        Raises:
            ConfigurationError: No store that keeps answers, or bad settings.
        """
        return GradingHandoff(self, sample_rate=sample_rate, max_queue=max_queue)

    def sync(self, *, wait: bool = True) -> int:
        """Fold the store's events not yet learned (from any process) into this router.

        Events are applied in the store's order, so every process that has synced the same
        events holds exactly the same statistics; while the store cannot be reached this
        returns 0 and spooled feedback is replayed first when it is back.

        Args:
            wait: False skips when another thread is syncing.

        Returns:
            How many events were applied (0 without a store).
        """
        return self._learning.sync(wait=wait)

    def wait_for_sync(self, timeout: float | None = None) -> None:
        """Wait until a background sync started by routing is done.

        Args:
            timeout: Seconds to wait at most (None: as long as it takes).
        """
        self._learning.wait_for_sync(timeout)

    def snapshot(self) -> None:
        """Write the current statistics to the store, so a new process starts fast."""
        self._learning.snapshot()

    def close(self, timeout: float = 10.0) -> None:
        """Hand what waits for the store to it, then close the store's connections.

        Call it when a worker shuts down; routing after ``close`` reopens connections.

        Args:
            timeout: Seconds to spend at most handing over spooled feedback and decisions
                (what is still spooled then is replayed by the next process).
        """
        self._learning.close(timeout)

    def set_shadows(self, shadows: Mapping[str, Router] | None) -> None:
        """Replace the shadow routers (see ``shadows``); before routing, or with a store.

        Args:
            shadows: Routers by name, with this router's models (None: no shadows).

        Raises:
            ConfigurationError: A shadow is not a router, differs from this one, or decisions
                already pending here keep features the shadows cannot learn from.

        >>> live = Router(["small", "large"], embedder=None, cost_weight=0.1)
        >>> live.set_shadows({"thrifty": Router(["small", "large"], embedder=None, cost_weight=1.0)})
        >>> sorted(live.select([1.0, 0.0]).shadows)
        ['thrifty']
        """
        routers = {} if shadows is None else shadows
        learners = check_shadows(
            self._learner,
            {n: r._learner if isinstance(r, Router) else r for n, r in routers.items()}
            if isinstance(routers, Mapping)
            else routers,
        )
        if learners and len(self._ledger) and not self._learning.learns_on_embeddings:
            raise ConfigurationError(
                "add shadows before routing: decisions already pending in this router "
                "(without a store) keep features the shadows cannot learn from"
            )
        self._learner.set_shadows(learners)
        self._shadows = dict(routers)

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
        """Train from scratch on logged rows where every model's outcome is known.

        Args:
            queries: Texts or embeddings (n).
            quality: (n, n_models) in ``arms`` order, in [0, 1].
            cost: (n, n_models), USD.
            tune: Choose the feature map by 5-fold cross-validated AIQ (``"auto"``: with at
                least 300 rows), or among the given candidates; False keeps it.
            seed: Seed of the cross-validation's folds.
            latency: (n, n_models) seconds, when known.

        Returns:
            This router.
        """
        offline.fit(
            self._learner,
            self.embed(as_batch(queries)),
            quality,
            cost,
            tune=tune,
            seed=seed,
            latency=latency,
            # decisions pending here may hold features, which a memory of embeddings cannot take
            offer_blend=self._learning.learns_on_embeddings or not len(self._ledger),
        )
        return self

    def partial_fit(
        self,
        queries: Sequence[Query] | np.ndarray,
        arms: Sequence[str],
        quality: Sequence[float] | np.ndarray,
        cost: Sequence[float] | np.ndarray,
        latency: Sequence[float] | np.ndarray | None = None,
    ) -> Router:
        """Update from logged bandit data: one outcome per query, of the model that answered it.

        Args:
            queries: Texts or embeddings (n).
            arms: The model that answered each query.
            quality: Each answer's quality in [0, 1].
            cost: Each answer's cost, USD.
            latency: Each answer's seconds, when known.

        Returns:
            This router.
        """
        offline.partial_fit(
            self._learner, self.embed(as_batch(queries)), arms, quality, cost, latency
        )
        return self

    def calibrate(
        self,
        budget: float,
        queries: Sequence[Query] | np.ndarray,
        quality: np.ndarray | Sequence[Sequence[float]],
        cost: np.ndarray | Sequence[Sequence[float]],
    ) -> float:
        """Set and return the ``p`` with the best validation quality within ``budget`` $/query.

        Args:
            budget: The mean USD per query to stay within.
            queries: Validation texts or embeddings (n).
            quality: (n, n_models) in ``arms`` order: every model's outcome on each query.
            cost: (n, n_models) USD.

        Returns:
            The chosen ``p``, now the router's ``cost_weight``.

        Raises:
            InfeasibleBudgetError: No ``p`` gets under the budget.
        """
        predicted = self.predict(queries, widths=False)
        self.cost_weight = offline.calibrate(
            predicted.quality, predicted.cost, self.cost_scale, budget, quality, cost
        )
        return self.cost_weight

    def save(self, path: str | Path) -> Path:
        """Write the learned state atomically (``.npz`` + JSON header, never pickle).

        Pending decisions are not saved.

        Args:
            path: The file to write.

        Returns:
            The path written.
        """
        return persistence.save(self._learner, path)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as ``save`` and ``load`` do: the learned state and how it embeds.

        Raises:
            ConfigurationError: The router shares a store, holds a budget or has shadows.
        """
        return pickling.reduce(self, self._embedder_given)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        embedder: Embedder | None | str = "default",
        seed: int | None = None,
    ) -> Router:
        """A router with the state saved by ``save``.

        Raises:
            StateFileError: The file is missing, damaged, or not a router's state.
        """

        def build(settings: dict[str, Any]) -> tuple[Router, Learner]:
            router = cls(settings.pop("arms"), embedder=embedder, seed=seed, **settings)
            return router, router._learner

        return persistence.load(path, build)

    def add_arm(
        self, name: str, *, prior: tuple[float, float] | None = None, prior_weight: float = 10.0
    ) -> None:
        """Add a model to the pool now; it starts knowing nothing (teach it with ``onboard``).

        With a store the change is written there first, so every process sees the new pool.

        Args:
            name: The new model's name (never used before in this pool).
            prior: (quality, cost in USD), e.g. from a leaderboard, to start it at.
            prior_weight: How many outcomes the prior is worth.

        Raises:
            ConfigurationError: The name is taken (retired models included) or invalid.
        """
        self._pool_changes.add(name, prior, prior_weight)

    def retire_arm(self, name: str) -> None:
        """Stop routing to a model; its history is kept (shared like ``add_arm``).

        Args:
            name: The model.

        Raises:
            UnknownArmError: Not in the pool.
            ConfigurationError: It is the last model routed to.
        """
        self._pool_changes.retire(name)

    def quiz(self, name: str, texts: Sequence[Query] | np.ndarray, n: int = 30) -> list[int]:
        """The indices of the ``n`` of ``texts`` to ask model ``name`` first, best first.

        The picks are where what the model is worth is least known and the current models
        disagree most; run the model on them, grade the answers, and ``onboard`` the outcomes.

        Args:
            name: The model (added with ``add_arm``).
            texts: Logged traffic, or a routing table's prompts (texts or embeddings).
            n: How many to pick.

        Returns:
            Indices into ``texts``.
        """
        return self._pool_changes.quiz(name, texts, n)

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
        """Teach a new model from its outcomes on some queries (e.g. a ``quiz``), in this process.

        Args:
            name: The model (added with ``add_arm``).
            queries: Texts or embeddings it answered.
            quality: Its graded answers in [0, 1].
            cost: What each answer cost, USD.
            warm_start: ``"combination"`` starts it as the combination of the other models that
                best explains these outcomes; ``"similar"`` as a copy of the closest; None from
                the outcomes alone.
            pessimism: Standard errors the combination's quality level is lowered by.
        """
        self._pool_changes.onboard(name, queries, quality, cost, warm_start, pessimism)
        return self

    def __repr__(self) -> str:
        return (
            f"Router(arms={list(self.arms)}, cost_weight={self.cost_weight}, "
            f"policy={self.policy}, n_updates={self.n_updates})"
        )
