"""``metallm simulate``: online replay of a routing table with bandit feedback.

Prompts arrive in a seeded random order; each policy sees only the outcome of the model it
chose. Against the number of queries we track running quality, running cost and the
cumulative regret versus the full-information offline router (ridge fitted on every row
with every model's outcome, the best a learner of this family could do in hindsight).
With a budget, the router holds a target mean $/query online by dual ascent on ``p``: the
library's own `Budget`, as a live router holds it. A table with latency
columns is replayed with latency too (each router learns it), and ``latency_weight`` puts it
in the reward: ``quality - p * cost / cost_scale - l * latency / latency_scale``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from metallm.embedding import Embedder
from metallm.evaluation._bench import embed_table, table_embedder
from metallm.evaluation._datasets import load_routing_table
from metallm.evaluation._progress import Bar
from metallm.evaluation._reports import BudgetReport, Run, SimulationResult
from metallm.learning import (
    DriftDetector,
    EpsilonGreedy,
    LinUCB,
    Policy,
    RandomPolicy,
    SquareCB,
    calibrate_cost_weight,
    with_prompt_length,
)
from metallm.serving import Budget, Router

__all__ = ["SimulationResult", "hindsight_reward", "run_simulation"]

DEFAULT_ALPHA = LinUCB().alpha


def _policies(alpha: float) -> dict[str, Policy]:
    return {
        "UCB": LinUCB(alpha=alpha),
        "UCB + 10% exploration": LinUCB(alpha=alpha, explore=0.1),
        "SquareCB": SquareCB(),
        "greedy": LinUCB(alpha=0.0),
        "epsilon-greedy": EpsilonGreedy(epsilon=0.1),
        "random": RandomPolicy(),
    }


_BAR_STEP = 100
"""Queries between two updates of the replay's bar."""


