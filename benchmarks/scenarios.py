"""``python -m benchmarks.scenarios``: a pool that changes during an online replay.

``drift:NAME@FRACTION``: from that fraction of the replay on, model NAME answers half the
prompts (a seeded random half) with quality 0, as a provider that silently updated a model
might. ``drift:NAME=OTHER@FRACTION``: from then on NAME's answers are graded as OTHER's were
(the quality column of another model of the table; NAME's price stays), as a real snapshot
change does. Each method (UCB, and UCB forgetting old outcomes at each ``discount``) replays the same
order; reported: NAME's share of the traffic before the drift, the queries until its share (over
a sliding window) falls under half of that, the regret against the full-information router on
the outcomes as they were, and, as the price of forgetting, the same method's regret on the
replay without drift.

``new-model:NAME@FRACTION``: model NAME is left out of the pool until that fraction of the
replay, then added, with no warm start, as a copy of the current model its answers to a
10-prompt quiz resemble most ("similar"), or after a quiz of ``n`` in {10, 30, 50} prompts seen
so far (`Router.quiz` + `Router.onboard`, the combination warm start). Reported per method: the queries until NAME's
share (over a sliding window) reaches 90% of its share under the full-information router on
the same queries, and the regret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metallm.embedding._embedders import Embedder
from metallm.evaluation._bench import embed_table, table_embedder
from metallm.evaluation._datasets import load_routing_table
from metallm.evaluation._plots import figure
from metallm.evaluation._reports import render_table
from metallm.learning._features import with_prompt_length
from metallm.learning._policies import LinUCB
from metallm.serving._router import Router

__all__ = [
    "DriftResult",
    "DriftRun",
    "HistoryPoint",
    "drift_by_history",
    "render_drift_by_history",
    "NewModelResult",
    "NewModelRun",
    "parse_scenario",
    "queries_to_switch",
    "render_drift",
    "render_new_model",
    "run_drift",
    "run_new_model",
]

WINDOW = 200
"""Queries in the sliding window that measures a model's share of the traffic."""
MIN_SHARE = 0.05
"""Below this share before the drift, a method's reaction is not measured (there is none to see)."""
SIMILAR_QUIZ = 10
"""Prompts the "similar" warm start asks the new model, to find the current model it resembles."""


def parse_scenario(text: str) -> tuple[str, str, float]:
    """``"drift:NAME@FRACTION"`` -> ("drift", NAME, FRACTION); ValueError says what is wrong."""
    kind, _, rest = text.partition(":")
    name, _, fraction = rest.rpartition("@")
    if kind not in ("drift", "new-model") or not name or not fraction:
        raise ValueError(
            "a scenario is drift:MODEL@FRACTION or new-model:MODEL@FRACTION "
            f"(e.g. drift:gpt-4@0.5), got {text!r}"
        )
    value = float(fraction)
    if not 0.0 < value < 1.0:
        raise ValueError(f"the scenario's fraction must be in (0, 1), got {value}")
    return kind, name, value


@dataclass(frozen=True)
class DriftRun:
    """One method on the drift scenario."""

    method: str
    share_before: float
    queries_to_react: int | None
    """Queries after the drift until the model's windowed share fell under half its former share
    (None: it never did)."""
    regret: float
    stationary_regret: float
    """The same method's regret on the replay without drift (what forgetting costs when nothing changes)."""
    share: list[float] = field(default_factory=list, repr=False)
    """The model's windowed share after each query (for the plot)."""
    queries_to_switch: int | None = None
    """Queries after the drift until the router switched: the first query whose centred window
    (``WINDOW / 2`` queries either side) gives the model under half its former share (None:
    never). `queries_to_react`'s trailing window lags by about ``WINDOW / 2`` (an instant
    switch reads about 100); a centred one reads a switch where it happened."""


