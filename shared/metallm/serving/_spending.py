"""What a router's calls spend: a budget held by moving ``p``, or nothing to hold."""

from __future__ import annotations

from typing import Any

from metallm.serving._budget import Budget, BudgetKeeper
from metallm.serving._learner import Learner
from metallm.serving._learning import Learning

__all__ = ["NoBudget", "Spending", "spending_for"]


class NoBudget:
    """A router without a budget: nothing is capped, spend changes nothing."""

    budget: Budget | None = None

    def capped(self) -> bool:
        """Never capped."""
        return False

    def spend(self, cost: float) -> None:
        """Nothing to count against."""

    def status(self) -> dict[str, Any] | None:
        """No budget: None."""
        return None


class Spending:
    """A budget held by moving the learner's ``p`` after every paid call (see ``Budget``).

    Args:
        budget: The budget.
        learner: Whose reward setting's ``p`` is moved.
        learning: Where the spend is summed (a store shared by every process, or this
            process), and whose syncs read the other processes' spend.
    """

    def __init__(self, budget: Budget, learner: Learner, learning: Learning) -> None:
        self._learner = learner
        self._keeper = BudgetKeeper(
            budget,
            learning.budget_book(),
            cost_weight=learner.reward.cost_weight,
            usable=learning.usable,
            failed=learning.failed,
            succeeded=learning.succeeded,
        )
        self.budget: Budget | None = budget
        self._follow()
        learning.before_sync = self.refresh

    def _follow(self) -> None:
        self._learner.reward = self._learner.reward.with_cost_weight(self._keeper.cost_weight)

    def capped(self) -> bool:
        """Whether the cap of this period is reached (the cheapest model serves then)."""
        return self._keeper.capped()

    def spend(self, cost: float) -> None:
        """Count a paid call against the budget and route with the ``p`` it leaves."""
        learner = self._learner
        scale = learner.cost_scale if learner.scale_known else None
        self._keeper.spend(cost, scale)
        self._follow()

    def refresh(self) -> None:
        """Read the other processes' spend and the shared ``p``."""
        self._keeper.refresh()
        self._follow()

    def status(self) -> dict[str, Any] | None:
        """The budget's state now (see ``Router.budget_status``)."""
        return self._keeper.status()


def spending_for(
    budget: Budget | None, learner: Learner, learning: Learning
) -> Spending | NoBudget:
    """The spending part of a router: a held budget, or `NoBudget`."""
    return NoBudget() if budget is None else Spending(budget, learner, learning)
