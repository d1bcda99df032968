"""``python -m benchmarks.report_validation``: does ``metallm report`` tell the truth?

On a routing table every model's outcome is known, so what ``metallm report`` estimates is known
too. Each run replays the table in a new order through a **default** router (its 3% exploration
floor, a SQLite store, as a deployment logs) with two shadows, a router trained offline on other
rows ("trained") and one that nearly always picks the cheapest model ("thrifty"), then reads
the store with `savings_report`. Over the runs it counts:

* how often the baseline's 95% intervals (quality, and cost per call) cover the baseline's true
  mean on the replayed queries (the issue asks at least 90%);
* how often an anytime-valid verdict names the wrong side (a shadow or the baseline declared
  "better" when its true reward is below the live router's, or "worse" when above), which the
  confidence sequence bounds by alpha over every look: the verdict is read after every
  ``--look`` decisions, as a team reading the report daily would, and a run counts as an error
  if any look names the wrong side.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metallm.evaluation._bench import embed_table, table_embedder
from metallm.evaluation._datasets import RoutingTable, load_routing_table
from metallm.evaluation._offpolicy import log_from_store
from metallm.evaluation._progress import Bar
from metallm.evaluation._savings import savings_report
from metallm.learning import LinUCB, with_prompt_length
from metallm.serving._router import Router
from metallm.state import SQLiteStore

__all__ = ["RunFigures", "main", "run_once"]


@dataclass(frozen=True)
class RunFigures:
    """One replay: the baseline's truth and intervals, and each verdict against its truth."""

    baseline: str
    true_quality: float
    quality: tuple[float, float, float]
    true_cost: float
    cost: tuple[float, float, float]
    truths: dict[str, float]
    """Per compared policy ("baseline", "shadow <name>"), its true mean reward minus the live
    router's."""
    verdicts: dict[str, list[str]]
    """Per compared policy, the verdict at each look."""

    @property
    def quality_covered(self) -> bool:
        """Whether the baseline quality's interval holds the truth."""
        return self.quality[1] <= self.true_quality <= self.quality[2]

    @property
    def cost_covered(self) -> bool:
        """Whether the baseline cost's interval holds the truth."""
        return self.cost[1] <= self.true_cost <= self.cost[2]

    def wrong(self, name: str) -> bool:
        """Whether any look named the wrong side for ``name``."""
        truth = self.truths[name]
        return any(
            (v == "better" and truth < 0) or (v == "worse" and truth > 0)
            for v in self.verdicts[name]
        )


def run_once(
    table: RoutingTable,
    vectors: np.ndarray,
    seed: int,
    *,
    rows: int | None = None,
    cost_weight: float = 0.1,
    look: int = 500,
    folder: Path,
) -> RunFigures:
    """One replay of ``table`` through a default router logging to SQLite, then the report.

    Args:
        table: The routing table.
        vectors: Its query vectors, with the prompt-length column.
        seed: The order's seed (and the routers').
        rows: Queries replayed (None: all but the trained shadow's 30%).
        cost_weight: ``p``.
        look: Decisions between two readings of the verdicts.
        folder: Where the run's store is written.

    Returns:
        The run's figures.
    """
    order = np.random.default_rng(seed).permutation(len(table))
    n_train = int(0.3 * len(order))
    train, live_rows = order[:n_train], order[n_train:]
    if rows is not None:
        live_rows = live_rows[:rows]
    models = list(table.models)
    scale = float(table.cost.mean(axis=0).max())
    Q, C, E = table.quality[live_rows], table.cost[live_rows], vectors[live_rows]
    common = dict(embedder=None, prompt_length=True, cost_scale=scale, seed=seed)
    trained = Router(models, cost_weight=cost_weight, policy=LinUCB(alpha=0.0), **common)
    trained.fit(vectors[train], table.quality[train], table.cost[train], tune=False)
    thrifty = Router(models, cost_weight=50.0, policy=LinUCB(alpha=0.0), **common)
    store = SQLiteStore(folder / f"run{seed}.sqlite")
    live = Router(models, cost_weight=cost_weight, store=store, sync_interval=None,
                  shadows={"trained": trained, "thrifty": thrifty}, **common)  # fmt: skip
    for i in range(len(E)):
        decision = live.select(E[i])
        j = models.index(decision.arm)
        live.record(decision.id, quality=float(Q[i, j]), cost=float(C[i, j]))
    best = int(np.argmax(table.quality.mean(axis=0)))  # the table's best model, in every order
    baseline = models[best]
    log = log_from_store(store, models)
    reward = Q - cost_weight * C / scale  # every model's true reward on every replayed row
    live_reward = reward[np.arange(len(E)), log.chosen].mean()
    truths = {"baseline": float(reward[:, best].mean() - live_reward)}
    for name, probabilities in log.shadows.items():
        truths[f"shadow {name}"] = float((probabilities * reward).sum(axis=1).mean() - live_reward)
    verdicts: dict[str, list[str]] = {name: [] for name in truths}
    ends = sorted({*range(look, len(E), look), len(E)})
    times = [event.time for _, event in store.events_after(None)]
    report = None
    for end in ends:  # the team reads the report after every `look` decisions
        try:
            report = savings_report(store, baseline=baseline, arms=models, seed=seed,
                                    until=np.nextafter(times[end - 1], np.inf),
                                    cost_weight=cost_weight, bootstrap=100)  # fmt: skip
        except ValueError:  # the baseline not chosen yet: nothing to read at this look
            report = None
            continue
        for name in truths:
            key = f"always {baseline}" if name == "baseline" else name
            verdicts[name].append(report.verdicts[key].verdict)
    store.close()
    if report is None:
        raise ValueError(f"order {seed}: the router never chose {baseline}: replay more rows")
    return RunFigures(
        baseline,
        float(Q[:, best].mean()),
        (report.baseline_quality, report.baseline_quality_low, report.baseline_quality_high),
        float(C[:, best].mean()),
        (report.baseline_cost_per_call, report.baseline_cost_low, report.baseline_cost_high),
        truths,
        verdicts,
    )


