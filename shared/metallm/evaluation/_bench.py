"""``metallm bench``: how much routing saves on a routing table, at what quality.

On a seeded train/test split: every single model, the oracle, the zero router (random
mixtures of two models), the default learner's frontier over ``p`` and the plain paper
method's (ridge on the embedding), any other routers given (the repository's
``python -m benchmarks.bench`` adds kNN, a cluster router and an MLP built on the same split),
and the paper's budget protocol (calibrate ``p`` on
out-of-fold predictions of the training rows so the cost stays within each single model's
cost, then report test quality and cost). Test rows are never used to choose anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from metallm.embedding import (
    Embedder,
    SentenceTransformerEmbedder,
)
from metallm.evaluation._datasets import RoutingTable, load_routing_table
from metallm.evaluation._progress import stage
from metallm.evaluation._reports import (
    BaselineSummary,
    BenchResult,
    BenchSummary,
    BudgetRow,
    CapacityScore,
    FrontierPoint,
    LatencyRow,
    ModelPoint,
    OtherRouter,
)
from metallm.exceptions import InfeasibleBudgetError
from metallm.learning import (
    SIGNIFICANCE,
    EmbeddingFeatures,
    FeatureMap,
    NeighbourQuality,
    ProjectedFeatures,
    aiq,
    calibrate_cost_weight,
    default_cost_weight_grid,
    frontier,
    oracle,
    savings_at_best,
    with_prompt_length,
    zero_router_aiq,
)
from metallm.serving import Router

__all__ = [
    "BENCH_COST_WEIGHTS",
    "BenchResult",
    "OtherRouterBuilder",
    "embed_table",
    "run_bench",
    "split_rows",
]

BENCH_COST_WEIGHTS = default_cost_weight_grid()
"""The frontier's p values: the one grid that cross-validation and budget calibration use too
(p = 0 and 241 log-spaced values from 1e-4 to 1e4), so the reported curve is the curve they chose on."""
PLAIN_PAPER_FEATURES = EmbeddingFeatures(l2=1.0)
FEATURE_CHOICES: dict[str, tuple[FeatureMap, ...] | None] = {
    "cv": None,  # the library's default candidates, chosen by cross-validation
    "projected64": (ProjectedFeatures(64),),  # PCA to 64 dimensions: the fast routing configuration
    "projected128": (ProjectedFeatures(128),),
    "embedding": (PLAIN_PAPER_FEATURES,),
}
"""``metallm bench --features``: which feature maps the router is fitted with."""


def split_rows(n: int, *, seed: int, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) row indices."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_size * n))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def table_embedder(
    kind: str = "sentence-transformers",
    model: str | None = None,
    *,
    static_model: str | None = None,
) -> Embedder:
    """The embedder bench and simulate use: ``kind`` (see ``EMBEDDER_KINDS``) behind the on-disk cache.

    The cache keys vectors by model and variant, so a second run does not re-embed and two
    embedders never share vectors. Given ``static_model`` (a folder made by ``metallm
    distill``), that static embedder instead (fast enough uncached).

    Args:
        kind: One of ``EMBEDDER_KINDS``.
        model: The model (None: the configured one).
        static_model: A static embedder's folder instead.
    """
    if static_model is not None:
        from metallm.embedding import StaticEmbedder

        return StaticEmbedder(static_model)
    from metallm.embedding import DiskCachedEmbedder, make_embedder

    embedder = make_embedder(kind, model)
    if isinstance(embedder, SentenceTransformerEmbedder):
        embedder.progress_bar_from = 1 << 30  # embed_table shows its own bar
    return DiskCachedEmbedder(embedder)


def embed_table(
    table: RoutingTable, embedder: Embedder, *, progress: bool = True, batch: int = 128
) -> np.ndarray:
    """Embeddings of every prompt, with a progress bar over batches."""
    chunks = range(0, len(table.prompts), batch)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"embedding {table.name}", unit="batch", total=len(chunks))
    return np.vstack([embedder.embed(table.prompts[i : i + batch]) for i in chunks])


def _points(
    router: Router, embeddings: np.ndarray, quality: np.ndarray, cost: np.ndarray
) -> list[tuple[float, float]]:
    prediction = router.predict(embeddings, widths=False)
    return frontier(
        prediction.quality, prediction.cost / router.cost_scale, quality, cost, BENCH_COST_WEIGHTS
    )


class OtherRouterBuilder(Protocol):
    """A router from elsewhere that ``run_bench`` builds on its training rows and measures."""

    name: str
    setting_name: str

    def fitted(
        self,
        train_X: np.ndarray,
        train_Q: np.ndarray,
        train_C: np.ndarray,
        test_X: np.ndarray,
        cost_weights: Sequence[float] | np.ndarray,
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """Its setting chosen on the training rows, and its predicted quality and cost on the test rows."""
        ...


def run_bench(
    data: str | Path,
    *,
    seed: int = 0,
    test_size: float = 0.3,
    embedder: Embedder | None = None,
    progress: bool = True,
    candidates: Sequence[FeatureMap] | None = None,
    baselines: Sequence[OtherRouterBuilder] = (),
    significance: float = SIGNIFICANCE,
) -> BenchResult:
    """Run the whole benchmark on one routing table; see the module docstring.

    ``candidates``: the feature maps the router chooses among by cross-validation on the
    training rows (default `metallm.tuning.DEFAULT_CANDIDATES`); one map measures it alone.
    ``baselines``: other routers to build and measure on the same split (the repository's
    ``benchmarks.baselines.BASELINES``: kNN, a cluster router and an MLP).
    ``significance``: the budget calibration's (see `calibrate_cost_weight`).

    Args:
        data: The routing table.
        seed: The split's and the router's seed.
        test_size: The share of rows held out.
        embedder: What embeds the prompts (None: ``table_embedder()``).
        progress: Show progress bars.
        candidates: The feature maps cross-validation chooses among (None: the defaults).
        baselines: Other routers to measure on the same split.
        significance: The budget calibration's (see ``calibrate_cost_weight``).
    """
    table = load_routing_table(data)
    embeddings = embed_table(table, embedder or table_embedder(), progress=progress)
    train, test = split_rows(len(table), seed=seed, test_size=test_size)
    Q, C = table.quality, table.cost
    Qt, Ct = Q[test], C[test]
    models = list(table.models)

    vectors = with_prompt_length(embeddings, table.prompts)  # what a text router reads
    tune = list(candidates) if candidates else True
    rows = f"{len(train)} training rows"
    with stage(f"fitting the default router (cross-validating its capacity on {rows})", progress):
        default = Router(models, embedder=None, prompt_length=True, seed=seed).fit(
            vectors[train], Q[train], C[train], tune=tune, seed=seed
        )
    plain = Router(models, embedder=None, features=PLAIN_PAPER_FEATURES, seed=seed).fit(
        embeddings[train], Q[train], C[train], tune=False
    )
    with stage(f"fitting the kNN blend (cross-validating k and its weight on {rows})", progress):
        blended_router = Router(
            models, embedder=None, prompt_length=True, seed=seed, neighbours=NeighbourQuality()
        ).fit(vectors[train], Q[train], C[train], tune=tune, seed=seed)
    router_points = _points(default, vectors[test], Qt, Ct)
    blended_points = _points(blended_router, vectors[test], Qt, Ct)
    plain_points = _points(plain, embeddings[test], Qt, Ct)

    single = {m: (float(Ct[:, j].mean()), float(Qt[:, j].mean())) for j, m in enumerate(models)}
    cost_range = (min(c for c, _ in single.values()), max(c for c, _ in single.values()))
    oracle_cost, oracle_quality = oracle(Qt, Ct)

    assert default.tuning_ is not None
    with stage("the paper's budget protocol (a p calibrated per budget)", progress):
        budgets = _budget_protocol(
            default, vectors, train, test, Q, C, models, router_points, significance
        )
    neighbours = blended_router.bandit.neighbours
    assert neighbours is not None

    return BenchResult(
        dataset=table.name,
        n_test=int(len(test)),
        models=models,
        single={m: ModelPoint(quality=q, cost=c) for m, (c, q) in single.items()},
        oracle=ModelPoint(quality=oracle_quality, cost=oracle_cost),
        router=[
            FrontierPoint(float(p), q, c) for p, (c, q) in zip(BENCH_COST_WEIGHTS, router_points)
        ],
        baseline_linear=[
            FrontierPoint(float(p), q, c) for p, (c, q) in zip(BENCH_COST_WEIGHTS, plain_points)
        ],
        budgets=budgets,
        summary=BenchSummary(
            aiq=aiq(router_points, cost_range),
            aiq_zero=zero_router_aiq(list(single.values())),
            max_quality=max(q for _, q in router_points),
            savings_at_best=savings_at_best(router_points, single),
        ),
        baseline_summary=BaselineSummary(
            aiq=aiq(plain_points, cost_range),
            max_quality=max(q for _, q in plain_points),
            savings_at_best=savings_at_best(plain_points, single),
        ),
        chosen_features=_served(default),
        capacity=_capacity(default),
        others=_others(
            baselines,
            embeddings,
            train,
            test,
            Q,
            C,
            single,
            cost_range,
            default.cost_scale,
            progress,
        ),  # fmt: skip
        blended=OtherRouter(
            name="map + kNN blend, always",
            setting=f"k={neighbours.k}, weight={neighbours.weight:g}",
            aiq=aiq(blended_points, cost_range),
            max_quality=max(q for _, q in blended_points),
            savings_at_best=savings_at_best(blended_points, single),
        ),
        latency=[]
        if table.latency is None
        else _latency_rows(default, vectors, train, test, table.latency, Q, C, seed),
    )


def _served(router: Router) -> str:
    """The fitted map's settings, and the kNN blend's where the fit kept one."""
    served = repr(router.features).split(", centroids")[0]
    blend = router.bandit.neighbours
    if blend is not None:
        served += f" + kNN blend (k={blend.k}, weight={blend.weight:g})"
    return served


def _capacity(router: Router) -> list[CapacityScore]:
    """Every candidate a tuned fit weighed, the offered kNN blend among them, best first."""
    tuning, blend = router.tuning_, router.bandit.neighbour_tuning_
    assert tuning is not None
    kept = blend is not None and blend.kept
    rows = [
        CapacityScore(
            c.label, c.aiq, c.quality_at_zero, c.eligible, c.features is tuning.chosen and not kept
        )  # fmt: skip
        for c in tuning.scores
    ]
    if blend is not None:
        label = f"{blend.over} + kNN blend (k={blend.k}, weight={blend.weight:g})"
        rows.append(CapacityScore(label, blend.aiq, blend.quality_at_zero, True, kept))
    return sorted(rows, key=lambda c: -c.cv_aiq)


LATENCY_WEIGHTS = (0.0, 0.1, 0.3, 1.0)
"""The latency weights ``metallm bench`` reports on a table with latency columns."""


def _latency_rows(
    default: Router,
    vectors: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    L: np.ndarray,
    Q: np.ndarray,
    C: np.ndarray,
    seed: int,
) -> list[LatencyRow]:
    """The default router's features, fitted with latency too, at each latency weight (p = 0.1)."""
    router = Router(
        list(default.arms), embedder=None, features=default.features, prompt_length=True, seed=seed
    ).fit(vectors[train], Q[train], C[train], tune=False, latency=L[train])
    prediction = router.predict(vectors[test], widths=False)
    seconds = router.bandit.predict_latency(vectors[test])
    assert seconds is not None
    latency_scale = float(L[train].mean(axis=0).max()) or 1.0
    rows = np.arange(len(test))
    out = []
    for weight in LATENCY_WEIGHTS:
        value = (
            prediction.quality
            - 0.1 * prediction.cost / router.cost_scale
            - weight * seconds / latency_scale
        )
        chosen = np.argmax(value, axis=1)
        out.append(
            LatencyRow(
                weight,
                float(Q[test][rows, chosen].mean()),
                float(C[test][rows, chosen].mean()),
                float(L[test][rows, chosen].mean()),
            )
        )
    return out


