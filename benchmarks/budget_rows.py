"""Are the budget rows of `metallm bench` monotone, over many splits, and why can they dip?

A budget row (the MetaLLM paper's Table 3) spends at most one single model's training cost per
query. `metallm bench` reports three qualities for it: `out of fold` (where `p` was calibrated),
the test quality of that `p`, and `curve` (the best test quality of any `p` within the budget,
read off the test curve like AIQ). This prints, for each split seed, whether each column rises
with the budget; then, on one split, how much the out-of-fold quality of the same routing moves
with nothing but the assignment of training rows to folds, against the test difference it
would have to predict.

Run it: .venv/bin/python -m benchmarks.budget_rows --data ../shared/data/overruling.csv
(`--significance S`: the calibration walk's, as `metallm bench --significance`.)
"""

from __future__ import annotations

import argparse

import numpy as np

from metallm.evaluation._bench import (
    BENCH_COST_WEIGHTS,
    embed_table,
    run_bench,
    split_rows,
    table_embedder,
)
from metallm.evaluation._datasets import load_routing_table
from metallm.learning._features import with_prompt_length
from metallm.learning._reward import SIGNIFICANCE
from metallm.learning._tuning import out_of_fold
from metallm.serving._router import Router

COLUMNS = {"test": "quality", "out of fold": "oof_quality", "curve": "curve_quality"}


def monotone(values: list[float]) -> bool:
    """True when no larger budget gets a lower quality than a smaller one."""
    return all(b >= a - 1e-12 for a, b in zip(values, values[1:]))


def split_table(data: str, seeds: list[int], significance: float) -> None:
    """Per split seed: which columns are monotone in the budget, and the test column's top rows."""
    counts = dict.fromkeys(COLUMNS, 0)
    mean_test = []
    print(f"{'split':>5}  " + "  ".join(f"{c:>11}" for c in COLUMNS) + "  test rows, top 3 budgets")
    for seed in seeds:
        result = run_bench(data, seed=seed, progress=False, significance=significance)
        rows = sorted(result.budgets, key=lambda b: b.budget or 0.0)
        flags = []
        for name, field in COLUMNS.items():
            values = [getattr(r, field) for r in rows if getattr(r, field) is not None]
            ok = monotone(values)
            counts[name] += ok
            flags.append("monotone" if ok else "DIPS")
        test = [r.quality for r in rows if r.quality is not None]
        mean_test.append(float(np.mean(test)))
        top = " ".join(f"{q:.4f}" for q in test[-3:])
        print(f"{seed:>5}  " + "  ".join(f"{f:>11}" for f in flags) + f"  {top}")
    n = len(seeds)
    print("monotone: " + ", ".join(f"{c} {k}/{n}" for c, k in counts.items()))
    print(f"mean test quality over the rows: {np.mean(mean_test):.4f}")


def _choices(
    predicted_quality: np.ndarray, predicted_cost: np.ndarray, weights: np.ndarray
) -> list[np.ndarray]:
    """The model greedy routing picks per row at each weight."""
    return [np.argmax(predicted_quality - p * predicted_cost, axis=1) for p in weights]


def _paired(choices: list[np.ndarray], quality: np.ndarray) -> tuple[float, float, float, float]:
    """Quality of the two routings, their difference and its standard error over the rows."""
    rows = np.arange(quality.shape[0])
    first, second = (quality[rows, chosen] for chosen in choices)
    gain = first - second
    error = float(gain.std(ddof=1) / np.sqrt(len(gain)))
    return float(first.mean()), float(second.mean()), float(gain.mean()), error


def fold_noise(data: str, seed: int, fold_seeds: int, p_high: float) -> None:
    """Out-of-fold quality at p = 0 and at ``p_high`` under other fold assignments, vs the test rows."""
    table = load_routing_table(data)
    vectors = with_prompt_length(
        embed_table(table, table_embedder(), progress=False), table.prompts
    )
    train, test = split_rows(len(table), seed=seed, test_size=0.3)
    Q, C = table.quality, table.cost
    router = Router(list(table.models), embedder=None, prompt_length=True, seed=seed)
    router.fit(vectors[train], Q[train], C[train], tune=True, seed=seed)
    assert router.tuning_ is not None
    weights = np.array([0.0, BENCH_COST_WEIGHTS[np.argmin(abs(BENCH_COST_WEIGHTS - p_high))]])
    print(f"\nsplit {seed}: quality at p = 0 and p = {weights[1]:.3g}, their difference +- its SE")
    scale = router.cost_scale
    gaps = []
    for fold_seed in range(fold_seeds):
        if fold_seed == 0:  # the folds the feature map was chosen on
            pq, pc = router.tuning_.predicted_quality, router.tuning_.predicted_cost
        else:
            chosen = router.tuning_.chosen
            pq, pc = out_of_fold(chosen, vectors[train], Q[train], C[train], seed=1000 + fold_seed)
        q0, q1, gap, error = _paired(_choices(pq, pc / scale, weights), Q[train])
        gaps.append(gap)
        tag = " (the folds the feature map was chosen on)" if fold_seed == 0 else ""
        print(
            f"  out of fold, fold seed {fold_seed}: {q0:.4f} {q1:.4f} {gap:+.4f} +- {error:.4f}{tag}"
        )
    prediction = router.predict(vectors[test], widths=False)
    on_test = _choices(prediction.quality, prediction.cost / scale, weights)
    t0, t1, gap, error = _paired(on_test, Q[test])
    print(
        f"  out of fold over {fold_seeds} fold seeds: difference {min(gaps):+.4f} to {max(gaps):+.4f}"
    )
    print(f"  test rows: {t0:.4f} {t1:.4f} {gap:+.4f} +- {error:.4f}")
    print("  models whose share of the test prompts moves by 5 points or more between the two:")
    shares = [np.bincount(chosen, minlength=Q.shape[1]) / len(test) for chosen in on_test]
    for j, model in enumerate(table.models):
        if abs(shares[0][j] - shares[1][j]) >= 0.05:
            print(
                f"    {model}: {shares[0][j]:.0%} and {shares[1][j]:.0%} of the test prompts;"
                f" quality {Q[train, j].mean():.4f} on the training rows,"
                f" {Q[test, j].mean():.4f} on the test rows"
            )


def main() -> None:
    """Run it (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", default="0-9", help="split seeds: 'A-B' or 'A,B,C'")
    parser.add_argument("--significance", type=float, default=SIGNIFICANCE, help="the walk's")
    parser.add_argument("--fold-seeds", type=int, default=10, help="0 skips the fold part")
    parser.add_argument("--p-high", type=float, default=0.04, help="the dearer-vs-cheaper p pair")
    args = parser.parse_args()
    if "-" in args.seeds:
        first, last = (int(s) for s in args.seeds.split("-"))
        seeds = list(range(first, last + 1))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
    split_table(args.data, seeds, args.significance)
    if args.fold_seeds:
        fold_noise(args.data, seeds[0], args.fold_seeds, args.p_high)


if __name__ == "__main__":
    main()
