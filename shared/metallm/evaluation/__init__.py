"""Evaluation: how good routing is, measured on routing tables.

Routing tables (`_datasets`), offline benchmarks
(`_bench`), online replays (`_simulate`), the
speed budget (`speed`), and the routing metrics re-exported from
`metallm.learning._metrics` (where cross-validation also uses them).
"""

from metallm.evaluation import _offpolicy as offpolicy  # its estimators, by name
from metallm.evaluation._bench import FEATURE_CHOICES, run_bench, table_embedder
from metallm.evaluation._datasets import RoutingTable, load_routing_table
from metallm.evaluation._judge_noise import JudgeNoise, JudgeNoiseResult, run_judge_noise
from metallm.evaluation._plots import (
    plot_bench,
    plot_estimates,
    plot_judge_noise,
    plot_seeds,
    plot_simulation,
)
from metallm.evaluation._reports import render_bench, render_simulation, render_table
from metallm.evaluation._savings import SavingsReport, parse_since, savings_report
from metallm.evaluation._seeds import SeedsResult, parse_seeds, seeds_result
from metallm.evaluation._sequential import (
    SequentialVerdict,
    confidence_sequence,
    sequential_verdict,
)
from metallm.evaluation._simulate import DEFAULT_ALPHA, run_simulation
from metallm.learning import (
    aiq,
    cheapest_cost_reaching,
    frontier,
    oracle,
    quality_hull,
    savings_at_best,
    zero_router_aiq,
)

__all__ = [
    "DEFAULT_ALPHA",
    "FEATURE_CHOICES",
    "JudgeNoise",
    "JudgeNoiseResult",
    "RoutingTable",
    "SavingsReport",
    "SeedsResult",
    "SequentialVerdict",
    "aiq",
    "cheapest_cost_reaching",
    "confidence_sequence",
    "frontier",
    "load_routing_table",
    "offpolicy",
    "oracle",
    "parse_seeds",
    "parse_since",
    "plot_bench",
    "plot_estimates",
    "plot_judge_noise",
    "plot_seeds",
    "plot_simulation",
    "quality_hull",
    "render_bench",
    "render_simulation",
    "render_table",
    "run_bench",
    "run_judge_noise",
    "run_simulation",
    "savings_at_best",
    "savings_report",
    "seeds_result",
    "sequential_verdict",
    "table_embedder",
    "zero_router_aiq",
]
