"""Budgets held live: a target per query, a paced cap per period, the cap itself, and warnings."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from metallm import Budget, ConfigurationError, LinUCB, Router
from metallm.serving._budget import cheapest_arm

ARMS = ["cheap", "mid", "dear"]
COST = {"cheap": 0.0005, "mid": 0.002, "dear": 0.006}
QUALITY = {"cheap": 0.5, "mid": 0.8, "dear": 1.0}
PRICES = {"cheap": (0.1, 0.4), "mid": (0.5, 2.0), "dear": (2.5, 10.0)}


class Clock:
    """Compressed time: the test moves it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _queries(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 8))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _router(budget: Budget, **kwargs) -> Router:
    return Router(ARMS, embedder=None, policy=LinUCB(alpha=0.5), seed=0, budget=budget, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({}, "needs usd_per_query"),
        ({"usd_per_query": -1.0}, "must be positive"),
        ({"usd_per_query": float("nan")}, "finite number"),
        ({"usd_per_query": True}, "finite number"),
        ({"usd_per_day": "5"}, "finite number"),
        ({"usd_per_day": 5.0, "usd_per_period": 5.0}, "not both"),
        ({"usd_per_day": 5.0, "period": 3600.0}, "use usd_per_period"),
        ({"usd_per_query": 0.01, "margin": 1.5}, "margin"),
        ({"usd_per_query": 0.01, "name": "a:b"}, "without ':'"),
        ({"usd_per_query": 0.01, "step": 0.0}, "step must be positive"),
        ({"usd_per_query": 0.01, "max_change": -0.1}, "max_change must be positive"),
    ],
)
def test_a_wrong_budget_is_a_configuration_error_that_says_what_is_wrong(kwargs, says):
    with pytest.raises(ConfigurationError, match=says):
        Budget(**kwargs)


def test_a_router_refuses_a_budget_that_is_not_a_budget():
    with pytest.raises(ConfigurationError, match="metallm.Budget"):
        Router(ARMS, embedder=None, budget=0.002)  # type: ignore[arg-type]


def test_budget_reads_as_what_it_holds():
    assert repr(Budget(usd_per_query=0.002)) == "Budget(usd_per_query=0.002)"
    assert Budget(usd_per_day=500.0).cap == 500.0
    hourly = Budget(usd_per_period=20.0, period=3600.0)
    assert hourly.cap == 20.0 and "period=3600.0" in repr(hourly)
    assert hourly.period_index(7200.0) == 2 and hourly.period_start(2) == 7200.0


def test_cheapest_arm_by_list_price_else_by_predicted_cost():
    assert cheapest_arm(ARMS, [0.0, 0.0, 0.0], set(), PRICES) == 0
    assert cheapest_arm(ARMS, [0.003, 0.001, 0.002], set()) == 1
    assert cheapest_arm(ARMS, [0.0, 0.0, 0.0], {0}, PRICES) == 1
    # a member without a list price: every candidate is ranked by predicted cost instead
    assert cheapest_arm(ARMS, [0.003, 0.002, 0.001], set(), {"cheap": (0.1, 0.4)}) == 2


def test_a_per_query_target_is_held_by_the_running_mean():
    target = 0.0015  # between the cheap and the mid model: the router must mix them
    router = _router(Budget(usd_per_query=target), cost_weight=0.0)
    costs, weights = [], []
    for x in _queries(3000):
        decision = router.select(x)
        router.record(decision.id, quality=QUALITY[decision.arm], cost=COST[decision.arm])
        costs.append(COST[decision.arm])
        weights.append(decision.cost_weight)
    late = np.mean(costs[1500:])
    assert abs(late / target - 1) < 0.05, late
    assert weights[0] == 0.0 and weights[-1] > 0.1  # p rose from 0 to hold it
    status = router.budget_status()
    assert status is not None and status["usd_per_query"] == target
    assert status["queries"] == 3000 and status["spent_usd"] == pytest.approx(sum(costs))


def _run_period(router: Router, clock: Clock, period: float, n: int, seed: int) -> list[float]:
    """``n`` queries spread evenly over one period of compressed time; the p of each."""
    weights = []
    for x in _queries(n, seed):
        decision = router.select(x)
        router.record(decision.id, quality=QUALITY[decision.arm], cost=COST[decision.arm])
        weights.append(decision.cost_weight)
        clock.now += period / n
    return weights


def test_a_cap_per_period_is_paced_to_end_just_under_it_without_jumps_in_p():
    clock = Clock(0.0)
    cap, period = 1.0, 1000.0  # 800 queries at the dear model's price would spend $4.80
    budget = Budget(usd_per_period=cap, period=period, clock=clock, max_change=0.05)
    router = _router(budget, cost_weight=0.0, cost_scale=COST["dear"])
    for index in range(2):  # the second period starts from the first one's p and pace
        start = budget.period_start(index)
        clock.now = start
        weights = _run_period(router, clock, period, 800, seed=index)
        clock.now = start + period - 1e-6
        status = router.budget_status()
        assert status is not None and status["period_end"] == start + period
        assert 0.95 * cap <= status["spent_usd"] <= cap, (index, status)
        assert not status["capped"]
        assert np.max(np.abs(np.diff(weights))) <= 0.05 + 1e-12
    assert router.budget_status()["largest_change"] <= 0.05 + 1e-12
    clock.now = budget.period_start(2)
    rolled = router.budget_status()
    assert rolled is not None and rolled["spent_usd"] == 0.0 and rolled["queries"] == 0


