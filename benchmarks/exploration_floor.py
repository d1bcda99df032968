"""``python -m benchmarks.exploration_floor``: what the default's 3% exploration floor costs.

The default router keeps ``LinUCB(explore=0.03)`` so its log supports off-policy evaluation.
This replays a routing table online (the same replay as ``metallm simulate``: p = 0.1, cold
start, each order seeded) with plain UCB and with the floor, on the same orders, and prints
each one's regret against the full-information reference, mean quality and mean cost, per
order and the spread over orders.
"""

from __future__ import annotations

import argparse

import numpy as np

from metallm.evaluation._bench import embed_table, table_embedder
from metallm.evaluation._datasets import load_routing_table
from metallm.evaluation._simulate import _replay
from metallm.learning import LinUCB, with_prompt_length
from metallm.serving._router import Router


def main(argv: list[str] | None = None) -> int:
    """Replay each order with both settings; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--orders", type=int, default=3)
    parser.add_argument("--cost-weight", type=float, default=0.1)
    parser.add_argument("--floors", default="0,0.01,0.03", help="explore shares to compare")
    args = parser.parse_args(argv)
    SETTINGS = {  # noqa: N806
        f"UCB, explore {f:g}" + (" (default)" if f == 0.03 else ""): f
        for f in (float(v) for v in args.floors.split(","))
    }
    table = load_routing_table(args.data)
    vectors = with_prompt_length(embed_table(table, table_embedder()), table.prompts)
    models, p = list(table.models), args.cost_weight
    scale = float(table.cost.mean(axis=0).max())
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in SETTINGS}
    for order in range(args.orders):
        rows = np.random.default_rng(order).permutation(len(table))
        E, Q, C = vectors[rows], table.quality[rows], table.cost[rows]
        reference = Router(models, embedder=None, prompt_length=True, cost_scale=scale,
                           cost_weight=p, policy=LinUCB(alpha=0.0), seed=order)  # fmt: skip
        reference.fit(E, Q, C, tune=False)
        predicted = reference.predict(E, widths=False)
        best = np.argmax(predicted.quality - p * predicted.cost / scale, axis=1)
        ideal = Q[np.arange(len(E)), best] - p * C[np.arange(len(E)), best] / scale
        for name, explore in SETTINGS.items():
            router = Router(models, embedder=None, prompt_length=True, cost_scale=scale,
                            cost_weight=p, policy=LinUCB(explore=explore), seed=order)  # fmt: skip
            q, c, regret, _, _ = _replay(router, E, Q, C, ideal)
            results[name].append((float(regret[-1]), float(q.mean()), float(c.mean())))
            print(f"order {order}: {name:<26} regret {regret[-1]:8.1f}  quality {q.mean():.4f}"
                  f"  $/query {c.mean():.6f}", flush=True)  # fmt: skip
    print(f"\n{table.name}, {len(table)} queries, p = {p}, {args.orders} orders (mean, min-max):")
    for name, runs in results.items():
        regret, quality, cost = (np.array(v) for v in zip(*runs))
        print(f"  {name:<26} regret {regret.mean():8.1f} ({regret.min():.1f}-{regret.max():.1f})"
              f"  quality {quality.mean():.4f} ({quality.min():.4f}-{quality.max():.4f})"
              f"  $/query {cost.mean():.6f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
