"""``metallm simulate --judge-noise``: learning from a noisy judge that grades a sample.

Where nobody labels answers, a router learns from a judge (`metallm.serving.Grader`) that
grades a sampled share ``s`` of the answers, and a judge is sometimes wrong. This replays a
routing table in `metallm simulate`'s order (cold: no offline rows) with the library's
default router, but each answer is graded only with probability ``s``, and a graded answer's
grade is the true quality flipped to ``1 - quality`` with probability ``f`` (and, when asked,
with Gaussian noise added, clipped to [0, 1]). Regret, quality and cost are always counted
with the **true** outcomes, so each (f, s) is compared with full labels (f = 0, s = 1) on the
same queries, in the same orders.

>>> noise = JudgeNoise(flip=0.2, sample=0.3)
>>> rng = np.random.default_rng(0)
>>> grades = [noise.grade(1.0, rng) for _ in range(1000)]
>>> round(sum(g is not None for g in grades) / 1000, 1)
0.3
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metallm.embedding import Embedder
from metallm.evaluation._bench import embed_table, table_embedder
from metallm.evaluation._datasets import load_routing_table
from metallm.evaluation._progress import Bar
from metallm.evaluation._reports import render_table
from metallm.evaluation._simulate import hindsight_reward
from metallm.learning import with_prompt_length
from metallm.serving import Router

__all__ = ["JudgeNoise", "JudgeNoiseResult", "JudgeNoiseRow", "run_judge_noise"]

FLIPS = (0.0, 0.1, 0.2, 0.3)
"""The judge's error rates the issue's table reports."""

SAMPLES = (1.0, 0.3, 0.1)
"""The graded shares the issue's table reports."""


@dataclass(frozen=True)
class JudgeNoise:
    """A simulated judge: grades a share of answers, sometimes wrongly.

    Args:
        flip: The probability a graded answer's grade is ``1 - quality`` (a judge that errs).
        sample: The share of answers graded, in (0, 1].
        sigma: Gaussian noise added to each grade (clipped to [0, 1]); 0: none.

    Raises:
        ValueError: A probability outside its range or a negative ``sigma``.
    """

    flip: float = 0.0
    sample: float = 1.0
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"flip must be in [0, 1], got {self.flip}")
        if not 0.0 < self.sample <= 1.0:
            raise ValueError(f"sample must be in (0, 1], got {self.sample}")
        if not self.sigma >= 0.0:
            raise ValueError(f"sigma must be at least 0, got {self.sigma}")

    def grade(self, quality: float, rng: np.random.Generator) -> float | None:
        """The judge's grade of an answer of true ``quality`` (None: not sampled).

        Args:
            quality: The answer's true quality in [0, 1].
            rng: The replay's random generator.

        Returns:
            The grade in [0, 1], or None when the answer is not among the graded share.
        """
        sampled, flipped, noise = rng.random(), rng.random(), rng.normal()
        if sampled >= self.sample:
            return None
        grade = 1.0 - quality if flipped < self.flip else quality
        return float(np.clip(grade + self.sigma * noise, 0.0, 1.0))


@dataclass(frozen=True)
class JudgeNoiseRow:
    """One (flip, sample) setting over the replay orders: means and ranges."""

    flip: float
    sample: float
    regret: float
    regret_low: float
    regret_high: float
    quality: float
    cost: float
    savings: float
    """1 - cost / the best single model's cost (the model of highest mean quality)."""
    graded: float
    """Answers graded per replay (mean)."""