def test_at_the_cap_every_request_goes_to_the_cheapest_capable_model_until_the_period_ends(
    caplog,
):
    clock = Clock(0.0)
    router = _router(
        Budget(usd_per_period=0.03, period=100.0, clock=clock), cost_weight=0.0, cost_scale=0.006
    )
    for x in _queries(30):  # learn that the dear model is the best
        decision = router.select(x, force="dear")
        router.record(decision.id, quality=1.0, cost=0.0)
    caplog.set_level(logging.WARNING, logger="metallm")
    chosen = []
    for x in _queries(40, seed=1):
        call = router.route(x, prices=PRICES)
        chosen.append(call.decision.arm)
        metadata = call.succeeded(input_tokens=1000, output_tokens=500)  # dear: $0.0075
    assert chosen[0] == "dear" and set(chosen[-10:]) == {"cheap"}
    assert metadata["budget"]["capped"] and metadata["budget"]["spent_usd"] >= 0.03
    capped = [r for r in caplog.records if "cap" in r.getMessage()]
    assert len(capped) == 1 and "cheapest model" in capped[0].getMessage()
    # a capability exclusion still holds at the cap: the cheapest model that *can* serve it
    call = router.route(_queries(1, seed=2)[0], prices=PRICES)
    call2 = router.select(_queries(1, seed=3)[0], exclude=["cheap"], prices=PRICES)
    assert call.decision.arm == "cheap" and call2.arm == "mid" and call2.propensity == 1.0
    clock.now = 100.0  # the period rolls over: the best model again
    assert router.route(_queries(1, seed=4)[0], prices=PRICES).decision.arm == "dear"


def test_a_batch_at_the_cap_goes_to_the_cheapest_model():
    clock = Clock(0.0)
    router = _router(Budget(usd_per_period=0.001, period=100.0, clock=clock), cost_weight=0.0)
    decisions = router.select_batch(_queries(5))
    for decision in decisions:
        router.record(decision.id, quality=1.0, cost=COST[decision.arm])
    for _ in range(3):  # the cost model learns each model's price
        for arm in ARMS:
            decision = router.select(_queries(1)[0], force=arm)
            router.record(decision.id, quality=QUALITY[arm], cost=COST[arm])
    batch = router.select_batch(_queries(20, seed=5))
    assert {d.arm for d in batch} == {"cheap"} and all(d.propensity == 1.0 for d in batch)


def test_a_budget_that_cannot_be_held_says_so_once(caplog):
    budget = Budget(usd_per_query=0.0001, step=0.5, max_cost_weight=2.0)  # below the cheapest
    router = _router(budget, cost_weight=0.0, cost_scale=COST["dear"])
    caplog.set_level(logging.WARNING, logger="metallm")
    for x in _queries(200):
        decision = router.select(x)
        router.record(decision.id, quality=QUALITY[decision.arm], cost=COST[decision.arm])
    warned = [r for r in caplog.records if "cannot be held" in r.getMessage()]
    assert len(warned) == 1 and "add a cheaper model" in warned[0].getMessage()
    assert router.cost_weight == 2.0


def test_the_decision_metadata_and_health_carry_p_and_the_budgets_state():
    clock = Clock(0.0)
    router = _router(Budget(usd_per_query=0.002, usd_per_day=5.0, clock=clock), cost_weight=0.3)
    call = router.route(_queries(1)[0], prices=PRICES)
    metadata = call.succeeded(input_tokens=100, output_tokens=100)
    budget = metadata["budget"]
    assert metadata["cost_weight"] == 0.3  # the p this decision was made with
    assert budget["spent_usd"] == pytest.approx(metadata["cost_usd"])
    assert budget["cap_usd"] == 5.0 and budget["usd_per_query"] == 0.002
    assert budget["period_end"] == 86_400.0 and budget["queries"] == 1
    assert budget["cost_weight"] == router.cost_weight != 0.3  # it moved after the call
    assert router.health()["budget"] == router.budget_status()
    assert Router(ARMS, embedder=None).health()["budget"] is None


def test_each_paid_call_is_spent_once_whether_its_cost_comes_with_the_answer_or_the_feedback(
    caplog,
):
    router = _router(Budget(usd_per_query=0.002), cost_weight=0.1)
    decision = router.select(_queries(1)[0])
    router.record(decision.id, quality=1.0, cost=0.004)  # the cost, first known here
    priced = router.route(_queries(1, seed=1)[0], prices=PRICES)
    priced.succeeded(input_tokens=100, output_tokens=100)
    router.record(priced.decision.id, quality=1.0)  # its cost was spent when it answered
    again = router.route(_queries(1, seed=2)[0], prices=PRICES)
    spent = again.succeeded(input_tokens=100, output_tokens=100)["cost_usd"]
    router.record(again.decision.id, quality=1.0, cost=spent)  # the same cost, given again
    status = router.budget_status()
    assert status is not None and status["queries"] == 3
    assert status["spent_usd"] == pytest.approx(0.004 + 2 * spent)
    caplog.set_level(logging.WARNING, logger="metallm")
    router.route(_queries(1, seed=3)[0], prices=PRICES).succeeded()  # no usage reported
    status = router.budget_status()
    assert status is not None and status["queries"] == 3
    assert any("not counted against the budget" in r.getMessage() for r in caplog.records)