def summarise(runs: list[RunFigures], alpha: float = 0.05) -> str:
    """Coverage of the baseline's intervals and the verdicts' error rates over the runs."""
    n = len(runs)
    lines = [
        f"{n} runs: the baseline's 95% quality interval covered its truth in "
        f"{sum(r.quality_covered for r in runs)}/{n} ({np.mean([r.quality_covered for r in runs]):.0%}), "
        f"its cost interval in {sum(r.cost_covered for r in runs)}/{n} "
        f"({np.mean([r.cost_covered for r in runs]):.0%})",
        f"verdicts, read at every look, {1 - alpha:.0%} anytime-valid:",
    ]
    for name in runs[0].truths:
        truths = np.array([r.truths[name] for r in runs])
        final = [r.verdicts[name][-1] for r in runs]
        wrong = sum(r.wrong(name) for r in runs)
        lines.append(
            f"  {name:<24} true gain {truths.mean():+.4f} (range {truths.min():+.4f} to "
            f"{truths.max():+.4f}); final verdicts: {final.count('better')} better, "
            f"{final.count('worse')} worse, {final.count('not yet')} not yet; "
            f"wrong side at any look in {wrong}/{n}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Replay, report and count; print the summary."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", required=True, help="a routing table")
    parser.add_argument("--runs", type=int, default=20, help="replay orders (default 20)")
    parser.add_argument("--rows", type=int, default=None, help="queries per run (default: 70%)")
    parser.add_argument("--look", type=int, default=500, help="decisions between two readings")
    parser.add_argument("--cost-weight", type=float, default=0.1)
    args = parser.parse_args(argv)
    table = load_routing_table(args.data)
    vectors = with_prompt_length(embed_table(table, table_embedder()), table.prompts)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        bar = Bar("replays", total=args.runs, unit="run")
        for seed in range(args.runs):
            runs.append(run_once(table, vectors, seed, rows=args.rows, look=args.look,
                                 cost_weight=args.cost_weight, folder=Path(folder)))  # fmt: skip
            r = runs[-1]
            print(f"order {seed}: {r.baseline} quality {r.true_quality:.4f} in "
                  f"[{r.quality[1]:.4f}, {r.quality[2]:.4f}] (est. {r.quality[0]:.4f}); "
                  f"$/call {r.true_cost:.3g} in [{r.cost[1]:.3g}, {r.cost[2]:.3g}]; "
                  + ", ".join(f"{n} {r.truths[n]:+.3f}: {r.verdicts[n][-1]}" for n in r.truths),
                  flush=True)  # fmt: skip
            bar.update(1)
        bar.close()
    print(f"python -m benchmarks.report_validation: {table.name}, default router, "
          f"p = {args.cost_weight}, look every {args.look} decisions")  # fmt: skip
    print(summarise(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
