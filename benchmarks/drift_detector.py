r"""What the default drift detector buys on a snapshot change, and what it costs when nothing changes.

Two measurements, each with the detector (``Router``'s default ``DriftDetector()``) and without
it (``drift=None``), on the same replay orders:

- **Nothing changes**: `metallm simulate`'s replay (every policy, cold and a 5% warm start),
  the cumulative regret against the full-information router; the detector's price is its false
  alarms.
- **A snapshot change**: `benchmarks.scenarios`' ``drift:MODEL=OTHER@0.5`` (from the middle of
  the replay on, MODEL's answers are graded as OTHER's were); the queries until the library's
  default router switched away from MODEL, and the regret.

Run it (about five minutes on two busy cores, embeddings cached):

    .venv/bin/python -m benchmarks.drift_detector --seeds 0,1,2 --json docs/img/drift_detector.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.scenarios import run_drift
from metallm.evaluation._reports import render_table
from metallm.evaluation._simulate import run_simulation

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SWITCHES = (
    "overruling:gpt-3.5-turbo=gptj_6B",
    "multitask9:llama-3.1-8b-instruct=llama3-chatqa-1.5-8b",
)
"""``table:MODEL=OTHER``: the model that changes on each shared table, and whose column it takes."""
VARIANTS: tuple[tuple[str, str | None], ...] = (("detector", "default"), ("none", None))


def stationary(table: str, seeds: list[int]) -> dict[str, dict[str, list[float]]]:
    """Per policy run: final regret per seed, with and without the detector."""
    out: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        for variant, drift in VARIANTS:
            result = run_simulation(DATA / f"{table}.csv", seed=seed, drift=drift, progress=False)
            for run in result.runs:
                out.setdefault(run.label, {}).setdefault(variant, []).append(float(run.regret[-1]))
    return out


def snapshot_change(switch: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Per seed: the default router's share before, queries to switch and regret, both ways."""
    table, _, change = switch.partition(":")
    model, _, other = change.partition("=")
    rows = []
    for seed in seeds:
        result = run_drift(
            DATA / f"{table}.csv", model, 0.5, discounts=(), seed=seed, switch_to=other,
            progress=False,
        )  # fmt: skip
        with_it, without = result.runs[0], result.runs[1]
        rows.append(
            {
                "table": table,
                "seed": seed,
                "share_before": [with_it.share_before, without.share_before],
                "queries_to_switch": [with_it.queries_to_switch, without.queries_to_switch],
                "regret": [with_it.regret, without.regret],
                "regret_without_change": [with_it.stationary_regret, without.stationary_regret],
            }
        )
    return rows


def _switch(value: int | None, share: float) -> str:
    if share < 0.05:
        return f"n/a ({share:.0%} before)"
    return "never" if value is None else str(value)


def main() -> None:
    """Run it (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--switches", default=",".join(SWITCHES))
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    switches = [s for s in args.switches.split(",") if s]
    figures: dict[str, Any] = {"seeds": seeds, "stationary": {}, "snapshot_change": []}
    for switch in switches:
        table = switch.partition(":")[0]
        runs = stationary(table, seeds)
        figures["stationary"][table] = runs
        rows = []
        for label, by in runs.items():
            a, b = np.array(by["detector"]), np.array(by["none"])
            rows.append(
                [
                    label,
                    f"{a.mean():.1f}",
                    f"{b.mean():.1f}",
                    f"{(a - b).mean():+.1f}",
                    f"{(a - b).min():+.1f} / {(a - b).max():+.1f}",
                ]  # fmt: skip
            )
        print(f"\nnothing changes: {table}, regret after the replay, mean over orders {seeds}")
        print(render_table([["run", "detector", "none", "difference", "min / max"], *rows]))
        changes = snapshot_change(switch, seeds)
        figures["snapshot_change"] += changes
        print(f"\na snapshot change: {switch} @0.5, the library's default router")
        print(
            render_table(
                [
                    [
                        "order",
                        "share before",
                        "queries to switch: detector / none",
                        "regret: detector / none",
                        "without the change: detector / none",
                    ]
                ]  # fmt: skip
                + [
                    [
                        str(r["seed"]),
                        f"{r['share_before'][0]:.0%}",
                        f"{_switch(r['queries_to_switch'][0], r['share_before'][0])} / "
                        f"{_switch(r['queries_to_switch'][1], r['share_before'][1])}",
                        f"{r['regret'][0]:.1f} / {r['regret'][1]:.1f}",
                        f"{r['regret_without_change'][0]:.1f} / {r['regret_without_change'][1]:.1f}",
                    ]
                    for r in changes
                ],
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