def _others(
    baselines: Sequence[OtherRouterBuilder],
    embeddings: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    Q: np.ndarray,
    C: np.ndarray,
    single: dict[str, tuple[float, float]],
    cost_range: tuple[float, float],
    scale: float,
    progress: bool = True,
) -> list[OtherRouter]:
    """Other routers, each set by CV on the training rows, on the same test rows."""
    out = []
    for baseline in baselines:
        with stage(
            f"fitting {baseline.name} (cross-validating its {baseline.setting_name})", progress
        ):
            setting, quality, cost = baseline.fitted(
                embeddings[train], Q[train], C[train], embeddings[test], BENCH_COST_WEIGHTS
            )
        points = frontier(quality, cost / scale, Q[test], C[test], BENCH_COST_WEIGHTS)
        out.append(
            OtherRouter(
                name=baseline.name,
                setting=f"{baseline.setting_name}={setting}",
                aiq=aiq(points, cost_range),
                max_quality=max(q for _, q in points),
                savings_at_best=savings_at_best(points, single),
            )
        )
    return out


def _budget_protocol(
    router: Router,
    embeddings: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    Q: np.ndarray,
    C: np.ndarray,
    models: Sequence[str],
    curve: Sequence[tuple[float, float]],
    significance: float = SIGNIFICANCE,
) -> list[BudgetRow]:
    """The paper's Table 3: each single model's training cost as a budget for ``p``.

    ``curve``: the router's test frontier, (cost, quality) at each of ``BENCH_COST_WEIGHTS``.
    """
    assert router.tuning_ is not None
    oof_quality, oof_cost = router.tuning_.predicted_quality, router.tuning_.predicted_cost
    prediction = router.predict(embeddings[test], widths=False)
    rows = np.arange(len(test))
    out: list[BudgetRow] = []
    for j, model in enumerate(models):
        budget = float(C[train, j].mean())
        within = [
            (q, float(p))
            for p, (c, q) in zip(BENCH_COST_WEIGHTS, curve)
            if c <= budget * (1 + 1e-9)
        ]
        curve_quality, curve_p = (
            max(within, key=lambda qp: (qp[0], qp[1])) if within else (None, None)
        )
        try:
            calibration = calibrate_cost_weight(
                oof_quality,
                oof_cost / router.cost_scale,
                Q[train],
                C[train],
                budget,
                significance=significance,
            )
        except InfeasibleBudgetError:
            out.append(BudgetRow(model, None, None, None, None, curve_p, curve_quality, budget))
            continue
        if calibration.quality < float(Q[train, j].mean()):
            # Out of fold the router does worse than this model at its own cost: sending every
            # query to it meets the budget exactly, so that is the row (never below the model).
            out.append(
                BudgetRow(
                    model, None, float(Q[test, j].mean()), float(C[test, j].mean()),
                    float(Q[train, j].mean()), curve_p, curve_quality, budget, alone=True,
                )
            )  # fmt: skip
            continue
        p = calibration.cost_weight
        chosen = np.argmax(prediction.quality - p * prediction.cost / router.cost_scale, axis=1)
        out.append(
            BudgetRow(
                model,
                p,
                float(Q[test][rows, chosen].mean()),
                float(C[test][rows, chosen].mean()),
                calibration.quality,
                curve_p,
                curve_quality,
                budget,
            )
        )
    return out
