"""``metallm simulate``: online replay of a routing table with bandit feedback.

Prompts arrive in a seeded random order; each policy sees only the outcome of the model it
chose. Against the number of queries we track running quality, running cost and the
cumulative regret versus the full-information offline router (ridge fitted on every row
with every model's outcome, the best a learner of this family could do in hindsight).
With a budget, the router holds a target mean $/query online by dual ascent on ``p``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metallm.bench import default_embedder, embed_table
from metallm.datasets import load_routing_table
from metallm.embedders import Embedder
from metallm.policies import EpsilonGreedy, LinUCB, Policy, RandomPolicy
from metallm.reward import calibrate_cost_weight
from metallm.router import Router

__all__ = ["BudgetController", "SimulationResult", "run_simulation"]

DEFAULT_ALPHA = LinUCB().alpha


@dataclass
class BudgetController:
    """Dual ascent on the budget constraint: ``p += step * (cost - budget) / scale``, p >= 0.

    ``p`` grows while the router spends more than the budget and shrinks while it spends
    less, so the running mean cost settles at the budget.
    """

    budget: float
    scale: float
    step: float = 0.05
    cost_weight: float = 0.0

    def update(self, cost: float) -> float:
        self.cost_weight = max(0.0, self.cost_weight + self.step * (cost - self.budget) / self.scale)
        return self.cost_weight


@dataclass
class Run:
    label: str
    quality: np.ndarray
    cost: np.ndarray
    regret: np.ndarray
    cost_weight: np.ndarray | None = None

    def summary(self) -> dict[str, float]:
        n = len(self.quality)
        return {
            "quality": float(self.quality.sum() / n),
            "cost": float(self.cost.sum() / n),
            "regret": float(self.regret[-1]),
        }


@dataclass
class SimulationResult:
    dataset: str
    n_queries: int
    cost_weight: float
    warm_start: float
    runs: list[Run] = field(default_factory=list)
    budget: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "n_queries": self.n_queries,
            "cost_weight": self.cost_weight,
            "warm_start": self.warm_start,
            "runs": {run.label: run.summary() for run in self.runs},
            "budget": self.budget,
        }


def _policies(alpha: float) -> dict[str, Policy]:
    return {
        "UCB": LinUCB(alpha=alpha),
        "greedy": LinUCB(alpha=0.0),
        "epsilon-greedy": EpsilonGreedy(epsilon=0.1),
        "random": RandomPolicy(),
    }


def _replay(
    router: Router,
    embeddings: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    reference_reward: np.ndarray,
    *,
    controller: BudgetController | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(embeddings)
    got_q, got_c, reward, weights = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    index = {arm: j for j, arm in enumerate(router.arms)}
    scale = router.cost_scale
    for t in range(n):
        decision = router.select(embeddings[t])
        j = index[decision.arm]
        q, c = quality[t, j], cost[t, j]
        router.record(decision.id, quality=q, cost=c)
        got_q[t], got_c[t] = q, c
        weights[t] = router.cost_weight
        reward[t] = q - router.cost_weight * c / scale
        if controller is not None:
            router.cost_weight = controller.update(c)
    return got_q, got_c, np.cumsum(reference_reward - reward), weights


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
) -> SimulationResult:
    """Replay ``data`` online for each policy, cold and warm; see the module docstring."""
    if not 0.0 <= warm_start < 1.0:
        raise ValueError(f"warm_start must be in [0, 1), got {warm_start}")
    table = load_routing_table(data)
    embeddings = embed_table(table, embedder or default_embedder(), progress=progress)
    order = np.random.default_rng(seed).permutation(len(table))
    E, Q, C = embeddings[order], table.quality[order], table.cost[order]
    models = list(table.models)
    scale = float(C.mean(axis=0).max())
    n_warm = int(round(warm_start * len(order)))

    # The full-information offline router: every model's outcome on every row.
    offline = Router(models, embedder=None, cost_scale=scale, cost_weight=cost_weight,
                     policy=LinUCB(alpha=0.0), seed=seed).fit(E, Q, C, tune=False)
    predicted = offline.predict(E)
    rows = np.arange(len(E))
    best = np.argmax(predicted.quality - cost_weight * predicted.cost / scale, axis=1)
    reference = Q[rows, best] - cost_weight * C[rows, best] / scale

    result = SimulationResult(table.name, len(E) - n_warm, cost_weight, warm_start)
    starts = [("cold", 0)] + ([("warm", n_warm)] if n_warm > 0 else [])
    jobs = [(name, policy, start, skip) for name, policy in _policies(alpha).items() for start, skip in starts]
    iterator: Any = jobs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(jobs, desc="simulating", unit="run")
    for name, policy, start, skip in iterator:
        router = Router(models, embedder=None, policy=policy, cost_weight=cost_weight, cost_scale=scale, seed=seed)
        if skip:
            router.fit(E[:n_warm], Q[:n_warm], C[:n_warm], tune=False)
        # every run is scored on the same queries: those after the warm-start rows
        live = slice(n_warm, None)
        q, c, regret, _ = _replay(router, E[live], Q[live], C[live], reference[live])
        result.runs.append(Run(f"{name} ({start})", q, c, regret))

    if budget is not None:
        result.budget = _budget_run(result, models, E, Q, C, n_warm, scale, budget, alpha, seed)
    return result


def _budget_run(
    result: SimulationResult, models: list[str], E: np.ndarray, Q: np.ndarray, C: np.ndarray,
    n_warm: int, scale: float, budget: float, alpha: float, seed: int,
) -> dict[str, Any]:
    """UCB holding ``budget`` online, against the offline router with p calibrated to it."""
    live = slice(n_warm, None)
    offline = Router(models, embedder=None, cost_scale=scale, policy=LinUCB(alpha=0.0)).fit(E, Q, C, tune=False)
    predicted = offline.predict(E[live])
    calibration = calibrate_cost_weight(predicted.quality, predicted.cost / scale, Q[live], C[live], budget)
    controller = BudgetController(budget=budget, scale=scale)
    router = Router(models, embedder=None, policy=LinUCB(alpha=alpha), cost_weight=0.0, cost_scale=scale, seed=seed)
    if n_warm:
        router.fit(E[:n_warm], Q[:n_warm], C[:n_warm], tune=False)
    zero = np.zeros(len(Q[live]))
    q, c, _, weights = _replay(router, E[live], Q[live], C[live], zero, controller=controller)
    result.runs.append(Run(f"UCB holding ${budget:.6g}/query", q, c, np.zeros_like(q), weights))
    # The same online learner with a fixed p, calibrated in hindsight (bisection over replays)
    # so that it spends the budget: what dual ascent should match without knowing p upfront.
    def fixed(p: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        router = Router(models, embedder=None, policy=LinUCB(alpha=alpha), cost_weight=p, cost_scale=scale, seed=seed)
        if n_warm:
            router.fit(E[:n_warm], Q[:n_warm], C[:n_warm], tune=False)
        fq, fc, _, fw = _replay(router, E[live], Q[live], C[live], zero)
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
    fq, fc, fw = best
    result.runs.append(Run(f"UCB at hindsight p={high:.3g}", fq, fc, np.zeros_like(fq), fw))
    return {
        "target": budget,
        "mean_cost": float(c.mean()),
        "cost_error": float(c.mean() / budget - 1.0),
        "quality": float(q.mean()),
        "final_p": float(weights[-1]),
        "hindsight_p": high,
        "fixed_p_quality": float(fq.mean()),
        "fixed_p_cost": float(fc.mean()),
        "offline_p": calibration.cost_weight,
        "offline_router_quality": calibration.quality,
    }


def format_simulation(result: SimulationResult) -> str:
    lines = [
        f"metallm simulate: {result.dataset}, {result.n_queries} online queries, p = {result.cost_weight}, "
        f"warm start {result.warm_start:.0%} of the rows (full information)",
        "",
        f"{'policy':<34}{'quality':>9}{'$/query':>12}{'regret':>10}",
    ]
    for run in result.runs:
        if run.cost_weight is not None:
            continue
        s = run.summary()
        lines.append(f"{run.label:<34}{s['quality']:>9.4f}{s['cost']:>12.6f}{s['regret']:>10.1f}")
    if result.budget:
        b = result.budget
        lines += [
            "",
            f"budget ${b['target']:.6g}/query held online by dual ascent on p:",
            f"  dual ascent : mean cost {b['mean_cost']:.6g} ({b['cost_error']:+.1%} of target), quality {b['quality']:.4f}, final p {b['final_p']:.3g}",
            f"  fixed p     : p {b['hindsight_p']:.3g}, found in hindsight so this online learner spends the budget: "
            f"quality {b['fixed_p_quality']:.4f}, mean cost {b['fixed_p_cost']:.6g}",
            f"  (the full-information offline router, p {b['offline_p']:.3g} calibrated to the budget, reaches "
            f"{b['offline_router_quality']:.4f})",
        ]
    return "\n".join(lines)


def plot_simulation(result: SimulationResult, path: str | Path) -> Path:
    """Running quality, running cost and cumulative regret against the number of queries."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for run in result.runs:
        steps = np.arange(1, len(run.quality) + 1)
        style = "-" if "cold" in run.label else ("--" if "warm" in run.label else ":")
        axes[0].plot(steps, np.cumsum(run.quality) / steps, style, label=run.label)
        axes[1].plot(steps, np.cumsum(run.cost) / steps, style, label=run.label)
        if run.cost_weight is None:
            axes[2].plot(steps, run.regret, style, label=run.label)
    if result.budget:
        axes[1].axhline(result.budget["target"], color="black", lw=0.8, label="budget")
    for ax, title in zip(axes, ("running mean quality", "running mean cost ($/query)", "cumulative regret vs offline router")):
        ax.set_title(title)
        ax.set_xlabel("queries")
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{result.dataset}: online replay with bandit feedback")
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
