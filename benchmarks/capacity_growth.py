r"""A cold router growing its capacity online, beside the same router whose map stays.

The replay of `metallm simulate` (the same table, seeded order and full-information reference;
p = 0.1), cold: the library's default router (which grows: `metallm.learning.CapacityGrowth`)
and the same router with ``growth=None``. Reported per order: the regret of each, the checks
(outcomes kept, each map's cross-validated error, the switch), and, around each switch, the
mean reward of the 250 queries before and after it in both runs: "no jump" means the growing
router's reward after the switch does not fall against the fixed router's over the same queries
(the difference of the two differences, with its standard error).

Run it (a minute per table and order):

    .venv/bin/python -m benchmarks.capacity_growth --data ../shared/data/multitask9.csv --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.vw_squarecb import COST_WEIGHT, _ordered
from metallm.evaluation._reports import render_table
from metallm.evaluation._simulate import hindsight_reward
from metallm.learning import CapacityGrowth
from metallm.serving import Router

__all__ = ["WINDOW", "main", "replay"]

WINDOW = 250
"""Queries before and after a switch whose mean reward is compared."""


def replay(models: list[str], E: np.ndarray, Q: np.ndarray, C: np.ndarray, scale: float,
           seed: int, growth: CapacityGrowth | None) -> tuple[np.ndarray, Router]:  # fmt: skip
    """The cold default router (``growth`` as given) over the rows; the reward per query."""
    router = Router(models, embedder=None, prompt_length=True, cost_weight=COST_WEIGHT,
                    cost_scale=scale, seed=seed, growth=growth)  # fmt: skip
    index = {m: j for j, m in enumerate(router.arms)}
    reward = np.empty(len(E))
    for t in range(len(E)):
        decision = router.select(E[t])
        j = index[decision.arm]
        router.record(decision.id, quality=Q[t, j], cost=C[t, j])
        reward[t] = Q[t, j] - COST_WEIGHT * C[t, j] / scale
    return reward, router


def measure(data: str | Path, seed: int) -> dict[str, Any]:
    """Both routers on one order: regrets, checks and the rewards around each switch."""
    models, E, Q, C = _ordered(data, seed)
    scale = float(C.mean(axis=0).max())
    ref = hindsight_reward(models, E, Q, C, scale=scale, cost_weight=COST_WEIGHT, seed=seed)
    grown, router = replay(models, E, Q, C, scale, seed, CapacityGrowth())
    fixed, _ = replay(models, E, Q, C, scale, seed, None)
    growth = router.bandit.growth
    assert growth is not None
    switches = []
    for check in growth.checks:
        if check.chosen is None or check.at + WINDOW > len(E) or check.at < WINDOW:
            continue
        at = check.at
        change = (grown[at : at + WINDOW] - fixed[at : at + WINDOW]) - (
            grown[at - WINDOW : at] - fixed[at - WINDOW : at]
        )
        switches.append({
            "at": at, "to": check.chosen,
            "before": [float(grown[at - WINDOW : at].mean()), float(fixed[at - WINDOW : at].mean())],
            "after": [float(grown[at : at + WINDOW].mean()), float(fixed[at : at + WINDOW].mean())],
            "jump": float(change.mean()), "jump_se": float(change.std(ddof=1) / math.sqrt(WINDOW)),
        })  # fmt: skip
    return {
        "table": Path(data).stem,
        "seed": seed,
        "regret": [float((ref - grown).sum()), float((ref - fixed).sum())],
        "checks": [{"at": c.at, "errors": c.errors, "chosen": c.chosen} for c in growth.checks],
        "switches": switches,
    }


def main(argv: list[str] | None = None) -> int:
    """Run it (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, action="append", help="a routing table (repeat)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    results = [measure(d, int(s)) for d in args.data for s in args.seeds.split(",")]
    rows = [["table", "order", "regret: growing / fixed", "switches (outcomes: map)",
             "reward change at each switch, growing - fixed (se)"]]  # fmt: skip
    for r in results:
        rows.append([
            r["table"], str(r["seed"]), f"{r['regret'][0]:.1f} / {r['regret'][1]:.1f}",
            ", ".join(f"{c['at']}: {c['chosen'].split('(')[0]}" for c in r["checks"] if c["chosen"])
            or "none",
            ", ".join(f"{s['jump']:+.3f} ({s['jump_se']:.3f})" for s in r["switches"]) or "-",
        ])  # fmt: skip
    print(render_table(rows))
    jumps = [s["jump"] for r in results for s in r["switches"]]
    if jumps:
        print(f"mean change at a switch: {np.mean(jumps):+.4f} over {len(jumps)} switches")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