@dataclass
class DriftResult:
    """What ``python -m benchmarks.scenarios --scenario drift:...`` measured."""

    dataset: str
    model: str
    at: int
    n_queries: int
    n_warm: int = 0
    """Queries each router was fitted on offline before routing online (the first of the order)."""
    runs: list[DriftRun] = field(default_factory=list)
    switch_to: str | None = None
    """The model whose quality column the drifted model's answers took (None: half set to 0)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, without the per-query shares."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "at": self.at,
            "n_queries": self.n_queries,
            "n_warm": self.n_warm,
            "switch_to": self.switch_to,
            "runs": [{k: v for k, v in asdict(r).items() if k != "share"} for r in self.runs],
        }


def _replay(router: Router, E: np.ndarray, Q: np.ndarray, C: np.ndarray, ref: np.ndarray,
            scale: float, cost_weight: float, start: int = 0) -> tuple[np.ndarray, float]:  # fmt: skip
    """Route and learn rows ``start`` on; the picks (-1 before ``start``) and the regret."""
    picks = np.full(len(E), -1, dtype=int)
    regret = 0.0
    index = {a: j for j, a in enumerate(router.arms)}
    for t in range(start, len(E)):
        decision = router.select(E[t])
        j = index[decision.arm]
        router.record(decision.id, quality=Q[t, j], cost=C[t, j])
        picks[t] = j
        regret += ref[t] - (Q[t, j] - cost_weight * C[t, j] / scale)
    return picks, regret


def _ordered_table(
    data: str | Path,
    model: str,
    seed: int,
    embedder: Embedder | None,
    progress: bool,
    passes: int = 1,
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    """The table, and its vectors, quality and cost in a seeded replay order (and that rng).

    ``passes`` > 1 replays the table that many times, each pass in its own order.
    """
    table = load_routing_table(data)
    if model not in table.models:
        raise ValueError(f"{model!r} is not a model of {table.name}: {list(table.models)}")
    E = with_prompt_length(
        embed_table(table, embedder or table_embedder(), progress=progress), table.prompts
    )
    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(table)) for _ in range(passes)])
    return table, E[order], table.quality[order], table.cost[order], rng


def _best_in_hindsight(
    E: np.ndarray, Q: np.ndarray, C: np.ndarray, models: list[str], scale: float,
    cost_weight: float, seed: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The full-information router's choice per row, and the reward it gets there."""
    offline = Router(models, embedder=None, prompt_length=True, cost_scale=scale,
                     cost_weight=cost_weight, policy=LinUCB(alpha=0.0), seed=seed)  # fmt: skip
    offline.fit(E, Q, C, tune=False)
    p = offline.predict(E, widths=False)
    best = np.argmax(p.quality - cost_weight * p.cost / scale, axis=1)
    rows = np.arange(len(E))
    return best, Q[rows, best] - cost_weight * C[rows, best] / scale


