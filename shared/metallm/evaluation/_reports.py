"""Typed results of ``metallm bench`` and ``metallm simulate``, and the one text-table renderer.

Each result is a dataclass with ``to_dict()`` giving exactly the documented JSON keys;
`render_table` is how every command prints a table, and `render_bench` /
`render_simulation` lay the results out with it. Plots live in
`metallm.evaluation._plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BaselineSummary",
    "BenchResult",
    "BenchSummary",
    "BudgetReport",
    "BudgetRow",
    "FrontierPoint",
    "ModelPoint",
    "OtherRouter",
    "Run",
    "SimulationResult",
    "render_bench",
    "render_simulation",
    "render_table",
]


def render_table(rows: Sequence[Sequence[object]], *, align: str | None = None) -> str:
    """Rows of cells (the first is the header) as aligned plain-text columns.

    ``align`` has one letter per column, ``l`` or ``r`` (default: first left, rest right).

    Args:
        rows: The rows, the header first.
        align: ``l`` or ``r`` per column (None: the first left, the rest right).

    >>> print(render_table([["model", "quality"], ["mini", "0.91"]]))
    model  quality
    -----  -------
    mini      0.91
    """
    cells = [[str(c) for c in row] for row in rows]
    n = max(len(row) for row in cells)
    cells = [row + [""] * (n - len(row)) for row in cells]
    align = align or "l" + "r" * (n - 1)
    widths = [max(len(row[j]) for row in cells) for j in range(n)]
    lines = []
    for row in cells:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)


# -- metallm bench -------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelPoint:
    """Mean quality and mean cost (USD per query) on the test rows."""

    quality: float
    cost: float


@dataclass(frozen=True)
class FrontierPoint:
    """The router's mean quality and cost on the test rows at cost weight ``p``."""

    p: float
    quality: float
    cost: float


@dataclass(frozen=True)
class BudgetRow:
    """The paper's budget protocol for one budget (a single model's training cost).

    ``p`` is calibrated on out-of-fold predictions of the training rows (``oof_quality``: the
    quality it had there); ``quality`` and ``cost`` are its test figures; None when no ``p``
    keeps within the budget. ``curve_quality`` (at ``curve_p``) is the best test quality over
    every ``p`` of the reported curve whose test cost is within the budget: read off the test
    rows, like AIQ and savings, so it is what the curve offers, not what calibration delivers.
    """

    budget_model: str
    p: float | None
    quality: float | None
    cost: float | None
    oof_quality: float | None = None
    curve_p: float | None = None
    curve_quality: float | None = None
    budget: float | None = None
    """The budget, USD per query: that model's mean cost on the training rows."""
    alone: bool = False
    """The router could not beat that model out of fold at its budget, so the row sends every
    query to it (``p`` None): a row is never below the model whose budget it spends."""


@dataclass(frozen=True)
class BenchSummary:
    """Area under the router's quality hull, and where it stands against single models."""

    aiq: float
    aiq_zero: float
    max_quality: float
    savings_at_best: float | None


@dataclass(frozen=True)
class OtherRouter:
    """A router from the literature measured on the same split (see ``metallm.evaluation.baselines``)."""

    name: str
    setting: str
    """Its setting, chosen by cross-validation on the training rows (e.g. ``k=50``)."""
    aiq: float
    max_quality: float
    savings_at_best: float | None


@dataclass(frozen=True)
class BaselineSummary:
    """The plain paper method's summary, printed beside the router's (not in the JSON)."""

    aiq: float
    max_quality: float
    savings_at_best: float | None


@dataclass(frozen=True)
class LatencyRow:
    """The router at one latency weight (``p`` fixed): test quality, cost and latency."""

    latency_weight: float
    quality: float
    cost: float
    latency: float
    """Mean seconds per query."""


@dataclass(frozen=True)
class CapacityScore:
    """One capacity candidate's cross-validated figures on the training rows."""

    features: str
    cv_aiq: float
    cv_quality_at_zero: float
    eligible: bool
    chosen: bool


