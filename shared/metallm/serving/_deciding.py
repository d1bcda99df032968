"""The decision path: one query or many, the same steps.

For each call: catch up with the store when due, embed, work out which models are left out
(asked for, retired, cooling down) and whether a budget's cap forces the cheapest, ask the
shadows, score with the learner, and remember each decision for its feedback (in memory, and
where the learning strategy shares it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import numpy as np

from metallm.serving._budget import cheapest_arm
from metallm.serving._checks import Query, one_embedding
from metallm.serving._decisions import Decision, Selection
from metallm.serving._failover import Cooldown
from metallm.serving._learner import Learner
from metallm.serving._learning import Learning
from metallm.serving._ledger import PendingDecisions, PendingEntry
from metallm.serving._pricing import Prices
from metallm.serving._sessions import StickySessions
from metallm.serving._shadows import choose_many, choose_one

__all__ = ["Decider"]


class Decider:
    """Makes a router's decisions, for one query (`one`) or a batch (`many`).

    Args:
        router_id: The router's random id: decision ids are it and a counter.
        learner: What scores the models.
        ledger: Decisions awaiting feedback, in memory.
        learning: Where decisions are shared (a store's ledger) and when to catch up.
        cooldown: Models left out after repeated failures.
        sessions: The model each conversation is kept on.
        embed: Turns a batch of queries into checked embeddings.
        capped: Whether a budget's cap is reached (the cheapest model serves then).
        clock: Seconds since the epoch (a decision's time, for its feedback's expiry).
    """

    def __init__(
        self,
        router_id: str,
        learner: Learner,
        ledger: PendingDecisions,
        learning: Learning,
        cooldown: Cooldown,
        sessions: StickySessions,
        embed: Callable[[Any], np.ndarray],
        capped: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._prefix = f"{router_id}-"
        self._learner = learner
        self._ledger = ledger
        self._learning = learning
        self._cooldown = cooldown
        self._sessions = sessions
        self._embed = embed
        self._capped = capped
        self._clock = clock
        self._made = 0

    def select(
        self,
        query: Query,
        exclude: Iterable[str],
        force: str | None,
        session: str | None,
        ignore_cooldown: bool,
        run_id: str | None,
        prices: Prices | None,
    ) -> Decision:
        """One decision, kept on the session's model when it has one (see ``Router.select``)."""
        excluded = set(exclude)
        if force is None and session is not None:
            kept = self._sessions.get(session)
            if (
                kept is not None
                and kept not in excluded
                and kept not in self._learner.pool.retired
                and (ignore_cooldown or kept not in self._cooldown.cooling())
            ):
                decision = self.one(query, excluded, kept, True, run_id, session, prices)
                return decision._replace(forced=False, sticky=True)
            if kept is None:
                # A new session: the first choice claims it at once, so calls of the same
                # session running concurrently (a batch) all go where the first one went.
                decision = self.one(query, excluded, None, ignore_cooldown, run_id, session, prices)
                winner = self._sessions.claim(session, decision.arm)
                if winner == decision.arm:
                    return decision
                with self._learner.lock:
                    self._ledger.discard(decision.id)
                decision = self.one(query, excluded, winner, True, run_id, session, prices)
                return decision._replace(forced=False, sticky=True)
        return self.one(query, excluded, force, ignore_cooldown, run_id, session, prices)

    # -- the shared steps ---------------------------------------------------------------
    def _left_out(
        self, exclude: Collection[str], force: str | None, ignore_cooldown: bool
    ) -> tuple[set[int], int | None, bool]:
        """Excluded indices, the forced index, and whether a budget's cap forces the cheapest."""
        pool = self._learner.pool
        if exclude or force is not None or self._cooldown.active or pool.retired_index:
            cooling = () if ignore_cooldown else self._cooldown.cooling()
            excluded, forced = pool.allowed(exclude, force, cooling)
        else:
            excluded, forced = set(), None
        return excluded, forced, forced is None and self._capped()

    def _ids(self, n: int) -> tuple[int, str]:
        """The first counter of ``n`` new decisions (caller holds the lock) and the id prefix."""
        first = self._made + 1
        self._made += n
        return first, self._prefix

    # -- one query ----------------------------------------------------------------------
    def one(
        self,
        query: Query,
        exclude: Collection[str],
        force: str | None,
        ignore_cooldown: bool,
        run_id: str | None = None,
        session: str | None = None,
        prices: Prices | None = None,
    ) -> Decision:
        """A decision for one query, with as few numpy calls as the maths allows."""
        learning, learner = self._learning, self._learner
        learning.sync_if_due()
        embedding = self._embed([query])[0] if isinstance(query, str) else one_embedding(query)
        excluded, forced, capped = self._left_out(exclude, force, ignore_cooldown)
        pool = learner.pool
        shadowed = (
            choose_one(learner.shadows, embedding, [pool.names[i] for i in excluded])
            if learner.shadows
            else None
        )
        prompt = query if isinstance(query, str) and learning.keeps_prompts else None
        now = self._clock()
        with learner.lock:
            chosen, scores, bonus, features, quality, cost, latency = learner.score_one(
                embedding, excluded, forced
            )
            if capped:  # the budget's cap is reached: the cheapest model that can serve it
                chosen = cheapest_arm(pool.names, cost, excluded, prices)
            propensity = (
                1.0
                if forced is not None or capped
                else learner.propensity_one(scores, chosen, excluded)
            )
            selection = Selection(
                pool.names,
                pool.index,
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
            first, prefix = self._ids(1)
            decision: Decision = tuple.__new__(
                Decision,
                (
                    f"{prefix}{first:x}",
                    pool.names[chosen],
                    learner.reward.cost_weight,
                    selection,
                    0,
                    forced is not None,
                    False,
                ),
            )
            vector = embedding.astype(np.float32) if learning.learns_on_embeddings else features
            self._ledger.add(
                decision.id,
                PendingEntry(chosen, [vector], 0, now, run_id, prompt, propensity, shadowed),
            )
        learning.keep([decision], [vector], now, run_id, session)
        return decision

    # -- a batch ------------------------------------------------------------------------
    def many(
        self,
        queries: Sequence[Query] | np.ndarray,
        exclude: Collection[str],
        force: str | None,
        ignore_cooldown: bool,
    ) -> list[Decision]:
        """A decision for each query, vectorised over the batch."""
        learning, learner = self._learning, self._learner
        learning.sync_if_due()
        embeddings = self._embed(queries)
        learner.bandit.ensure(embeddings.shape[1])
        excluded, forced, capped = self._left_out(exclude, force, ignore_cooldown)
        pool = learner.pool
        shadowed = (
            choose_many(learner.shadows, embeddings, [pool.names[i] for i in excluded])
            if learner.shadows
            else None
        )
        prompts = (
            [q if isinstance(q, str) else None for q in queries]
            if learning.keeps_prompts and isinstance(queries, list)
            else None
        )
        if embeddings is queries:
            embeddings = embeddings.copy()  # our own copy: the caller may reuse its array
        now = self._clock()
        with learner.lock:
            chosen, scores, bonus, X, quality, cost, latency = learner.score_many(
                embeddings, excluded, forced
            )
            if capped:  # the budget's cap is reached: the cheapest model for each query
                chosen = np.array(
                    [cheapest_arm(pool.names, row, excluded) for row in cost.tolist()]
                )
            propensity = (
                np.ones(len(chosen))
                if forced is not None or capped
                else learner.propensities(scores, chosen, excluded)
            )
            selection = Selection(
                pool.names,
                pool.index,
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
            picks = chosen.tolist()
            first, prefix = self._ids(len(picks))
            make, weight, is_forced, names = (
                tuple.__new__,
                learner.reward.cost_weight,
                forced is not None,
                pool.names,
            )
            decisions: list[Decision] = [
                make(
                    Decision,
                    (
                        f"{prefix}{first + row:x}",
                        names[arm],
                        weight,
                        selection,
                        row,
                        is_forced,
                        False,
                    ),
                )
                for row, arm in enumerate(picks)
            ]
            vectors = embeddings.astype(np.float32) if learning.learns_on_embeddings else X
            self._ledger.add_many(
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
        learning.keep(decisions, vectors, now, None, None)
        return decisions