def _replay(
    router: Router,
    embeddings: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    reference_reward: np.ndarray,
    latency: np.ndarray | None = None,
    bar: Bar | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Each query in turn: select, then learn the chosen model's outcome.

    A router with a budget moves its ``p`` as it learns each cost; ``bar`` counts the queries.
    """
    n = len(embeddings)
    got_q, got_c, reward, weights = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    got_l = None if latency is None else np.empty(n)
    index = {arm: j for j, arm in enumerate(router.arms)}
    scale = router.cost_scale
    slow = router.latency_weight / router.latency_scale
    for t in range(n):
        decision = router.select(embeddings[t])
        j = index[decision.arm]
        q, c = quality[t, j], cost[t, j]
        seconds = None if latency is None else float(latency[t, j])
        router.record(decision.id, quality=q, cost=c, latency=seconds)
        got_q[t], got_c[t] = q, c
        if got_l is not None:
            got_l[t] = seconds
        weights[t] = decision.cost_weight
        reward[t] = q - decision.cost_weight * c / scale - slow * (seconds or 0.0)
        if bar is not None and (t + 1) % _BAR_STEP == 0:
            bar.update(_BAR_STEP)
    if bar is not None:
        bar.update(n % _BAR_STEP)
    return got_q, got_c, np.cumsum(reference_reward - reward), weights, got_l


def hindsight_reward(
    models: list[str],
    E: np.ndarray,
    Q: np.ndarray,
    C: np.ndarray,
    *,
    scale: float,
    cost_weight: float,
    seed: int = 0,
    latency: np.ndarray | None = None,
    latency_weight: float = 0.0,
    latency_scale: float | None = None,
) -> np.ndarray:
    """Per row, the reward of the full-information offline router's choice: regret's reference.

    The router is ridge fitted on every row with every model's outcome, the best a learner of
    this family could do in hindsight; its choice is scored with the row's true outcome.

    Args:
        models: The pool.
        E: The query vectors (n, d).
        Q: Every model's quality (n, k).
        C: Every model's cost (n, k).
        scale: The reward's cost scale.
        cost_weight: ``p`` in the reward.
        seed: The router's seed.
        latency: Every model's latency (n, k), when the table has it.
        latency_weight: ``l`` in the reward.
        latency_scale: The reward's latency scale.

    Returns:
        The reference reward of each row, (n,).
    """
    offline = Router(
        models,
        embedder=None,
        prompt_length=True,
        cost_scale=scale,
        cost_weight=cost_weight,
        policy=LinUCB(alpha=0.0),
        seed=seed,
        latency_weight=latency_weight,
        latency_scale=latency_scale,
    ).fit(E, Q, C, tune=False, latency=latency)
    predicted = offline.predict(E, widths=False)
    rows = np.arange(len(E))
    slow = latency_weight / (latency_scale or 1.0)
    value = predicted.quality - cost_weight * predicted.cost / scale
    if latency is not None:
        value = value - slow * offline.bandit.predict_latency(E)
    best = np.argmax(value, axis=1)
    reference: np.ndarray = Q[rows, best] - cost_weight * C[rows, best] / scale
    if latency is not None:
        reference = reference - slow * latency[rows, best]
    return reference


def run_simulation(
    data: str | Path,
    *,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    warm_start: float = 0.05,
    cost_weight: float = 0.1,
    budget: float | None = None,
    embedder: Embedder | None = None,
    progress: bool = True,
    latency_weight: float = 0.0,
    drift: DriftDetector | None | str = "default",
) -> SimulationResult:
    """Replay ``data`` online for each policy, cold and warm; see the module docstring.

    Args:
        data: The routing table.
        seed: The replay order's seed.
        alpha: UCB's exploration weight.
        warm_start: The share of rows learned offline first.
        cost_weight: ``p`` in the reward regret is counted in.
        budget: Hold this mean USD per query online (None: a fixed ``p``).
        embedder: What embeds the prompts (None: ``table_embedder()``).
        progress: Show progress bars.
        latency_weight: ``l`` in the reward.
        drift: Each router's drift detector (``Router``'s ``drift``; None: off).
    """
    if not 0.0 <= warm_start < 1.0:
        raise ValueError(f"warm_start must be in [0, 1), got {warm_start}")
    table = load_routing_table(data)
    if latency_weight and table.latency is None:
        raise ValueError(
            f"{table.name} has no latency columns ('<model>|latency'): a latency weight needs them"
        )
    embeddings = with_prompt_length(  # the routers read the prompt's length, as a text router does
        embed_table(table, embedder or table_embedder(), progress=progress), table.prompts
    )
    order = np.random.default_rng(seed).permutation(len(table))
    E, Q, C = embeddings[order], table.quality[order], table.cost[order]
    L = None if table.latency is None else table.latency[order]
    models = list(table.models)
    scale = float(C.mean(axis=0).max())
    latency_scale = None if L is None else (float(L.mean(axis=0).max()) or 1.0)
    n_warm = int(round(warm_start * len(order)))

    reference = hindsight_reward(
        models, E, Q, C, scale=scale, cost_weight=cost_weight, seed=seed,
        latency=L, latency_weight=latency_weight, latency_scale=latency_scale,
    )  # fmt: skip

    result = SimulationResult(
        table.name, len(E) - n_warm, cost_weight, warm_start, latency_weight=latency_weight
    )
    starts = [("cold", 0)] + ([("warm", n_warm)] if n_warm > 0 else [])
    jobs = [
        (name, policy, start, skip)
        for name, policy in _policies(alpha).items()
        for start, skip in starts
    ]
    n_live = len(E) - n_warm
    bar = Bar("simulating", total=len(jobs) * n_live, unit="query", enabled=progress)
    for name, policy, start, skip in jobs:
        bar.describe(f"simulating {name} ({start})")
        router = Router(
            models,
            embedder=None,
            prompt_length=True,
            policy=policy,
            cost_weight=cost_weight,
            cost_scale=scale,
            seed=seed,
            latency_weight=latency_weight,
            latency_scale=latency_scale,
            drift=copy.deepcopy(drift),  # each router watches its own models
        )
        if skip:  # as a user fits it: tuned from 300 rows, below that kept and grown from
            router.fit(
                E[:n_warm], Q[:n_warm], C[:n_warm], seed=seed,
                latency=None if L is None else L[:n_warm],
            )  # fmt: skip
        # every run is scored on the same queries: those after the warm-start rows
        live = slice(n_warm, None)
        lat = None if L is None else L[live]
        q, c, regret, _, got = _replay(
            router, E[live], Q[live], C[live], reference[live], lat, bar=bar
        )
        result.runs.append(Run(f"{name} ({start})", q, c, regret, latency=got))
    bar.close()

    if budget is not None:
        result.budget = _budget_run(
            result, models, E, Q, C, n_warm, scale, budget, alpha, seed, progress
        )
    return result


def _budget_run(
    result: SimulationResult,
    models: list[str],
    E: np.ndarray,
    Q: np.ndarray,
    C: np.ndarray,
    n_warm: int,
    scale: float,
    budget: float,
    alpha: float,
    seed: int,
    progress: bool = True,
) -> BudgetReport:
    """UCB holding ``budget`` online, against the offline router with p calibrated to it.

    Its bar counts the replayed queries: the budget's run, then the bisection's (about 14).
    """
    live = slice(n_warm, None)
    bar = Bar("holding the budget", total=15 * (len(E) - n_warm), unit="query", enabled=progress)
    offline = Router(
        models, embedder=None, prompt_length=True, cost_scale=scale, policy=LinUCB(alpha=0.0)
    ).fit(E, Q, C, tune=False)
    predicted = offline.predict(E[live], widths=False)
    calibration = calibrate_cost_weight(
        predicted.quality, predicted.cost / scale, Q[live], C[live], budget
    )
    router = Router(
        models,
        embedder=None,
        prompt_length=True,
        policy=LinUCB(alpha=alpha),
        cost_weight=0.0,
        cost_scale=scale,
        seed=seed,
        budget=Budget(usd_per_query=budget),
    )
    if n_warm:
        router.fit(E[:n_warm], Q[:n_warm], C[:n_warm], tune=False)
    zero = np.zeros(len(Q[live]))
    q, c, _, weights, _ = _replay(router, E[live], Q[live], C[live], zero, bar=bar)
    bar.describe("finding the hindsight p")
    result.runs.append(Run(f"UCB holding ${budget:.6g}/query", q, c, np.zeros_like(q), weights))

    # The same online learner with a fixed p, calibrated in hindsight (bisection over replays)
    # so that it spends the budget: what dual ascent should match without knowing p upfront.
    def fixed(p: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        router = Router(
            models,
            embedder=None,
            prompt_length=True,
            policy=LinUCB(alpha=alpha),
            cost_weight=p,
            cost_scale=scale,
            seed=seed,
        )
        if n_warm:
            router.fit(E[:n_warm], Q[:n_warm], C[:n_warm], tune=False)
        fq, fc, _, fw, _ = _replay(router, E[live], Q[live], C[live], zero, bar=bar)
        return fq, fc, fw

    low, high = 0.0, max(1.0, 4 * calibration.cost_weight)
    while fixed(high)[1].mean() > budget and high < 1e4:
        high *= 4
    best = fixed(high)
    for _ in range(12):
        middle = (low + high) / 2
        attempt = fixed(middle)
        if attempt[1].mean() > budget:
            low = middle
        else:
            high, best = middle, attempt
    bar.close()
    fq, fc, fw = best
    result.runs.append(Run(f"UCB at hindsight p={high:.3g}", fq, fc, np.zeros_like(fq), fw))
    return BudgetReport(
        target=budget,
        mean_cost=float(c.mean()),
        cost_error=float(c.mean() / budget - 1.0),
        quality=float(q.mean()),
        final_p=float(weights[-1]),
        hindsight_p=high,
        fixed_p_quality=float(fq.mean()),
        fixed_p_cost=float(fc.mean()),
        offline_p=calibration.cost_weight,
        offline_router_quality=calibration.quality,
    )
