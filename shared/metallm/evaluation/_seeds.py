"""``metallm bench --seeds 0-9``: the benchmark over several splits, with the spread.

One split's figures move by points between seeds: savings at the best single model's quality
swing by 10-20 points between methods and seeds on the same table. This runs the bench once
per seed (each its own train/test split and router seed), and reports per method the mean,
standard deviation and standard error of AIQ, top quality and savings at the best single
model's quality, and, for each method against the default router, whether the paired
difference over the seeds is larger than their noise (a paired t-test at 95%).

>>> parse_seeds("0-2"), parse_seeds("1,4")
([0, 1, 2], [1, 4])
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from metallm.evaluation._reports import BenchResult, render_table

__all__ = ["MethodSpread", "SeedsResult", "parse_seeds", "seeds_result"]

DEFAULT = "metallm default"
"""The method every other is compared with."""

# t quantiles (two-sided 95%) by degrees of freedom; beyond 30, the normal's
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]  # fmt: skip


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"A-B"`` (inclusive) or ``"A,B,C"``.

    Args:
        text: The command line's value.

    Raises:
        ValueError: Not a range nor a list of integers.
    """
    try:
        if "-" in text and "," not in text:
            low, high = (int(part) for part in text.split("-", 1))
            if high < low:
                raise ValueError
            return list(range(low, high + 1))
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds takes 'A-B' or 'A,B,C' (integers), got {text!r}") from None


@dataclass(frozen=True)
class MethodSpread:
    """One method's figures over the seeds.

    Attributes:
        name: The method.
        aiq: Per seed.
        max_quality: Per seed.
        savings_at_best: Per seed (None where it never reached the best single model's quality).
    """

    name: str
    aiq: list[float]
    max_quality: list[float]
    savings_at_best: list[float | None]

    @staticmethod
    def _stats(values: Sequence[float]) -> tuple[float, float, float]:
        x = np.asarray(values, dtype=np.float64)
        sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
        return float(x.mean()), sd, sd / math.sqrt(len(x))

    def aiq_stats(self) -> tuple[float, float, float]:
        """Mean, standard deviation and standard error of AIQ."""
        return self._stats(self.aiq)

    def quality_stats(self) -> tuple[float, float, float]:
        """Mean, standard deviation and standard error of top quality."""
        return self._stats(self.max_quality)

    def savings_stats(self) -> tuple[float, float, float] | None:
        """The same for savings at the best single model's quality (None: never reached)."""
        reached = [s for s in self.savings_at_best if s is not None]
        return self._stats(reached) if reached else None


