"""``metallm bench``: how much routing saves on a routing table, at what quality.

On a seeded train/test split: every single model, the oracle, the zero router (random
mixtures of two models), the default learner's frontier over ``p`` and the plain paper
method's (ridge on the embedding), and the paper's budget protocol (calibrate ``p`` on
out-of-fold predictions of the training rows so the cost stays within each single model's
cost, then report test quality and cost). Test rows are never used to choose anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metallm.datasets import RoutingTable, load_routing_table
from metallm.embedders import Embedder, SentenceTransformerEmbedder
from metallm.evaluation import aiq, frontier, oracle, savings_at_best, zero_router_aiq
from metallm.exceptions import InfeasibleBudgetError
from metallm.features import EmbeddingFeatures, FeatureMap, ProjectedFeatures
from metallm.reward import calibrate_cost_weight
from metallm.router import Router

__all__ = ["BENCH_COST_WEIGHTS", "BenchResult", "embed_table", "run_bench", "split_rows"]

# The frontier's p values: 0, then log-spaced. Enough points for a smooth hull.
BENCH_COST_WEIGHTS = np.concatenate([[0.0], np.logspace(-3, 2, 50)])
PLAIN_PAPER_FEATURES = EmbeddingFeatures(l2=1.0)
FEATURE_CHOICES: dict[str, tuple[FeatureMap, ...] | None] = {
    "cv": None,  # the library's default candidates, chosen by cross-validation
    "projected64": (ProjectedFeatures(64),),  # PCA to 64 dimensions: the fast routing configuration
    "projected128": (ProjectedFeatures(128),),
    "embedding": (PLAIN_PAPER_FEATURES,),
}
"""``metallm bench --features``: which feature maps the router is fitted with."""


@dataclass
class BenchResult:
    report: dict[str, Any]
    table: RoutingTable

    def to_json(self) -> str:
        return json.dumps(self.report, indent=2)


def split_rows(n: int, *, seed: int, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) row indices."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_size * n))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def default_embedder(model: str | None = None, *, static_model: str | None = None) -> Embedder:
    """Sentence-BERT behind the on-disk cache, so a second run does not re-embed; or, given
    ``static_model`` (a folder made by ``metallm distill``), that static embedder (fast enough uncached)."""
    if static_model is not None:
        from metallm.embedders import StaticEmbedder

        return StaticEmbedder(static_model)
    from metallm.embedding_cache import DiskCachedEmbedder

    return DiskCachedEmbedder(SentenceTransformerEmbedder(model, progress_bar_from=1 << 30))


def embed_table(table: RoutingTable, embedder: Embedder, *, progress: bool = True, batch: int = 128) -> np.ndarray:
    """Embeddings of every prompt, with a progress bar over batches."""
    chunks = range(0, len(table.prompts), batch)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"embedding {table.name}", unit="batch", total=len(chunks))
    return np.vstack([embedder.embed(table.prompts[i : i + batch]) for i in chunks])


def _points(router: Router, embeddings: np.ndarray, quality: np.ndarray, cost: np.ndarray) -> list[tuple[float, float]]:
    prediction = router.predict(embeddings)
    return frontier(prediction.quality, prediction.cost / router.cost_scale, quality, cost, BENCH_COST_WEIGHTS)


def run_bench(
    data: str | Path,
    *,
    seed: int = 0,
    test_size: float = 0.3,
    embedder: Embedder | None = None,
    progress: bool = True,
    candidates: Sequence[FeatureMap] | None = None,
) -> BenchResult:
    """Run the whole benchmark on one routing table; see the module docstring.

    ``candidates``: the feature maps the router chooses among by cross-validation on the
    training rows (default :data:`metallm.tuning.DEFAULT_CANDIDATES`); one map measures it alone.
    """
    table = load_routing_table(data)
    embeddings = embed_table(table, embedder or default_embedder(), progress=progress)
    train, test = split_rows(len(table), seed=seed, test_size=test_size)
    Q, C = table.quality, table.cost
    Qt, Ct = Q[test], C[test]
    models = list(table.models)

    default = Router(models, embedder=None, seed=seed).fit(embeddings[train], Q[train], C[train],
                                                         tune=list(candidates) if candidates else True, seed=seed)
    plain = Router(models, embedder=None, features=PLAIN_PAPER_FEATURES, seed=seed).fit(
        embeddings[train], Q[train], C[train], tune=False
    )
    router_points = _points(default, embeddings[test], Qt, Ct)
    plain_points = _points(plain, embeddings[test], Qt, Ct)

    single = {m: (float(Ct[:, j].mean()), float(Qt[:, j].mean())) for j, m in enumerate(models)}
    cost_range = (min(c for c, _ in single.values()), max(c for c, _ in single.values()))
    oracle_cost, oracle_quality = oracle(Qt, Ct)

    assert default.tuning_ is not None
    budgets = _budget_protocol(default, embeddings, train, test, Q, C, models)

    report: dict[str, Any] = {
        "dataset": table.name,
        "n_test": int(len(test)),
        "models": models,
        "single": {m: {"quality": q, "cost": c} for m, (c, q) in single.items()},
        "oracle": {"quality": oracle_quality, "cost": oracle_cost},
        "router": [{"p": float(p), "quality": q, "cost": c} for p, (c, q) in zip(BENCH_COST_WEIGHTS, router_points)],
        "baseline_linear": [
            {"p": float(p), "quality": q, "cost": c} for p, (c, q) in zip(BENCH_COST_WEIGHTS, plain_points)
        ],
        "budgets": budgets,
        "summary": {
            "aiq": aiq(router_points, cost_range),
            "aiq_zero": zero_router_aiq(list(single.values())),
            "max_quality": max(q for _, q in router_points),
            "savings_at_best": savings_at_best(router_points, single),
        },
    }
    # Beside the exact report: the baseline's own summary and what the tuning chose.
    extras = {
        "baseline_summary": {
            "aiq": aiq(plain_points, cost_range),
            "max_quality": max(q for _, q in plain_points),
            "savings_at_best": savings_at_best(plain_points, single),
        },
        "chosen_features": repr(default.features).split(", centroids")[0],
    }
    return BenchResult({**report, "_extras": extras}, table)


def _budget_protocol(
    router: Router,
    embeddings: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    Q: np.ndarray,
    C: np.ndarray,
    models: Sequence[str],
) -> list[dict[str, Any]]:
    """The paper's Table 3: each single model's training cost as a budget for ``p``."""
    assert router.tuning_ is not None
    oof_quality, oof_cost = router.tuning_.predicted_quality, router.tuning_.predicted_cost
    prediction = router.predict(embeddings[test])
    rows = np.arange(len(test))
    out: list[dict[str, Any]] = []
    for j, model in enumerate(models):
        budget = float(C[train, j].mean())
        try:
            calibration = calibrate_cost_weight(
                oof_quality, oof_cost / router.cost_scale, Q[train], C[train], budget
            )
        except InfeasibleBudgetError:
            out.append({"budget_model": model, "p": None, "quality": None, "cost": None})
            continue
        p = calibration.cost_weight
        chosen = np.argmax(prediction.quality - p * prediction.cost / router.cost_scale, axis=1)
        out.append({
            "budget_model": model,
            "p": p,
            "quality": float(Q[test][rows, chosen].mean()),
            "cost": float(C[test][rows, chosen].mean()),
        })
    return out


def public_report(result: BenchResult) -> dict[str, Any]:
    """The report with exactly the documented keys."""
    return {k: v for k, v in result.report.items() if not k.startswith("_")}


def format_report(result: BenchResult) -> str:
    """A readable table of the report."""
    r = result.report
    s, extras = r["summary"], r["_extras"]
    lines = [f"metallm bench: {r['dataset']} ({r['n_test']} test prompts, {len(r['models'])} models)", ""]
    width = max(len(m) for m in r["models"]) + 2
    lines.append(f"{'model':<{width}} {'quality':>8} {'$/query':>11}")
    for m, v in sorted(r["single"].items(), key=lambda kv: kv[1]["cost"]):
        lines.append(f"{m:<{width}} {v['quality']:>8.4f} {v['cost']:>11.6f}")
    lines.append(f"{'oracle':<{width}} {r['oracle']['quality']:>8.4f} {r['oracle']['cost']:>11.6f}")
    lines += ["", f"{'':<22}{'default':>10}{'plain paper':>13}"]
    b = extras["baseline_summary"]

    def fmt(x: float | None) -> str:
        return "never" if x is None else f"{x:.4f}"

    lines.append(f"{'aiq':<22}{s['aiq']:>10.4f}{b['aiq']:>13.4f}   (zero router {s['aiq_zero']:.4f})")
    lines.append(f"{'max quality':<22}{s['max_quality']:>10.4f}{b['max_quality']:>13.4f}")
    lines.append(f"{'savings at best':<22}{fmt(s['savings_at_best']):>10}{fmt(b['savings_at_best']):>13}")
    lines.append(f"{'quality at p=0':<22}{r['router'][0]['quality']:>10.4f}{r['baseline_linear'][0]['quality']:>13.4f}")
    lines += ["", f"router features (chosen by 5-fold CV on the training rows): {extras['chosen_features']}", ""]
    lines.append("budgets (p calibrated on out-of-fold predictions of the training rows):")
    lines.append(f"{'budget = cost of':<{width}} {'p':>9} {'quality':>8} {'$/query':>11} {'vs model quality':>17}")
    for row in r["budgets"]:
        if row["p"] is None:
            lines.append(f"{row['budget_model']:<{width}} {'infeasible':>9}")
            continue
        ref = r["single"][row["budget_model"]]["quality"]
        lines.append(f"{row['budget_model']:<{width}} {row['p']:>9.4g} {row['quality']:>8.4f} {row['cost']:>11.6f} {row['quality'] - ref:>+17.4f}")
    return "\n".join(lines)


def plot_report(result: BenchResult, path: str | Path) -> Path:
    """Single models (labelled), the zero router's hull, the router curves and the oracle."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    from metallm.evaluation import quality_hull

    r = result.report
    fig, ax = plt.subplots(figsize=(8, 5.5))
    singles = list(r["single"].items())
    hull = quality_hull([(v["cost"], v["quality"]) for _, v in singles])
    ax.plot(hull[:, 0], hull[:, 1], "--", color="grey", label="zero router (mixtures of two models)")
    for name, v in singles:
        ax.scatter(v["cost"], v["quality"], color="black", s=18, zorder=3)
        ax.annotate(name, (v["cost"], v["quality"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for key, label, color in (("router", "metallm default", "tab:blue"), ("baseline_linear", "plain paper (linear)", "tab:orange")):
        pts = sorted((p["cost"], p["quality"]) for p in r[key])
        ax.plot([c for c, _ in pts], [q for _, q in pts], "-o", ms=2.5, color=color, label=label)
    ax.scatter(r["oracle"]["cost"], r["oracle"]["quality"], marker="*", s=120, color="tab:green", label="oracle", zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per query (USD, log scale)")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{r['dataset']}: {r['n_test']} test prompts")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target
