"""The plots of ``metallm bench``, ``simulate`` and ``evaluate`` (matplotlib, from the ``bench`` extra)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from metallm.evaluation._judge_noise import JudgeNoiseResult
from metallm.evaluation._offpolicy import Estimate
from metallm.evaluation._reports import BenchResult, SimulationResult
from metallm.evaluation._seeds import SeedsResult
from metallm.learning import quality_hull

__all__ = [
    "figure",
    "plot_bench",
    "plot_estimates",
    "plot_judge_noise",
    "plot_seeds",
    "plot_simulation",
]


@contextmanager
def figure(
    path: str | Path, *, ncols: int, size: tuple[float, float], dpi: int
) -> Iterator[tuple[Any, Any]]:
    """A figure written to ``path`` (PNG) and closed when the block ends."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=size)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(Path(path), dpi=dpi, bbox_inches="tight")  # legends outside the axes too
    finally:
        plt.close(fig)


def plot_bench(result: BenchResult, path: str | Path) -> Path:
    """Single models (labelled), the zero router's hull, the router curves and the oracle.

    Args:
        result: What ``run_bench`` returned.
        path: The PNG to write.
    """
    with figure(path, ncols=1, size=(8, 5.5), dpi=120) as (_, ax):
        singles = list(result.single.items())
        hull = quality_hull([(v.cost, v.quality) for _, v in singles])
        ax.plot(
            hull[:, 0], hull[:, 1], "--", color="grey", label="zero router (mixtures of two models)"
        )
        for i, (name, v) in enumerate(singles):
            label = "single models" if i == 0 else None
            ax.scatter(v.cost, v.quality, color="black", s=18, zorder=3, label=label)
            ax.annotate(
                name, (v.cost, v.quality), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        for curve, label, color in (
            (result.router, "metallm default", "tab:blue"),
            (result.baseline_linear, "plain paper (linear)", "tab:orange"),
        ):
            pts = sorted((p.cost, p.quality) for p in curve)
            ax.plot(
                [c for c, _ in pts], [q for _, q in pts], "-o", ms=2.5, color=color, label=label
            )
        ax.scatter(
            result.oracle.cost,
            result.oracle.quality,
            marker="*",
            s=120,
            color="tab:green",
            label="oracle",
            zorder=4,
        )
        ax.set_xscale("log")
        ax.set_xlabel("mean cost per query (USD, log scale)")
        ax.set_ylabel("mean quality")
        ax.set_title(f"{result.dataset}: {result.n_test} test prompts")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside the data
        ax.grid(alpha=0.3)
    return Path(path)


def plot_simulation(result: SimulationResult, path: str | Path) -> Path:
    """Running quality, running cost and cumulative regret against the number of queries.

    Args:
        result: What ``run_simulation`` returned.
        path: The PNG to write.
    """
    with figure(path, ncols=3, size=(15, 4.5), dpi=110) as (fig, axes):
        colours = _run_colours([run.label for run in result.runs])
        for run in result.runs:
            steps = np.arange(1, len(run.quality) + 1)
            style = "-" if "cold" in run.label else ("--" if "warm" in run.label else ":")
            line = dict(color=colours[run.label], label=run.label)
            axes[0].plot(steps, np.cumsum(run.quality) / steps, style, **line)
            axes[1].plot(steps, np.cumsum(run.cost) / steps, style, **line)
            if run.cost_weight is None:
                axes[2].plot(steps, run.regret, style, **line)
        if result.budget is not None:
            axes[1].axhline(result.budget.target, color="black", lw=0.8, label="budget")
        titles = (
            "running mean quality",
            "running mean cost ($/query)",
            "cumulative regret vs offline router",
        )
        for ax, title in zip(axes, titles):
            ax.set_title(title)
            ax.set_xlabel("queries")
            ax.grid(alpha=0.3)
        axes[1].set_yscale("log")
        handles: dict[str, Any] = {}  # one entry per line, from every panel, below the panels
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, handle)
        fig.legend(
            list(handles.values()), list(handles), loc="upper center", fontsize=8,
            bbox_to_anchor=(0.5, 0.0), ncol=min(4, len(handles)),
        )  # fmt: skip
        fig.suptitle(f"{result.dataset}: online replay with bandit feedback")
    return Path(path)


