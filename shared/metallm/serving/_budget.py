"""Budgets held live: a target cost per query, a cap per day (or any period), or both.

The router holds a budget by moving its cost weight ``p`` (in ``reward = quality - p * cost
/ cost_scale``) after every call it pays for, by dual ascent on the budget constraint::

    p  <-  clip(p + step * (cost - target) / cost_scale,  0, max_cost_weight)

with each move at most ``max_change``. ``p`` grows while calls cost more than the target and
shrinks while they cost less, so the running mean cost per call settles at the target.

With a cap per period the target is the pace the cap allows: what is left of the cap (less a
``margin``), spread over the calls expected in the time left of the period (at this period's
rate so far, or the previous period's early on). So ``p`` tightens smoothly as spend nears the
cap; once spend reaches the cap, each request goes to the cheapest model that can serve it
until the period rolls over (nothing is blocked). With both, the stricter target holds.

The spend and ``p`` live in the router's store when it has one (`SQLiteStore`,
`RedisStore`: sums that every process adds to, and one shared ``p``), so many
worker processes hold one budget together; without a store, in the process. While the store
cannot be reached, spend is counted locally and added when it is back.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from metallm.exceptions import ConfigurationError, CorruptStoreError, StoreError
from metallm.state import (
    BudgetState,
    BudgetStore,
)

__all__ = ["DAY", "Budget", "BudgetKeeper", "cheapest_arm"]

logger = logging.getLogger("metallm.serving")

DAY = 86_400.0
"""Seconds in a day: the default period."""

_EARLY_QUERIES = 10
"""Calls in a period before its own rate is trusted for pacing (the previous period's before)."""


def _positive(name: str, value: float | None, *, allow_none: bool = True) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ConfigurationError(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}")
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Budget:
    """A budget the router holds while it routes: dollars per query, per day, or both.

    Args:
        usd_per_query: Target mean cost per call (USD); the router's running mean settles here.
        usd_per_day: A cap per UTC day (USD), paced over the day.
        usd_per_period: A cap per ``period`` seconds instead (e.g. an hour, a 30-day month).
        period: Seconds per period for ``usd_per_period`` (periods start at ``anchor``).
        step: How fast ``p`` moves: the dual ascent's step per call.
        max_change: The most ``p`` moves after one call (None: no limit).
        max_cost_weight: The ceiling of ``p``.
        margin: The share of a cap kept in reserve when pacing (spend aims at ``cap * (1 - margin)``).
        name: The budget's key in a store: routers sharing a store and a name share a budget.
        anchor: A Unix time at which a period starts (0: periods start at UTC midnight).
        clock: Seconds since the epoch (tests compress time with their own).

    >>> Budget(usd_per_query=0.002)
    Budget(usd_per_query=0.002)
    >>> Budget(usd_per_day=500.0).cap
    500.0
    """

    usd_per_query: float | None = None
    usd_per_day: float | None = None
    usd_per_period: float | None = None
    period: float = DAY
    step: float = 0.05
    max_change: float | None = 0.25
    max_cost_weight: float = 100.0
    margin: float = 0.02
    name: str = "default"
    anchor: float = 0.0
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def __post_init__(self) -> None:
        _positive("usd_per_query", self.usd_per_query)
        _positive("usd_per_day", self.usd_per_day)
        _positive("usd_per_period", self.usd_per_period)
        _positive("period", self.period, allow_none=False)
        _positive("step", self.step, allow_none=False)
        _positive("max_change", self.max_change)
        _positive("max_cost_weight", self.max_cost_weight, allow_none=False)
        if self.usd_per_query is None and self.usd_per_day is None and self.usd_per_period is None:
            raise ConfigurationError(
                "a Budget needs usd_per_query, usd_per_day or usd_per_period (or two of them)"
            )
        if self.usd_per_day is not None and self.usd_per_period is not None:
            raise ConfigurationError("give usd_per_day or usd_per_period (with period), not both")
        if self.usd_per_day is not None and self.period != DAY:
            raise ConfigurationError(
                f"usd_per_day is per day; for a period of {self.period:g} s use usd_per_period"
            )
        if not (isinstance(self.margin, (int, float)) and 0.0 <= self.margin < 1.0):
            raise ConfigurationError(f"margin must be in [0, 1), got {self.margin!r}")
        if not isinstance(self.name, str) or not self.name or ":" in self.name:
            raise ConfigurationError(
                f"name must be a non-empty string without ':', got {self.name!r}"
            )
        if not (isinstance(self.anchor, (int, float)) and math.isfinite(self.anchor)):
            raise ConfigurationError(f"anchor must be a Unix time, got {self.anchor!r}")

    @property
    def cap(self) -> float | None:
        """USD per period (None: no cap)."""
        return self.usd_per_day if self.usd_per_day is not None else self.usd_per_period

    def period_index(self, now: float) -> int:
        """Which period ``now`` falls in (0 at ``anchor``).

        Args:
            now: Unix time.
        """
        return math.floor((now - self.anchor) / self.period)

    def period_start(self, index: int) -> float:
        """When period ``index`` starts (Unix time).

        Args:
            index: The period.
        """
        return self.anchor + index * self.period

    def target(self, state: BudgetState, now: float) -> float | None:
        """The cost per call to aim at now: the per-query target, the cap's pace, or the lower.

        None when neither applies yet (a cap, but no calls seen to estimate their rate).

        Args:
            state: The period's spend so far.
            now: Unix time.
        """
        targets = [] if self.usd_per_query is None else [self.usd_per_query]
        cap = self.cap
        if cap is not None:
            start = self.period_start(state.period)
            elapsed, left = max(now - start, 0.0), max(start + self.period - now, 0.0)
            if state.queries >= _EARLY_QUERIES and elapsed > 0:
                rate = state.queries / elapsed
            elif state.previous_queries > 0:
                rate = state.previous_queries / self.period
            elif state.queries > 0:
                rate = state.queries / max(elapsed, 0.01 * self.period)
            else:
                rate = None
            if rate is not None:
                remaining = cap * (1.0 - self.margin) - state.spent
                targets.append(max(remaining, 0.0) / max(rate * left, 1.0))
        return min(targets) if targets else None

    def change(self, cost: float, target: float, scale: float) -> float:
        """How far one call of ``cost`` moves ``p`` (clipped to ``max_change``).

        Args:
            cost: The call's USD.
            target: The USD per call aimed at.
            scale: The router's cost normaliser (USD).
        """
        delta = self.step * (cost - target) / scale
        if self.max_change is not None:
            delta = min(max(delta, -self.max_change), self.max_change)
        return delta

    def __repr__(self) -> str:
        shown = [
            f"{name}={getattr(self, name)!r}"
            for name in ("usd_per_query", "usd_per_day", "usd_per_period")
            if getattr(self, name) is not None
        ]
        if self.usd_per_period is not None:
            shown.append(f"period={self.period!r}")
        if self.name != "default":
            shown.append(f"name={self.name!r}")
        return f"Budget({', '.join(shown)})"


def cheapest_arm(
    arms: Sequence[str],
    predicted_cost: Sequence[float],
    excluded: set[int],
    prices: Mapping[str, tuple[float, ...]] | None = None,
) -> int:
    """The index of the cheapest arm not excluded.

    By list price when every candidate has one (input + output USD per 1M tokens), else by
    predicted cost; ties by predicted cost.

    >>> cheapest_arm(["big", "small"], [0.002, 0.0001], set())
    1
    >>> cheapest_arm(["big", "small"], [0.0, 0.0], set(), {"big": (2.5, 10.0), "small": (0.15, 0.6)})
    1
    """
    candidates = [i for i in range(len(arms)) if i not in excluded] or list(range(len(arms)))
    priced = prices is not None and all(arms[i] in prices for i in candidates)

    def key(i: int) -> tuple[float, float]:
        listed = sum(prices[arms[i]][:2]) if priced and prices is not None else 0.0
        return (listed, predicted_cost[i])

    return min(candidates, key=key)


class _ProcessBook:
    """A budget's sums in this process's memory: the book of a router without a store."""

    def __init__(self) -> None:
        self._spend: dict[int, tuple[float, int]] = {}
        self._weight: float | None = None

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
        spent, count = self._spend.get(period, (0.0, 0))
        self._spend[period] = (spent + cost, count + queries)
        for old in [p for p in self._spend if p < period - 1]:
            del self._spend[old]
        start = initial if self._weight is None else self._weight
        self._weight = min(max(start + change, floor), ceiling)
        return self.budget_state(name, period)

    def budget_state(self, name: str, period: int) -> BudgetState:
        spent, count = self._spend.get(period, (0.0, 0))
        return BudgetState(
            period, spent, count, self._weight, self._spend.get(period - 1, (0.0, 0))[1]
        )


class BudgetKeeper:
    """A router's live budget: what it spent, the cost weight it holds, and when it is capped.

    ``usable`` / ``failed`` / ``succeeded`` are the router's store health callbacks, so a
    store that is down is not waited for on every call.
    """

    def __init__(
        self,
        budget: Budget,
        store: object | None,
        *,
        cost_weight: float,
        usable: Callable[[], bool] = lambda: True,
        failed: Callable[[Exception], None] = lambda e: None,
        succeeded: Callable[[], None] = lambda: None,
    ) -> None:
        self.budget = budget
        self.shared = isinstance(store, BudgetStore)
        """Whether the budget lives in a store (shared by every process using it)."""
        self._book: BudgetStore = store if isinstance(store, BudgetStore) else _ProcessBook()
        self._usable, self._failed, self._succeeded = usable, failed, succeeded
        self._lock = threading.Lock()
        self.cost_weight = cost_weight
        """The ``p`` the router routes with now."""
        self._state = BudgetState(budget.period_index(budget.clock()), cost_weight=cost_weight)
        self._unsent = (0.0, 0, 0.0)  # cost, calls, change counted while the store was down
        self._warned: set[tuple[str, int]] = set()
        self.store_error: str | None = None
        """Why the store's budget could not be read (another client's bad row), if so."""
        self.largest_change = 0.0
        """The largest move of ``p`` after one call so far (what ``max_change`` bounds)."""
        self.refresh()

    # -- reading ------------------------------------------------------------------------
    def _current(self, now: float) -> BudgetState:
        """The last known state, rolled over to a new period when one has started."""
        index = self.budget.period_index(now)
        state = self._state
        if index != state.period:
            previous = state.queries if index == state.period + 1 else 0
            state = BudgetState(index, 0.0, 0, state.cost_weight, previous)
        return state

    def capped(self) -> bool:
        """Whether this period's spend has reached the cap (route to the cheapest model).

        With a shared store, the spend is read from it now (one read, bounded by the store's
        routing timeout), so a call routed after any process's spend reached the cap goes to
        the cheapest model: the cap is exceeded by the calls already in flight at most.
        """
        cap = self.budget.cap
        if cap is None:
            return False
        if self.shared:
            self.refresh()
        with self._lock:
            state = self._current(self.budget.clock())
        return state.spent >= cap

    def refresh(self) -> None:
        """Read the shared state (other processes' spend and ``p``) from the store."""
        if not self.shared or not self._usable():
            return
        index = self.budget.period_index(self.budget.clock())
        try:
            state = self._book.budget_state(self.budget.name, index)
        except CorruptStoreError as e:  # another client's bad row: the store itself is fine
            self._refuse(e)
            return
        except StoreError as e:
            self._failed(e)
            return
        with self._lock:
            self._adopt(state)

    def _refuse(self, error: CorruptStoreError) -> None:
        """The store's budget cannot be read: hold it in this process, say so once."""
        if self.store_error is None:
            logger.warning("%s; this process holds the budget on its own meanwhile", error)
        self.store_error = str(error)

    def _adopt(self, state: BudgetState) -> None:
        unsent_cost, unsent_calls, unsent_change = self._unsent
        if unsent_calls:  # counted here but not yet in the store: keep them in view
            weight = state.cost_weight if state.cost_weight is not None else self.cost_weight
            state = replace(
                state,
                spent=state.spent + unsent_cost,
                queries=state.queries + unsent_calls,
                cost_weight=self._clip(weight + unsent_change),
            )
        self._state = state
        if state.cost_weight is not None:
            self.cost_weight = state.cost_weight

    def _clip(self, weight: float) -> float:
        return min(max(weight, 0.0), self.budget.max_cost_weight)

    # -- spending -----------------------------------------------------------------------
    def spend(self, cost: float, scale: float | None) -> float:
        """Count one paid call of ``cost`` USD and move ``p``; the new ``p``.

        ``scale`` is the router's cost normaliser (None before it has observed any cost: the
        target stands in for it).
        """
        budget = self.budget
        now = budget.clock()
        with self._lock:
            state = self._current(now)
            target = budget.target(state, now)
            change = 0.0
            if target is not None and not (budget.cap is not None and state.spent >= budget.cap):
                change = budget.change(cost, target, scale or max(target, 1e-12))
            before = self.cost_weight
            # this call, and what was counted while the store was down, go in one write
            unsent_cost, unsent_calls, unsent_change = self._unsent
            sending = (unsent_cost + cost, unsent_calls + 1, unsent_change + change)
            self._unsent = (0.0, 0, 0.0)
        written = None
        if not self.shared or self._usable():
            try:
                written = self._book.add_spend(
                    budget.name,
                    state.period,
                    cost=sending[0],
                    queries=sending[1],
                    change=sending[2],
                    floor=0.0,
                    ceiling=budget.max_cost_weight,
                    initial=before,
                )
            except CorruptStoreError as e:
                self._refuse(e)
            except StoreError as e:
                self._failed(e)
                logger.warning(
                    "metallm could not add $%.6g to budget %r in the store (%s); counted in "
                    "this process until the store is back",
                    cost,
                    budget.name,
                    e,
                )
            else:
                if self.shared:
                    self._succeeded()
        with self._lock:
            if written is not None:
                self._adopt(written)
            else:  # the store is down: keep the sums to send later, go on with the local view
                c, n, d = self._unsent
                self._unsent = (c + sending[0], n + sending[1], d + sending[2])
                self._state = replace(
                    state,
                    spent=state.spent + cost,
                    queries=state.queries + 1,
                    cost_weight=self._clip(before + change),
                )
                self.cost_weight = self._clip(before + change)
            self.largest_change = max(self.largest_change, abs(self.cost_weight - before))
            weight, state = self.cost_weight, self._state
        self._warn_if_unholdable(state, target, now)
        return weight

    def _warn_if_unholdable(self, state: BudgetState, target: float | None, now: float) -> None:
        budget = self.budget
        cap = budget.cap
        if cap is not None and state.spent >= cap and ("cap", state.period) not in self._warned:
            self._warned.add(("cap", state.period))
            end = budget.period_start(state.period) + budget.period
            logger.warning(
                "metallm budget %r: $%.6g spent of the $%.6g cap with %.0f s of the period left; "
                "each request goes to the cheapest model that can serve it until the period ends",
                budget.name,
                state.spent,
                cap,
                max(end - now, 0.0),
            )
        elif (
            target is not None
            and self.cost_weight >= budget.max_cost_weight
            and ("ceiling", state.period) not in self._warned
        ):
            self._warned.add(("ceiling", state.period))
            logger.warning(
                "metallm budget %r cannot be held even at the cheapest routing: p is at its "
                "ceiling (%g) and calls still cost more than the $%.6g per call it allows; "
                "raise the budget, or add a cheaper model to the pool",
                budget.name,
                budget.max_cost_weight,
                target,
            )

    # -- reporting ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The budget's state for metadata and health: ``p``, spend, target, period end."""
        budget = self.budget
        now = budget.clock()
        with self._lock:
            state = self._current(now)
            weight = self.cost_weight
        cap = budget.cap
        target = budget.target(state, now)
        return {
            "name": budget.name,
            "cost_weight": weight,
            "usd_per_query": budget.usd_per_query,
            "cap_usd": cap,
            "spent_usd": state.spent,
            "queries": state.queries,
            "mean_cost_usd": state.spent / state.queries if state.queries else None,
            "target_usd_per_query": target,
            "period_end": None
            if cap is None
            else budget.period_start(state.period) + budget.period,
            "capped": cap is not None and state.spent >= cap,
            "shared": self.shared,
            "store_error": self.store_error,
            "largest_change": self.largest_change,
        }
