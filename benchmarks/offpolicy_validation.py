"""``python -m benchmarks.offpolicy_validation``: do the off-policy estimators recover the truth?

On a routing table every policy's true value is known. This replays the table with an
exploring logging policy, estimates candidate policies from that log alone (IPS, SNIPS,
doubly robust, DRos, each with a bootstrap interval) and compares each estimate with the
candidate's true value on the same rows: the coverage of the 95% intervals and the mean
absolute error, over several replay orders. ``metallm evaluate --log`` uses the same
estimators on a live store's log.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from metallm.evaluation._offpolicy import (
    ESTIMATORS,
    PRIMARY,
    DecisionLog,
    cross_fitted,
    estimate,
    fixed_candidates,
    router_candidates,
)
from metallm.serving._router import Router

__all__ = [
    "ValidationResult",
    "logged_replay",
    "main",
    "render_validation",
    "validate",
]


def logged_replay(
    arms: Sequence[str],
    vectors: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    *,
    epsilon: float = 0.1,
    cost_weight: float = 0.1,
    scale: float = 1.0,
    seed: int = 0,
) -> DecisionLog:
    """A decision log made online by UCB mixed with uniform exploration.

    Each query goes to UCB's choice, or with probability ``epsilon`` to a uniformly random
    model, and the router learns from each outcome; every model keeps a propensity of at
    least ``epsilon / k``, so every candidate can be evaluated.
    """
    if not 0.0 < epsilon <= 1.0:
        raise ValueError(
            f"epsilon must be in (0, 1] for exact, positive propensities, got {epsilon}"
        )
    k = len(arms)
    rng = np.random.default_rng(seed)
    router = Router(list(arms), embedder=None, cost_weight=cost_weight, cost_scale=scale, seed=seed)
    bandit = router.bandit
    chosen, propensity = np.empty(len(vectors), dtype=int), np.empty(len(vectors))
    for t, x in enumerate(vectors):
        best = bandit.score_one(x, cost_weight=cost_weight, scale=scale)[0]
        arm = int(rng.integers(k)) if rng.random() < epsilon else best
        chosen[t] = arm
        propensity[t] = (1 - epsilon) * (arm == best) + epsilon / k
        bandit.learn(arm, x, quality=float(quality[t, arm]), cost=float(cost[t, arm]))
    rows = np.arange(len(vectors))
    return DecisionLog(
        list(arms), vectors, chosen, propensity, quality[rows, chosen], cost[rows, chosen]
    )


@dataclass
class ValidationResult:
    """How well each estimator recovered candidates' true values on a routing table."""

    dataset: str
    seeds: int
    epsilon: float
    cost_weight: float
    n_logged: int
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per estimator: ``coverage`` (share of (candidate, seed) pairs whose 95% interval holds the
    true mean reward), ``mean_abs_error`` of the mean reward, ``pairs``."""
    first_seed: list[dict[str, Any]] = field(default_factory=list)
    """Seed 0's estimates per candidate and estimator, beside the truth."""

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON data."""
        return asdict(self)


def validate(
    name: str,
    vectors: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    arms: Sequence[str],
    *,
    seeds: int = 5,
    epsilon: float = 0.1,
    cost_weight: float = 0.1,
    train_share: float = 0.3,
) -> ValidationResult:
    """Log with exploration on a table's rows, estimate candidates, compare with their truth.

    A share of the rows (``train_share``) fits the candidate routers (full information, at
    p in 0, 0.1, 0.3, 1); the rest, in a seeded order per seed, is replayed by the logging
    policy (`logged_replay`). Candidates: those routers, each single model, and random.
    Their true values on the logged rows are known from the table. The direct method learns
    from the candidates' rows (every outcome known) before the logged ones.
    """
    n, k = quality.shape
    order = np.random.default_rng(1234).permutation(n)
    n_train = int(round(train_share * n))
    train, logged = order[:n_train], order[n_train:]
    scale = float(cost[train].mean(axis=0).max()) or 1.0
    router = Router(list(arms), embedder=None, cost_scale=scale, seed=0)
    router.fit(vectors[train], quality[train], cost[train], tune=False)
    candidates = {
        **router_candidates(router, (0.0, 0.1, 0.3, 1.0), scale),
        **fixed_candidates(arms),
    }

    errors: dict[str, list[float]] = {e: [] for e in ESTIMATORS}
    covered: dict[str, list[bool]] = {e: [] for e in ESTIMATORS}
    result = ValidationResult(name, seeds, epsilon, cost_weight, len(logged))
    reward_table = quality - cost_weight * cost / scale
    for seed in range(seeds):
        rows = np.random.default_rng(seed).permutation(logged)
        log = logged_replay(
            arms,
            vectors[rows],
            quality[rows],
            cost[rows],
            epsilon=epsilon,
            cost_weight=cost_weight,
            scale=scale,
            seed=seed,
        )
        direct = cross_fitted(log, 5, seed, (vectors[train], quality[train], cost[train]))
        for label, policy in candidates.items():
            probabilities = policy(vectors[rows])
            truth = float((probabilities * reward_table[rows]).sum(axis=1).mean())
            estimates = estimate(
                log, probabilities, cost_weight=cost_weight, scale=scale, seed=seed, direct=direct
            )
            for e, found in estimates.items():
                errors[e].append(abs(found.reward - truth))
                covered[e].append(found.reward_low <= truth <= found.reward_high)
            if seed == 0:
                result.first_seed.append(
                    {
                        "candidate": label,
                        "truth": truth,
                        **{e: asdict(found) for e, found in estimates.items()},
                    }
                )
    for e in ESTIMATORS:
        result.validation[e] = {
            "coverage": float(np.mean(covered[e])),
            "mean_abs_error": float(np.mean(errors[e])),
            "pairs": float(len(errors[e])),
        }
    return result


def render_validation(result: ValidationResult) -> str:
    """The validation as text: per estimator coverage and error, then seed 0's estimates."""
    lines = [
        f"python -m benchmarks.offpolicy_validation: {result.dataset}, {result.n_logged} logged queries per "
        f"seed, {result.seeds} seeds, epsilon {result.epsilon:g}, p = {result.cost_weight:g}",
        "",
        f"{'estimator':<10} {'coverage of 95% intervals':>26} {'mean abs error (reward)':>24} {'pairs':>6}",
    ]
    for e, v in result.validation.items():
        lines.append(
            f"{e:<10} {v['coverage']:>26.3f} {v['mean_abs_error']:>24.4f} {int(v['pairs']):>6}"
        )
    lines += ["", f"seed 0 (mean reward; {PRIMARY} with its 95% interval):"]
    for row in result.first_seed:
        head = row[PRIMARY]
        lines.append(
            f"  {row['candidate']:<28} truth {row['truth']:.4f}   IPS {row['IPS']['reward']:.4f}   "
            f"SNIPS {row['SNIPS']['reward']:.4f}   DR {row['DR']['reward']:.4f}   "
            f"{PRIMARY} {head['reward']:.4f} [{head['reward_low']:.4f}, {head['reward_high']:.4f}]"
            f"   ESS {head['effective_sample_size']:.0f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.offpolicy_validation --data TABLE``."""
    from metallm.cli import write_json
    from metallm.evaluation._bench import embed_table, table_embedder
    from metallm.evaluation._datasets import load_routing_table

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.offpolicy_validation",
        description="replay a table with exploration, estimate each candidate policy from that "
        "log (IPS, SNIPS, doubly robust) and compare with its true value on the same rows",
    )
    parser.add_argument("--data", required=True, help="routing table: .csv, .jsonl or .parquet")
    parser.add_argument("--seeds", type=int, default=5, help="replay orders (one log each)")
    parser.add_argument(
        "--epsilon", type=float, default=0.5, help="share of queries routed uniformly at random"
    )
    parser.add_argument("--cost-weight", type=float, default=0.1, help="p in the reward")
    parser.add_argument("--json", dest="json_out", help="write the result as JSON here")
    parser.add_argument(
        "--embedding-model", help="embedding model (default: $METALLM_EMBEDDING_MODEL or MiniLM)"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or not 0.0 < args.epsilon <= 1.0:
        parser.error("--seeds must be at least 1 and --epsilon in (0, 1]")
    table = load_routing_table(args.data)
    vectors = embed_table(table, table_embedder(model=args.embedding_model))
    result = validate(
        table.name,
        vectors,
        table.quality,
        table.cost,
        list(table.models),
        seeds=args.seeds,
        epsilon=args.epsilon,
        cost_weight=args.cost_weight,
    )
    print(render_validation(result))
    write_json(args.json_out, result.to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