def run_drift(
    data: str | Path,
    model: str,
    fraction: float,
    *,
    discounts: tuple[float, ...] = (0.95, 0.99, 0.995, 0.999),
    seed: int = 0,
    cost_weight: float = 0.1,
    warm_start: float = 0.0,
    passes: int = 1,
    embedder: Embedder | None = None,
    progress: bool = True,
    switch_to: str | None = None,
    with_default: bool = True,
) -> DriftResult:
    """Replay ``data`` with ``model`` drifting at ``fraction``; see the module docstring.

    ``switch_to``: the model whose quality column ``model``'s answers take from the drift on
    (None: half its answers get quality 0). ``with_default``: measure the library's default
    router too, before plain UCB.

    ``warm_start``: the share of the order each router is fitted on offline first (full
    information, as a router deployed from a routing table), before it routes the rest online;
    the drift must come after it. Shares and regrets count the online queries only.
    ``passes``: replay the table that many times (each pass in its own order; ``fraction`` is
    of the whole replay), for a drift after a long history that can still be followed for long.
    """
    table, E, Q, C, rng = _ordered_table(data, model, seed, embedder, progress, passes)
    j, n = table.models.index(model), len(E)
    at = int(round(fraction * n))
    n_warm = int(round(warm_start * n))
    if not 0 <= n_warm < at:
        raise ValueError(
            f"the warm start ({warm_start:g} of the replay) must end before the drift ({fraction:g})"
        )
    drifted = Q.copy()
    if switch_to is None:
        hit = np.zeros(n, dtype=bool)
        hit[at:] = rng.random(n - at) < 0.5
        drifted[hit, j] = 0.0
    else:
        if switch_to not in table.models:
            raise ValueError(f"{switch_to!r} is not a model of {table.name}: {list(table.models)}")
        drifted[at:, j] = Q[at:, table.models.index(switch_to)]
    scale = float(C.mean(axis=0).max())
    models = list(table.models)
    _, ref_drift = _best_in_hindsight(E, drifted, C, models, scale, cost_weight, seed)
    _, ref_still = _best_in_hindsight(E, Q, C, models, scale, cost_weight, seed)
    methods: list[tuple[str, dict[str, Any]]] = []
    if with_default:
        methods += [
            ("the default (UCB, 3% floor, drift detector)", {}),
            ("the default without its drift detector", {"drift": None}),
        ]
    fixed = {"drift": None, "growth": None}  # the policies alone, as measured before either
    methods += [("UCB", {"policy": LinUCB(), **fixed})]
    methods += [
        (f"UCB, discount {d:g}", {"policy": LinUCB(discount=d), **fixed}) for d in discounts
    ]
    result = DriftResult(table.name, model, at, n, n_warm, switch_to=switch_to)
    iterator: Any = methods
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(methods, desc="drift scenario", unit="method")
    for name, options in iterator:
        runs = []
        for quality, ref in ((drifted, ref_drift), (Q, ref_still)):
            router = Router(models, embedder=None, prompt_length=True, cost_scale=scale,
                            cost_weight=cost_weight, seed=seed, **options)  # fmt: skip
            if n_warm:
                router.fit(E[:n_warm], quality[:n_warm], C[:n_warm], tune=False)
            runs.append(_replay(router, E, quality, C, ref, scale, cost_weight, n_warm))
        (picks, regret), (_, still) = runs
        chosen = (picks == j).astype(float)
        window = np.convolve(chosen, np.ones(WINDOW) / WINDOW)[:n]  # share over the last WINDOW
        before = float(chosen[max(n_warm, at - 4 * WINDOW) : at].mean())
        below = np.nonzero(window[at:] < before / 2)[0] if before > 0 else np.array([0])
        react = int(below[0]) if below.size else None
        result.runs.append(
            DriftRun(
                name,
                before,
                react,
                float(regret),
                float(still),
                window.tolist(),
                queries_to_switch(chosen, at, before),
            )
        )
    return result


@dataclass(frozen=True)
class HistoryPoint:
    """One method's reaction to a drift after ``history`` queries, on one replay order."""

    history: int
    seed: int
    method: str
    share_before: float
    queries_to_react: int | None
    queries_to_switch: int | None
    queries_after: int
    """Queries replayed after the drift: the bound on a reaction that never came."""
    regret: float
    stationary_regret: float
    """The method's regret on the same replay without the drift."""