@dataclass(frozen=True)
class BenchResult:
    """What ``metallm bench`` measured on one routing table."""

    dataset: str
    n_test: int
    models: list[str]
    single: dict[str, ModelPoint]
    oracle: ModelPoint
    router: list[FrontierPoint]
    baseline_linear: list[FrontierPoint]
    budgets: list[BudgetRow]
    summary: BenchSummary
    baseline_summary: BaselineSummary
    chosen_features: str
    """The feature map the router was fitted with (chosen by cross-validation)."""
    others: list[OtherRouter] = field(default_factory=list)
    """kNN, a cluster router and an MLP on the same split."""
    latency: list[LatencyRow] = field(default_factory=list)
    """With latency columns: the router at several latency weights (``p`` = 0.1)."""
    blended: OtherRouter | None = None
    """The chosen map with the neighbours' second opinion always on (``Router(neighbours=
    NeighbourQuality())``: 10,000 rows, the full embedding, online rows too), its ``k`` and
    weight chosen by cross-validation on the training rows."""
    capacity: list[CapacityScore] = field(default_factory=list)
    """Every feature map cross-validation weighed on the training rows, and the kNN blend
    weighed over the best linear one, best first."""

    def to_dict(self) -> dict[str, Any]:
        """The report with exactly the documented JSON keys."""
        return {
            "dataset": self.dataset,
            "n_test": self.n_test,
            "models": list(self.models),
            "single": {m: asdict(v) for m, v in self.single.items()},
            "oracle": asdict(self.oracle),
            "router": [asdict(p) for p in self.router],
            "baseline_linear": [asdict(p) for p in self.baseline_linear],
            "budgets": [asdict(b) for b in self.budgets],
            "summary": asdict(self.summary),
            "others": [asdict(o) for o in self.others],
            "latency": [asdict(row) for row in self.latency],
            "blended": None if self.blended is None else asdict(self.blended),
            "capacity": [asdict(c) for c in self.capacity],
        }


def _capacity_lines(scores: list[CapacityScore]) -> list[str]:
    """The cross-validated AIQ of each candidate, best first (the chosen one marked)."""
    if not scores:
        return []
    return [
        "capacity by cross-validation (CV AIQ, quality at p = 0, candidate):",
        *(
            f"  {c.cv_aiq:.4f}  {c.cv_quality_at_zero:.4f}  "
            f"{'chosen' if c.chosen else ('' if c.eligible else 'harm'):<6}  {c.features}"
            for c in scores
        ),
    ]


def _num(x: float | None, spec: str = ".4f") -> str:
    return "never" if x is None else format(x, spec)


def render_bench(result: BenchResult) -> str:
    """The bench result as readable tables.

    Args:
        result: What ``run_bench`` returned.
    """
    r, s, b = result, result.summary, result.baseline_summary
    singles = sorted(r.single.items(), key=lambda kv: kv[1].cost)
    models = render_table(
        [
            ["model", "quality", "$/query"],
            *[[m, f"{v.quality:.4f}", f"{v.cost:.6f}"] for m, v in singles],
            ["oracle", f"{r.oracle.quality:.4f}", f"{r.oracle.cost:.6f}"],
        ]
    )
    others = [*([r.blended] if r.blended is not None else []), *r.others]
    summary = render_table(
        [
            ["", "default", "plain paper", *(o.name for o in others)],
            ["aiq", f"{s.aiq:.4f}", f"{b.aiq:.4f}", *(f"{o.aiq:.4f}" for o in others)],
            [
                "max quality",
                f"{s.max_quality:.4f}",
                f"{b.max_quality:.4f}",
                *(f"{o.max_quality:.4f}" for o in others),
            ],
            [
                "savings at best",
                _num(s.savings_at_best),
                _num(b.savings_at_best),
                *(_num(o.savings_at_best) for o in others),
            ],
            ["quality at p=0", f"{r.router[0].quality:.4f}", f"{r.baseline_linear[0].quality:.4f}"],
            ["setting (by CV)", "", "", *(o.setting for o in others)],
        ]
    )
    budget_rows: list[list[str]] = [
        ["budget = cost of", "p", "quality", "$/query", "vs model quality", "out of fold", "curve"]
    ]
    for row in sorted(r.budgets, key=lambda b: (b.budget is None, b.budget or 0.0)):
        if row.quality is None or row.cost is None or (row.p is None and not row.alone):
            budget_rows.append([row.budget_model, "infeasible"])
            continue
        ref = r.single[row.budget_model].quality
        budget_rows.append(
            [
                row.budget_model,
                "all to it" if row.alone else f"{row.p:.4g}",
                f"{row.quality:.4f}",
                f"{row.cost:.6f}",
                f"{row.quality - ref:+.4f}",
                _num(row.oof_quality),
                _num(row.curve_quality),
            ]
        )
    return "\n".join(
        [
            f"metallm bench: {r.dataset} ({r.n_test} test prompts, {len(r.models)} models)",
            "",
            models,
            "",
            summary,
            f"(zero router aiq {s.aiq_zero:.4f}; every router above routes greedily on its own "
            "predictions, fitted on the same training rows)",
            "",
            f"router features (chosen by 5-fold CV on the training rows): {r.chosen_features}",
            *_capacity_lines(r.capacity),
            "",
            "budgets (p calibrated on out-of-fold predictions of the training rows; 'out of "
            "fold': its quality there; 'curve': the best test quality of any p within the budget):",
            render_table(budget_rows),
            *_latency_lines(r.latency),
        ]
    )