@dataclass
class SeedsResult:
    """The bench over several seeds: each method's spread, and the best single model's.

    Attributes:
        dataset: The table.
        seeds: The seeds run.
        methods: Per method, its figures per seed.
        best_single: The best single model's top quality per seed.
        served: What the default's tuned fit served per seed (its map, and the kNN blend
            where the fit kept one).
    """

    dataset: str
    seeds: list[int]
    methods: dict[str, MethodSpread] = field(default_factory=dict)
    best_single: list[float] = field(default_factory=list)
    served: list[str] = field(default_factory=list)

    def paired(self, name: str, metric: str = "aiq") -> tuple[float, float, str]:
        """``name`` minus the default over the seeds: mean, standard error, and the verdict.

        Args:
            name: The method.
            metric: ``"aiq"`` or ``"max_quality"``.

        Returns:
            (mean difference, its standard error, ``"ahead"``, ``"behind"`` or ``"within
            noise"`` at 95%).
        """
        mine = np.asarray(getattr(self.methods[name], metric), dtype=np.float64)
        base = np.asarray(getattr(self.methods[DEFAULT], metric), dtype=np.float64)
        diff = mine - base
        n = len(diff)
        se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        mean = float(diff.mean())
        t = _T95[min(n - 1, len(_T95)) - 1] if n > 1 else math.inf
        verdict = "within noise"
        if se > 0 and abs(mean) > t * se:
            verdict = "ahead" if mean > 0 else "behind"
        elif se == 0 and mean != 0:
            verdict = "ahead" if mean > 0 else "behind"
        return mean, se, verdict

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, with each method's summary."""
        out = asdict(self)
        out["summary"] = {
            name: {
                "aiq": m.aiq_stats(),
                "max_quality": m.quality_stats(),
                "savings_at_best": m.savings_stats(),
                "vs_default_aiq": None if name == DEFAULT else self.paired(name),
            }
            for name, m in self.methods.items()
        }
        return out

    def render(self) -> str:
        """The spread table: mean ± sd (se) per method, and each against the default."""
        n = len(self.seeds)
        best = np.asarray(self.best_single)
        rows: list[list[object]] = [
            ["method", "AIQ mean ± sd", "se", "top quality", "saves at best (seeds)",
             "AIQ vs default"]
        ]  # fmt: skip
        for name, m in self.methods.items():
            aiq, quality, savings = m.aiq_stats(), m.quality_stats(), m.savings_stats()
            reached = sum(s is not None for s in m.savings_at_best)
            against = "" if name == DEFAULT else "{:+.4f} ± {:.4f} {}".format(*self.paired(name))
            rows.append([
                name, f"{aiq[0]:.4f} ± {aiq[1]:.4f}", f"{aiq[2]:.4f}",
                f"{quality[0]:.4f} ± {quality[1]:.4f}",
                "never" if savings is None
                else f"{savings[0]:.1%} ± {savings[1]:.1%} ({reached}/{n})",
                against,
            ])  # fmt: skip
        head = (
            f"{self.dataset}: {n} seeds ({self.seeds[0]}-{self.seeds[-1]}), a split and a "
            f"router seed each; best single model's top quality {best.mean():.4f} ± "
            f"{best.std(ddof=1) if n > 1 else 0.0:.4f}\n"
            "(vs default: the mean paired difference ± its standard error, and whether it is "
            "larger than the seeds' noise, a paired t-test at 95%)\n"
        )
        return head + render_table(rows) + self._served_lines()

    def _served_lines(self) -> str:
        """How often the default's fit served each map (a blend shows as ``+ kNN blend``)."""
        if not self.served:
            return ""
        kinds = Counter(_map_kind(served) for served in self.served)
        counts = ", ".join(f"{kind} {count}/{len(self.served)}" for kind, count in kinds.items())
        return f"\nthe default's fit served: {counts}"


def _map_kind(served: str) -> str:
    """``ClusterFeatures`` of ``PromptLengthFeatures(inner=ClusterFeatures(...))``, blend added."""
    names = [n for n in re.findall(r"(\w+)\(", served) if n != "PromptLengthFeatures"]
    kind = names[0] if names else served
    return kind + (" + kNN blend" if "kNN blend" in served else "")


def seeds_result(
    seeds: Sequence[int], run: Callable[[int], BenchResult], *, progress: Callable[[str], None]
) -> SeedsResult:
    """Run the bench once per seed and gather each method's figures.

    Args:
        seeds: The seeds.
        run: The bench at one seed.
        progress: Told each seed's headline as it finishes.

    Returns:
        The spread of every method.
    """
    result: SeedsResult | None = None
    for seed in seeds:
        bench = run(seed)
        if result is None:
            result = SeedsResult(bench.dataset, list(seeds))
        figures: list[tuple[str, float, float, float | None]] = [
            (DEFAULT, bench.summary.aiq, bench.summary.max_quality, bench.summary.savings_at_best),
            ("plain paper (linear)", bench.baseline_summary.aiq,
             bench.baseline_summary.max_quality, bench.baseline_summary.savings_at_best),
        ]  # fmt: skip
        if bench.blended is not None:
            b = bench.blended
            figures.append((b.name, b.aiq, b.max_quality, b.savings_at_best))
        figures += [(o.name, o.aiq, o.max_quality, o.savings_at_best) for o in bench.others]
        for name, aiq, quality, savings in figures:
            spread = result.methods.setdefault(name, MethodSpread(name, [], [], []))
            spread.aiq.append(aiq)
            spread.max_quality.append(quality)
            spread.savings_at_best.append(savings)
        result.best_single.append(max(p.quality for p in bench.single.values()))
        result.served.append(bench.chosen_features)
        progress(
            f"seed {seed}: default AIQ {bench.summary.aiq:.4f}, top quality "
            f"{bench.summary.max_quality:.4f}"
            + "".join(f"; {name} {aiq:.4f}" for name, aiq, _, _ in figures[1:])
        )
    if result is None:
        raise ValueError("give at least one seed")
    return result