def drift_by_history(
    data: str | Path,
    model: str,
    histories: Sequence[int],
    *,
    after: int = 3000,
    discount: float = 0.99,
    seeds: Sequence[int] = (0, 1, 2),
    cost_weight: float = 0.1,
    embedder: Embedder | None = None,
    progress: bool = True,
) -> list[HistoryPoint]:
    """How fast UCB and UCB with ``discount`` react to the same drift after longer histories.

    For each number of queries routed before the drift (``histories``) and each order, the table
    is replayed as many times as it takes to follow the drift for at least ``after`` queries
    (each pass in its own order), and `run_drift` measures both methods. Plain statistics
    weigh the drifted model's whole past, so UCB's reaction grows with the history; discounted
    ones weigh about the last ``1 / (1 - discount)`` outcomes, whatever came before.
    """
    if min(histories, default=1) < 1:
        raise ValueError(f"a history is at least one query, got {min(histories)}")
    n = len(load_routing_table(data))
    points: list[HistoryPoint] = []
    jobs = [(h, seed) for h in histories for seed in seeds]
    iterator: Any = jobs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(jobs, desc="drift by history", unit="replay")
    for history, seed in iterator:
        passes = -(-(history + after) // n)
        result = run_drift(data, model, history / (passes * n), discounts=(discount,), seed=seed,
                           cost_weight=cost_weight, passes=passes, embedder=embedder,
                           progress=False, with_default=False)  # fmt: skip
        for run in result.runs:
            points.append(
                HistoryPoint(
                    history,
                    seed,
                    run.method,
                    run.share_before,
                    run.queries_to_react,
                    run.queries_to_switch,
                    result.n_queries - result.at,
                    run.regret,
                    run.stationary_regret,
                )
            )
    return points


def render_drift_by_history(points: Sequence[HistoryPoint]) -> str:
    """Per history and order: each method's queries to react and to switch, and their ratio."""
    methods = list(dict.fromkeys(p.method for p in points))
    rows = [["history", "order"] + [f"{m}: react / switch" for m in methods]
            + ["react ratio", "switch ratio", "regret without drift"]]  # fmt: skip
    by_key = {(p.history, p.seed, p.method): p for p in points}
    for history, seed in dict.fromkeys((p.history, p.seed) for p in points):
        found = [by_key[(history, seed, m)] for m in methods]
        cells = [f"{_queries(p.queries_to_react, p)} / {_queries(p.queries_to_switch, p)}"
                 for p in found]  # fmt: skip
        rows.append(
            [
                str(history),
                str(seed),
                *cells,
                _ratio(found[0], found[-1], "queries_to_react"),
                _ratio(found[0], found[-1], "queries_to_switch"),
                " / ".join(f"{p.stationary_regret:.1f}" for p in found),
            ]  # fmt: skip
        )
    return "\n".join(
        [
            render_table(rows),
            "(history: queries routed before the drift; react: the trailing window's measure, "
            "switch: the centred one; >N: not within the N queries replayed after the drift, so "
            f"the ratio is a bound; n/a: the method gave the model under {MIN_SHARE:.0%} of the "
            "traffic before the drift; at once: its share was already under half at the drift; "
            "regret without drift: each method's on the same replay with no drift, the price of "
            "forgetting)",
        ]
    )


def _queries(value: int | None, point: HistoryPoint) -> str:
    if point.share_before < MIN_SHARE:
        return "n/a"
    return f">{point.queries_after}" if value is None else str(value)


def _ratio(plain: HistoryPoint, other: HistoryPoint, name: str) -> str:
    """How many times faster ``other`` reacted than ``plain`` (">": plain never did)."""
    if plain.share_before < MIN_SHARE or other.share_before < MIN_SHARE:
        return "n/a"
    slow, fast = getattr(plain, name), getattr(other, name)
    if fast is None:
        return "slower" if slow is not None else "n/a"
    if slow == 0:
        return "n/a"
    if fast == 0:
        return "at once"
    bound = slow is None
    slow = plain.queries_after if slow is None else slow
    return f"{'>' if bound else ''}{slow / fast:.1f}x"


def queries_to_switch(chosen: np.ndarray, at: int, before: float) -> int | None:
    """Queries after ``at`` until the model's centred share falls under ``before / 2``.

    ``chosen`` is 0/1 per query (the model picked); the share is over ``WINDOW`` queries
    centred on each. None when it never falls that low.

    >>> picks = np.r_[np.tile([1.0, 0.0], 500), np.zeros(600)]  # share 0.5, then none from 1000
    >>> queries_to_switch(picks, 900, 0.5)
    101
    """
    if before <= 0:
        return 0
    half = WINDOW // 2
    sums = np.concatenate([[0.0], np.cumsum(chosen)])
    for t in range(max(at, half), len(chosen) - half + 1):
        if (sums[t + half] - sums[t - half]) / WINDOW < before / 2:
            return t - at
    return None


def render_drift(result: DriftResult) -> str:
    """The drift scenario as a table."""
    rows = [["method", "share before", "queries to react", "to switch", "regret (drift)",
             "regret (no drift)"]]  # fmt: skip
    for r in result.runs:
        rows.append([r.method, f"{r.share_before:.1%}",
                     "never" if r.queries_to_react is None else str(r.queries_to_react),
                     "never" if r.queries_to_switch is None else str(r.queries_to_switch),
                     f"{r.regret:.1f}", f"{r.stationary_regret:.1f}"])  # fmt: skip
    return "\n".join(
        [
            f"python -m benchmarks.scenarios --scenario drift: {result.dataset}, {result.model} "
            + (
                f"answers as {result.switch_to} did"
                if result.switch_to
                else "answers half the prompts with quality 0"
            )
            + f" from query {result.at} of {result.n_queries} on"
            + (
                f" (each router first fitted offline on the {result.n_warm} before those it routes)"
                if result.n_warm
                else ""
            ),
            "",
            render_table(rows),
            f"(queries to react: until its share of the last {WINDOW} queries falls under half its "
            f"share before the drift; to switch: the same over {WINDOW} queries centred on each, "
            "without the trailing window's lag)",
        ]
    )


@dataclass(frozen=True)
class NewModelRun:
    """One onboarding method on the new-model scenario."""

    method: str
    queries_to_share: int | None
    """Queries after the addition until the model's windowed share reached 90% of its share
    under the full-information router (None: it never did)."""
    regret: float
    share: list[float] = field(default_factory=list, repr=False)


@dataclass
class NewModelResult:
    """What ``python -m benchmarks.scenarios --scenario new-model:...`` measured."""

    dataset: str
    model: str
    at: int
    n_queries: int
    target_share: float
    """The model's share of the queries after ``at`` under the full-information router."""
    runs: list[NewModelRun] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, without the per-query shares."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "at": self.at,
            "n_queries": self.n_queries,
            "target_share": self.target_share,
            "runs": [{k: v for k, v in asdict(r).items() if k != "share"} for r in self.runs],
        }