@dataclass
class JudgeNoiseResult:
    """What ``metallm simulate --judge-noise`` measured on one table.

    Attributes:
        dataset: The table's name.
        n_queries: Queries per replay.
        cost_weight: ``p`` in the reward.
        sigma: Gaussian grade noise.
        seeds: The replay orders.
        best_model: The single model of highest mean quality (savings are against it).
        best_quality: Its mean quality.
        best_cost: Its mean cost per query.
        rows: One per (flip, sample).
    """

    dataset: str
    n_queries: int
    cost_weight: float
    sigma: float
    seeds: list[int]
    best_model: str
    best_quality: float
    best_cost: float
    rows: list[JudgeNoiseRow] = field(default_factory=list)

    def row(self, flip: float, sample: float) -> JudgeNoiseRow:
        """The row of one setting.

        Args:
            flip: The judge's error rate.
            sample: The graded share.

        Raises:
            KeyError: The setting was not run.
        """
        for r in self.rows:
            if r.flip == flip and r.sample == sample:
                return r
        raise KeyError(f"no row for flip={flip}, sample={sample}")

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (``rows`` as a list of dicts)."""
        out = asdict(self)
        out["rows"] = [asdict(r) for r in self.rows]
        return out

    def render(self) -> str:
        """The table, with the regret each setting adds to full labels."""
        full = {r.flip: r for r in self.rows if r.sample == 1.0}.get(0.0)
        header: list[object] = ["judge errs (f)", "graded (s)", "regret", "range", "vs full labels"]
        table: list[list[object]] = [header + ["quality", "$/query", "savings"]]
        for r in self.rows:
            extra = f"{r.regret - full.regret:+.1f}" if full is not None else ""
            table.append([
                f"{r.flip:g}", f"{r.sample:g}", f"{r.regret:.1f}",
                f"{r.regret_low:.1f}-{r.regret_high:.1f}", extra,
                f"{r.quality:.4f}", f"{r.cost:.3g}", f"{r.savings:.1%}",
            ])  # fmt: skip
        head = (
            f"metallm simulate --judge-noise: {self.dataset}, {self.n_queries} queries, cold, "
            f"the default router, p = {self.cost_weight:g}, orders {self.seeds}"
            + (f", grade noise sd {self.sigma:g}" if self.sigma else "")
            + f"\nbest single model {self.best_model}: quality {self.best_quality:.4f}, "
            f"${self.best_cost:.3g}/query (savings are against it)\n"
        )
        return head + render_table(table)


def run_judge_noise(
    data: str | Path,
    *,
    flips: Sequence[float] = FLIPS,
    samples: Sequence[float] = SAMPLES,
    seeds: Sequence[int] = (0, 1, 2),
    sigma: float = 0.0,
    cost_weight: float = 0.1,
    embedder: Embedder | None = None,
    progress: bool = True,
) -> JudgeNoiseResult:
    """Replay ``data`` with feedback from a simulated judge, for each (flip, sample).

    Args:
        data: The routing table.
        flips: The judge's error rates.
        samples: The graded shares.
        seeds: The replay orders (each setting is replayed in each).
        sigma: Gaussian noise on every grade.
        cost_weight: ``p`` in the reward (the router's and regret's).
        embedder: What embeds the prompts (None: ``table_embedder()``).
        progress: Show a progress bar.

    Returns:
        One row per (flip, sample), averaged over the orders.

    Raises:
        ValueError: A flip or sample out of range, or no seeds.
    """
    settings = [JudgeNoise(flip=f, sample=s, sigma=sigma) for f in flips for s in samples]
    if not seeds:
        raise ValueError("give at least one replay order (seed)")
    table = load_routing_table(data)
    embeddings = with_prompt_length(
        embed_table(table, embedder or table_embedder(), progress=progress), table.prompts
    )
    models = list(table.models)
    best = int(np.argmax(table.quality.mean(axis=0)))
    scale = float(table.cost.mean(axis=0).max())
    n = len(table)
    result = JudgeNoiseResult(
        table.name, n, cost_weight, sigma, list(seeds), models[best],
        float(table.quality[:, best].mean()), float(table.cost[:, best].mean()),
    )  # fmt: skip
    bar = Bar("judge-noise replays", total=len(settings) * len(seeds) * n, unit="query",
              enabled=progress)  # fmt: skip
    runs: dict[JudgeNoise, list[tuple[float, float, float, int]]] = {s: [] for s in settings}
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(n)
        E, Q, C = embeddings[order], table.quality[order], table.cost[order]
        reference = hindsight_reward(
            models, E, Q, C, scale=scale, cost_weight=cost_weight, seed=seed
        )
        for noise in settings:
            bar.describe(f"judge errs {noise.flip:g}, grades {noise.sample:g} (order {seed})")
            runs[noise].append(
                _replay(models, E, Q, C, reference, noise, scale, cost_weight, seed, bar)
            )
    bar.close()
    for noise, got in runs.items():
        regret = np.array([g[0] for g in got])
        cost = float(np.mean([g[2] for g in got]))
        result.rows.append(
            JudgeNoiseRow(
                noise.flip,
                noise.sample,
                float(regret.mean()),
                float(regret.min()),
                float(regret.max()),
                float(np.mean([g[1] for g in got])),
                cost,
                1.0 - cost / result.best_cost if result.best_cost > 0 else 0.0,
                float(np.mean([g[3] for g in got])),
            )  # fmt: skip
        )
    return result


def _replay(
    models: list[str],
    E: np.ndarray,
    Q: np.ndarray,
    C: np.ndarray,
    reference: np.ndarray,
    noise: JudgeNoise,
    scale: float,
    cost_weight: float,
    seed: int,
    bar: Bar,
) -> tuple[float, float, float, int]:
    """One cold replay of the default router graded by ``noise``: regret, quality, cost, graded.

    The judge's draws come from their own generator, seeded by the order, so every setting
    sees the same sequence of coin flips where it grades the same answers.
    """
    router = Router(
        models, embedder=None, prompt_length=True, cost_weight=cost_weight, cost_scale=scale,
        seed=seed,
    )  # fmt: skip
    rng = np.random.default_rng([seed, 1])
    index = {arm: j for j, arm in enumerate(router.arms)}
    reward = np.empty(len(E))
    got_q, got_c, graded = np.empty(len(E)), np.empty(len(E)), 0
    for t in range(len(E)):
        decision = router.select(E[t])
        j = index[decision.arm]
        q, c = float(Q[t, j]), float(C[t, j])
        grade = noise.grade(q, rng)
        if grade is not None:
            router.record(decision.id, quality=grade, cost=c)
            graded += 1
        got_q[t], got_c[t] = q, c
        reward[t] = q - cost_weight * c / scale
        if (t + 1) % 500 == 0:
            bar.update(500)
    bar.update(len(E) % 500)
    regret = float(np.sum(reference - reward))
    return regret, float(got_q.mean()), float(got_c.mean()), graded