def _run_colours(labels: list[str]) -> dict[str, Any]:
    """A colour per run: a hue per policy, dark for its cold start and light for its warm one."""
    import matplotlib

    palette = matplotlib.colormaps["tab20"]  # called with an int: that colour of its 20
    policies = list(dict.fromkeys(label.split(" (")[0] for label in labels))
    colours = {}
    for label in labels:
        i = policies.index(label.split(" (")[0])
        colours[label] = palette((2 * i + ("warm" in label)) % palette.N)
    return colours


def plot_estimates(
    estimates: dict[str, Estimate], path: str | Path, *, title: str, live: str = "logged"
) -> Path:
    """Each policy's estimated mean reward with its 95% interval, best first; ``live`` in black.

    Args:
        estimates: Each policy's estimate.
        path: The PNG to write.
        title: The plot's title.
        live: The logging policy's label.
    """
    ranked = sorted(estimates.items(), key=lambda kv: kv[1].reward)
    with figure(path, ncols=1, size=(8, 0.9 + 0.32 * len(ranked)), dpi=120) as (_, ax):
        for y, (label, e) in enumerate(ranked):
            color = (
                "black"
                if label == live
                else ("tab:purple" if label.startswith("shadow ") else "tab:blue")
            )
            ax.errorbar(
                e.reward,
                y,
                xerr=[[e.reward - e.reward_low], [e.reward_high - e.reward]],
                fmt="o",
                color=color,
                capsize=3,
            )
        ax.set_yticks(range(len(ranked)), [label for label, _ in ranked], fontsize=8)
        ax.set_xlabel("estimated mean reward (doubly robust, 95% interval)")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    return Path(path)


def plot_judge_noise(result: JudgeNoiseResult, path: str | Path) -> Path:
    """Regret, true quality and savings against the judge's error rate, one line per graded share.

    Args:
        result: What ``run_judge_noise`` returned.
        path: The PNG to write.
    """
    with figure(path, ncols=3, size=(15, 4.5), dpi=120) as (fig, (left, middle, right)):
        for sample in sorted({r.sample for r in result.rows}, reverse=True):
            rows = sorted((r for r in result.rows if r.sample == sample), key=lambda r: r.flip)
            flips = [r.flip for r in rows]
            label = f"{sample:.0%} of answers graded"
            left.errorbar(
                flips,
                [r.regret for r in rows],
                yerr=[
                    [r.regret - r.regret_low for r in rows],
                    [r.regret_high - r.regret for r in rows],
                ],
                marker="o",
                capsize=3,
                label=label,
            )
            middle.plot(flips, [r.quality for r in rows], marker="o", label=label)
            right.plot(flips, [100 * r.savings for r in rows], marker="o", label=label)
        left.set_xlabel("judge's error rate f (grade flipped)")
        left.set_ylabel(f"cumulative regret after {result.n_queries} queries")
        left.set_title("regret (range over orders)")
        middle.axhline(result.best_quality, color="grey", ls="--", label=result.best_model)
        middle.set_ylabel("mean true quality")
        middle.set_title("quality got (true outcomes)")
        middle.legend(fontsize=8)
        for ax in (middle, right):
            ax.set_xlabel("judge's error rate f (grade flipped)")
        right.set_ylabel(f"% saved against {result.best_model}")
        right.set_title("savings against the best single model")
        for ax in (left, middle, right):
            ax.grid(alpha=0.3)
        left.legend(fontsize=8)
        fig.suptitle(f"{result.dataset}: learning from a noisy judge (default router, cold)")
    return Path(path)


def plot_seeds(result: SeedsResult, path: str | Path) -> Path:
    """Each method's AIQ over the seeds: every seed's point, the mean and its spread.

    Args:
        result: What ``seeds_result`` returned.
        path: The PNG to write.
    """
    with figure(path, ncols=1, size=(9, 0.6 * len(result.methods) + 1.8), dpi=120) as (_, ax):
        names = list(result.methods)
        for i, name in enumerate(names):
            values = np.asarray(result.methods[name].aiq)
            ax.scatter(values, np.full(len(values), i), color="grey", s=12, alpha=0.6)
            mean, sd, _ = result.methods[name].aiq_stats()
            ax.errorbar(mean, i, xerr=sd, fmt="o", color="tab:blue", capsize=4)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel("AIQ on the test rows (higher is better): each seed, and mean ± sd")
        ax.set_title(f"{result.dataset}: {len(result.seeds)} seeds")
        ax.grid(alpha=0.3, axis="x")
    return Path(path)