def run_new_model(
    data: str | Path,
    model: str,
    fraction: float,
    *,
    quizzes: tuple[int, ...] = (10, 30, 50),
    seed: int = 0,
    cost_weight: float = 0.1,
    embedder: Embedder | None = None,
    progress: bool = True,
) -> NewModelResult:
    """Replay ``data`` with ``model`` joining at ``fraction``; see the module docstring."""
    table, E, Q, C, _ = _ordered_table(data, model, seed, embedder, progress)
    j, n = table.models.index(model), len(E)
    at = int(round(fraction * n))
    scale = float(C.mean(axis=0).max())
    models = list(table.models)
    best, ref = _best_in_hindsight(E, Q, C, models, scale, cost_weight, seed)
    target = float((best[at:] == j).mean())
    others = [m for m in models if m != model]
    columns = [models.index(m) for m in others] + [j]
    result = NewModelResult(table.name, model, at, n, target)
    methods: list[tuple[str, int, str | None]] = [
        ("no warm start", 0, None),
        (f"similar (quiz {SIMILAR_QUIZ})", SIMILAR_QUIZ, "similar"),
        *((f"quiz {q}", q, "combination") for q in quizzes),
    ]
    iterator: Any = methods
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(methods, desc="new-model scenario", unit="method")
    for name, quiz, warm_start in iterator:
        router = Router(others, embedder=None, prompt_length=True, cost_scale=scale,
                        cost_weight=cost_weight, seed=seed)  # fmt: skip
        before, _ = _replay(router, E[:at], Q[:at][:, columns[:-1]], C[:at][:, columns[:-1]],
                            ref[:at], scale, cost_weight)  # fmt: skip
        router.add_arm(model)
        if quiz:
            asked = router.quiz(model, E[:at], n=quiz)
            router.onboard(model, E[asked], Q[asked, j], C[asked, j], warm_start=warm_start)
        picks, regret = _replay(router, E[at:], Q[at:][:, columns], C[at:][:, columns],
                                ref[at:], scale, cost_weight)  # fmt: skip
        chosen = (picks == len(columns) - 1).astype(float)
        window = np.convolve(chosen, np.ones(WINDOW) / WINDOW)[: len(chosen)]
        reached = np.nonzero(window >= 0.9 * target)[0] if target > 0 else np.array([0])
        result.runs.append(
            NewModelRun(
                name,
                int(reached[0]) if reached.size else None,
                float(regret),
                window.tolist(),
            )
        )
    return result


def render_new_model(result: NewModelResult) -> str:
    """The new-model scenario as a table."""
    rows = [["method", "queries to 90% of its share", "regret after it joined"]]
    for r in result.runs:
        rows.append([r.method, "never" if r.queries_to_share is None else str(r.queries_to_share),
                     f"{r.regret:.1f}"])  # fmt: skip
    return "\n".join(
        [
            f"python -m benchmarks.scenarios --scenario new-model: {result.dataset}, {result.model} joins at "
            f"query {result.at} of {result.n_queries}; the full-information router gives it "
            f"{result.target_share:.1%} of the queries after that",
            "",
            render_table(rows),
            f"(its share is measured over the last {WINDOW} queries)",
        ]
    )