def _latency_lines(rows: list[LatencyRow]) -> list[str]:
    if not rows:
        return []
    table = [["latency weight", "quality", "$/query", "s/query"]] + [
        [f"{r.latency_weight:g}", f"{r.quality:.4f}", f"{r.cost:.6f}", f"{r.latency:.3f}"]
        for r in rows
    ]
    return ["", "latency (the router at p = 0.1, learning latency too):", render_table(table)]


# -- metallm simulate ----------------------------------------------------------------------
@dataclass
class Run:
    """One online replay: per-query quality, cost and cumulative regret (and ``p`` when it moved)."""

    label: str
    quality: np.ndarray
    cost: np.ndarray
    regret: np.ndarray
    cost_weight: np.ndarray | None = None
    latency: np.ndarray | None = None
    """Seconds per query, when the table has latency columns."""

    def summary(self) -> dict[str, float]:
        """Mean quality, mean cost (and latency) and final cumulative regret."""
        n = len(self.quality)
        out = {
            "quality": float(self.quality.sum() / n),
            "cost": float(self.cost.sum() / n),
            "regret": float(self.regret[-1]),
        }
        if self.latency is not None:
            out["latency"] = float(self.latency.sum() / n)
        return out


@dataclass(frozen=True)
class BudgetReport:
    """A budget held online by dual ascent, beside a fixed ``p`` and the offline router."""

    target: float
    mean_cost: float
    cost_error: float
    """``mean_cost / target - 1``."""
    quality: float
    final_p: float
    hindsight_p: float
    """The fixed ``p`` that, in hindsight, makes the same online learner spend the budget."""
    fixed_p_quality: float
    fixed_p_cost: float
    offline_p: float
    offline_router_quality: float


@dataclass
class SimulationResult:
    """What ``metallm simulate`` measured on one routing table."""

    dataset: str
    n_queries: int
    cost_weight: float
    warm_start: float
    runs: list[Run] = field(default_factory=list)
    budget: BudgetReport | None = None
    latency_weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The result with exactly the documented JSON keys."""
        return {
            "dataset": self.dataset,
            "n_queries": self.n_queries,
            "cost_weight": self.cost_weight,
            "warm_start": self.warm_start,
            "latency_weight": self.latency_weight,
            "runs": {run.label: run.summary() for run in self.runs},
            "budget": None if self.budget is None else asdict(self.budget),
        }


def render_simulation(result: SimulationResult) -> str:
    """The simulation result as a readable table.

    Args:
        result: What ``run_simulation`` returned.
    """
    timed = any(run.latency is not None for run in result.runs)
    rows: list[list[str]] = [
        ["policy", "quality", "$/query", *(["s/query"] if timed else []), "regret"]
    ]
    for run in result.runs:
        if run.cost_weight is None:
            s = run.summary()
            seconds = [f"{s['latency']:.3f}"] if "latency" in s else []
            rows.append(
                [
                    run.label,
                    f"{s['quality']:.4f}",
                    f"{s['cost']:.6f}",
                    *seconds,
                    f"{s['regret']:.1f}",
                ]
            )
    weights = f"p = {result.cost_weight}" + (
        f", latency weight {result.latency_weight:g}" if result.latency_weight else ""
    )
    lines = [
        f"metallm simulate: {result.dataset}, {result.n_queries} online queries, {weights}, "
        f"warm start {result.warm_start:.0%} of the rows (full information)",
        "",
        render_table(rows),
    ]
    b = result.budget
    if b is not None:
        lines += [
            "",
            f"budget ${b.target:.6g}/query held online by dual ascent on p:",
            f"  dual ascent : mean cost {b.mean_cost:.6g} ({b.cost_error:+.1%} of target), quality {b.quality:.4f}, final p {b.final_p:.3g}",
            f"  fixed p     : p {b.hindsight_p:.3g}, found in hindsight so this online learner spends the budget: "
            f"quality {b.fixed_p_quality:.4f}, mean cost {b.fixed_p_cost:.6g}",
            f"  (the full-information offline router, p {b.offline_p:.3g} calibrated to the budget, reaches "
            f"{b.offline_router_quality:.4f})",
        ]
    return "\n".join(lines)