# -- plots ---------------------------------------------------------------------------
def plot_scenario(result: DriftResult | NewModelResult, path: str | Path) -> Path:
    """The changing model's share of the traffic over the replay, per method."""
    drift = isinstance(result, DriftResult)
    with figure(path, ncols=1, size=(9, 4.5), dpi=110) as (_, ax):
        for run in result.runs:
            offset = 0 if drift else result.at  # a new model's shares start when it joins
            ax.plot(np.arange(len(run.share)) + offset, run.share, label=run.method)
        ax.axvline(result.at, color="black", lw=0.8, ls="--", label="drift" if drift else "joins")
        if isinstance(result, NewModelResult):
            ax.axhline(result.target_share, color="grey", lw=0.8, label="full-information share")
        ax.set_xlabel("queries")
        ax.set_ylabel(f"{result.model}'s share of the last {WINDOW} queries")
        what = "answers half the prompts with quality 0" if drift else "joins the pool"
        ax.set_title(f"{result.dataset}: {result.model} {what}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return Path(path)


def plot_drift_by_history(points: list[HistoryPoint], path: str | Path, *, title: str = "") -> Path:
    """Queries to switch after a drift against the history before it, per method.

    One marker per replay order, the line through their means; a reaction that never came is
    drawn at its bound with an upward triangle.
    """
    methods = list(dict.fromkeys(p.method for p in points))
    with figure(path, ncols=1, size=(8, 4.5), dpi=110) as (_, ax):
        for i, method in enumerate(methods):
            mine = [p for p in points if p.method == method and p.share_before >= MIN_SHARE]
            # a reaction that never came counts at its bound
            y = [
                p.queries_after if p.queries_to_switch is None else p.queries_to_switch
                for p in mine
            ]
            histories = sorted({p.history for p in mine})
            means = [np.mean([v for p, v in zip(mine, y) if p.history == h]) for h in histories]
            color = f"C{i}"
            ax.plot(histories, means, color=color, label=method)
            for p, v in zip(mine, y):
                marker = "^" if p.queries_to_switch is None else "o"
                ax.scatter(p.history, v, color=color, marker=marker, s=18)
        ax.set_xlabel("queries routed before the drift")
        ax.set_ylabel(f"queries until it switched (centred {WINDOW}-query share)")
        ax.set_title(title or "reaction to a drift against the history before it")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.scenarios --data TABLE --scenario KIND:MODEL@FRACTION``."""
    import argparse
    import sys

    from metallm.cli import table_arguments, write_json

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scenarios",
        description="a pool that changes during an online replay: drift, or a new model",
    )
    table_arguments(parser, plot="share")
    parser.add_argument(
        "--scenario",
        required=True,
        help="drift:MODEL@FRACTION (MODEL answers half the prompts with quality 0 from that "
        "fraction of the replay on; UCB against discounted UCB), drift:MODEL=OTHER@FRACTION "
        "(MODEL's answers graded as OTHER's from then on) or new-model:MODEL@FRACTION "
        "(MODEL joins then; no warm start against quizzes of 10, 30, 50)",
    )
    parser.add_argument("--warm-start", type=float, default=0.0, help="rows learned offline first")
    parser.add_argument(
        "--discounts",
        default="0.95,0.99,0.995,0.999",
        help="with drift: the discounts of the forgetting UCBs measured (comma-separated)",
    )
    parser.add_argument("--cost-weight", type=float, default=0.1, help="p in the reward")
    args = parser.parse_args(argv)
    embedder = table_embedder(args.embedder, args.embedding_model, static_model=args.static_model)
    options: dict[str, Any] = {
        "seed": args.seed,
        "cost_weight": args.cost_weight,
        "embedder": embedder,
    }
    try:
        kind, model, fraction = parse_scenario(args.scenario)
        result: DriftResult | NewModelResult
        if kind == "drift":
            model, _, switch = model.partition("=")
            discounts = tuple(float(d) for d in args.discounts.split(",") if d.strip())
            result = run_drift(args.data, model, fraction, warm_start=args.warm_start,
                               switch_to=switch or None, discounts=discounts,
                               **options)  # fmt: skip
            print(render_drift(result))
        else:
            result = run_new_model(args.data, model, fraction, **options)
            print(render_new_model(result))
    except ValueError as e:
        print(f"python -m benchmarks.scenarios: {e}", file=sys.stderr)
        return 2
    write_json(args.json_out, result.to_dict())
    if args.plot_out:
        print(f"wrote {plot_scenario(result, args.plot_out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
