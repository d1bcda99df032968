"""``metallm report``: what routing saved, against always using one model, from a store's log.

The question a team asks first: "how much did routing save us this week, against always using
our best model, and what did it cost in quality?" Every worker sharing a store appends each
graded decision to its log, with the vector, the chosen model, the probability the policy chose
it (its propensity), the quality and the cost. From those, for the decisions in a time window:

* **What routing did**: calls, spend and shares per model, the quality it got (the plain mean
  of the grades, with a bootstrap 95% interval), per day.
* **What the baseline would have done**: always one model (default: the one of highest
  estimated quality). Its quality **and** its cost on the same queries are estimated off-policy
  (doubly robust with shrinkage, `metallm.evaluation.offpolicy`), from the queries the router
  did send to it; the default router's exploration floor sends every model a share, so the
  estimate exists for every model of a default deployment. Savings are the estimated baseline
  spend minus the spend.
* **Each shadow router**: an anytime-valid verdict ("better", "worse", "not yet") on its
  reward against the live router's, from a confidence sequence (`metallm.evaluation._sequential`),
  so the team may read the report every day without inflating its error.

The log holds the decisions that were graded (or failed): with a judge grading a share of the
answers, that share is a uniform sample of the traffic (sampling is by decision id), so per-call
figures and shares describe all traffic while totals are those of the graded decisions.
"""

from __future__ import annotations

import base64
import html
import math
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np

from metallm.evaluation._offpolicy import (
    PRIMARY,
    DecisionLog,
    cross_fitted,
    log_cost_scale,
    log_from_events,
    on_policy,
)
from metallm.evaluation._reports import render_table
from metallm.evaluation._sequential import (
    SequentialVerdict,
    logging_distribution,
    prequential_terms,
    sequential_verdict,
)
from metallm.state import FeedbackEvent, StateStore

__all__ = [
    "DayFigures",
    "ModelFigures",
    "SavingsReport",
    "parse_since",
    "savings_report",
]

_DAY = 86_400.0

_Z = 2.576
"""The baseline interval's normal quantile. A few heavily weighted rows make the estimate's
distribution skewed: at 1.96 the interval covered the truth in 87-97% of runs on multitask9,
at 2.576 in 97-100% (overruling: 100% either way); it is reported as a 95% interval
(``python -m benchmarks.report_validation``)."""


def parse_since(text: str, *, now: float | None = None) -> float:
    """A window's start: ``7d``, ``36h``, ``90m`` before ``now``, or a date ``2026-12-01``.

    Args:
        text: The duration or the ISO date (UTC).
        now: Unix time the duration counts back from (None: now).

    Returns:
        Unix time.

    Raises:
        ValueError: Neither a duration nor a date.

    >>> parse_since("2d", now=200_000.0)
    27200.0
    """
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", text)
    if match:
        unit = {"d": _DAY, "h": 3_600.0, "m": 60.0}[match.group(2)]
        return now - float(match.group(1)) * unit
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since takes a duration (7d, 36h, 90m) or a date (2026-12-01), got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@dataclass(frozen=True)
class ModelFigures:
    """One model's calls in the window, and its estimated value as the baseline."""

    calls: int
    spend_usd: float
    share: float
    failures: int
    estimated_quality: float | None
    """Its quality had it answered every graded query (off-policy; None: never chosen)."""
    quality_low: float | None
    quality_high: float | None


@dataclass(frozen=True)
class DayFigures:
    """One UTC day: calls, spend, the baseline's estimated spend, and quality."""

    day: str
    calls: int
    spend_usd: float
    baseline_spend_usd: float
    quality: float | None
    baseline_quality: float | None


@dataclass
class SavingsReport:
    """What ``metallm report`` found in a store's log (see the module docstring).

    Attributes:
        store: The store read.
        since: The window's start (None: the log's start).
        until: Its end.
        baseline: The model compared with.
        cost_weight: ``p`` in the verdicts' reward.
        decisions: Logged decisions in the window (graded answers and learned failures).
        graded: Graded answers with a propensity (what the estimates use).
        spend_usd: What the logged decisions cost.
        quality: The router's mean grade, with ``quality_low``/``quality_high`` its interval.
        baseline_quality: The baseline's estimated quality on the same queries, with its
            interval ``baseline_quality_low``/``baseline_quality_high``.
        baseline_cost_per_call: Its estimated cost per call, with its interval.
        models: Per model, its calls and estimated value.
        days: Per UTC day.
        verdicts: Per shadow router and for the baseline, the anytime-valid verdict.
    """

    store: str
    since: float | None
    until: float
    baseline: str
    cost_weight: float
    decisions: int
    """Logged decisions in the window (graded answers and learned failures)."""
    graded: int
    """Of those, graded answers with a propensity (what the estimates use)."""
    spend_usd: float
    quality: float
    quality_low: float
    quality_high: float
    baseline_quality: float
    baseline_quality_low: float
    baseline_quality_high: float
    baseline_cost_per_call: float
    baseline_cost_low: float
    baseline_cost_high: float
    models: dict[str, ModelFigures] = field(default_factory=dict)
    days: list[DayFigures] = field(default_factory=list)
    verdicts: dict[str, SequentialVerdict] = field(default_factory=dict)
    """Per shadow router, and for ``always <baseline>``: reward against the live router's."""

    @property
    def baseline_spend_usd(self) -> float:
        """What the window's calls would have cost on the baseline (estimated)."""
        return self.baseline_cost_per_call * self.decisions

    @property
    def saved_usd(self) -> float:
        """The baseline's estimated spend minus the spend (negative: routing cost more)."""
        return self.baseline_spend_usd - self.spend_usd

    @property
    def saved_share(self) -> float:
        """The share of the baseline's estimated spend that routing did not spend."""
        base = self.baseline_spend_usd
        return self.saved_usd / base if base > 0 else 0.0

    @property
    def quality_change(self) -> float:
        """The router's quality minus the baseline's estimated quality."""
        return self.quality - self.baseline_quality

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (with the derived savings figures)."""
        out = asdict(self)
        out["verdicts"] = {name: v.to_dict() for name, v in self.verdicts.items()}
        out.update(
            baseline_spend_usd=self.baseline_spend_usd,
            saved_usd=self.saved_usd,
            saved_share=self.saved_share,
            quality_change=self.quality_change,
        )
        return out

    def _window(self) -> str:
        def day(t: float) -> str:
            return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")

        start = "the start of the log" if self.since is None else day(self.since)
        return f"{start} to {day(self.until)} UTC"

    def render(self) -> str:
        """The report as text: the headline, per model, per day, and the verdicts."""
        lines = [
            f"metallm report: {self.store}, {self._window()}",
            f"{self.decisions} logged decisions ({self.graded} graded with a propensity), "
            f"spend ${self.spend_usd:.4f}",
            "",
            f"always {self.baseline} would have cost ${self.baseline_spend_usd:.4f} "
            f"(${self.baseline_cost_per_call:.3g}/call, 95% [{self.baseline_cost_low:.3g}, "
            f"{self.baseline_cost_high:.3g}]): routing saved ${self.saved_usd:.4f} "
            f"({self.saved_share:.1%})",
            f"quality: routing {self.quality:.4f} [{self.quality_low:.4f}, {self.quality_high:.4f}]"
            f", always {self.baseline} {self.baseline_quality:.4f} [{self.baseline_quality_low:.4f}"
            f", {self.baseline_quality_high:.4f}] (estimated): {self.quality_change:+.4f}",
            "",
        ]
        rows: list[list[object]] = [
            ["model", "calls", "share", "spend $", "failures", "est. quality", "95% interval"]
        ]
        for name, m in self.models.items():
            interval = (
                "" if m.quality_low is None else f"[{m.quality_low:.3f}, {m.quality_high:.3f}]"
            )
            quality = "" if m.estimated_quality is None else f"{m.estimated_quality:.4f}"
            rows.append([name, m.calls, f"{m.share:.1%}", f"{m.spend_usd:.4f}", m.failures,
                         quality, interval])  # fmt: skip
        lines += [render_table(rows), ""]
        day_rows: list[list[object]] = [
            ["day", "calls", "spend $", f"{self.baseline} $ (est.)", "quality", "baseline q (est.)"]
        ]
        for d in self.days:
            day_rows.append([
                d.day, d.calls, f"{d.spend_usd:.4f}", f"{d.baseline_spend_usd:.4f}",
                "" if d.quality is None else f"{d.quality:.4f}",
                "" if d.baseline_quality is None else f"{d.baseline_quality:.4f}",
            ])  # fmt: skip
        lines += [render_table(day_rows)]
        if self.verdicts:
            lines += ["", f"reward (quality - {self.cost_weight:g} * cost / scale) against the "
                      "live router, anytime-valid:"]  # fmt: skip
            lines += [f"  {name}: {verdict}" for name, verdict in self.verdicts.items()]
        lines += [
            "",
            "(the baseline: doubly robust estimates from the log, with intervals that count the "
            "exploration's rare heavily weighted rows; its spend is its estimated cost per call "
            "times the calls)",
        ]
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        """Write the per-day spend against the baseline's, and quality per model (PNG).

        Args:
            path: The PNG to write (needs matplotlib: the ``bench`` extra).

        Returns:
            The path written.
        """
        from metallm.evaluation._plots import figure

        with figure(path, ncols=2, size=(12, 4.5), dpi=110) as (fig, (left, right)):
            days = [d.day for d in self.days]
            x = np.arange(len(days))
            left.bar(x - 0.2, [d.spend_usd for d in self.days], 0.4, label="routing")
            left.bar(x + 0.2, [d.baseline_spend_usd for d in self.days], 0.4,
                     label=f"always {self.baseline} (estimated)")  # fmt: skip
            left.set_xticks(x, days, rotation=45, ha="right", fontsize=8)
            left.set_ylabel("USD")
            left.set_title(f"spend per day: saved {self.saved_share:.0%}")
            left.legend(fontsize=8)
            names = [n for n, m in self.models.items() if m.estimated_quality is not None]
            est = [self.models[n] for n in names]
            y = [m.estimated_quality or 0.0 for m in est]
            err = [
                [v - (m.quality_low or v) for v, m in zip(y, est)],
                [(m.quality_high or v) - v for v, m in zip(y, est)],
            ]
            right.errorbar(range(len(names)), y, yerr=err, fmt="o", capsize=3,
                           label="always this model (estimated)")  # fmt: skip
            right.axhline(self.quality, color="tab:green", label="routing (graded)")
            right.axhspan(self.quality_low, self.quality_high, color="tab:green", alpha=0.15)
            right.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
            right.set_ylabel("quality")
            right.set_title("quality, with 95% intervals")
            right.legend(fontsize=8)
            for ax in (left, right):
                ax.grid(alpha=0.3)
            fig.suptitle(f"metallm report: {self.store}")
        return path

    def html(self) -> str:
        """The report as one self-contained HTML page (the plot inlined when matplotlib is there)."""
        image = ""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            pass
        else:
            import os
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                png = os.path.join(folder, "report.png")
                self.plot(png)
                with open(png, "rb") as handle:
                    data = base64.b64encode(handle.read()).decode("ascii")
            image = f'<img alt="spend and quality" src="data:image/png;base64,{data}">'
        body = html.escape(self.render())
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>metallm report</title>"
            "<style>body{font-family:sans-serif;margin:2em}pre{font-size:13px}"
            "img{max-width:100%}</style></head><body><h1>metallm report</h1>"
            f"{image}<pre>{body}</pre></body></html>"
        )


class _Value(NamedTuple):
    """An estimate and its 95% interval."""

    point: float
    low: float
    high: float


def _always(log: DecisionLog, j: int, direct: np.ndarray, top: float, mu: np.ndarray) -> _Value:
    """The mean outcome had model ``j`` answered every logged query: doubly robust.

    The point is ``mean(direct[:, j] + 1[chosen = j] / propensity * (outcome - direct))``; its
    95% interval is normal (at `_Z`) with the larger of the terms' observed variance and their expected
    variance ``mean(1 / mu_j) * s^2`` (``s^2``: the larger of the mean squared residual where
    ``j`` answered and over every row; ``mu`` the logging distribution, `logging_distribution`). A model the router seldom chose
    is seen through a few heavily weighted rows; the observed variance misses those not yet
    drawn, the expected one does not (on the shared tables, the observed one alone covered the
    truth in 80% of runs); the quantile is `_Z`, for the skew those rows give the estimate.
    Point and interval are clipped to [0, top], where every outcome lies.
    """
    rows = np.arange(len(log.chosen))
    took = log.chosen == j
    residual = log.quality - direct[rows, log.chosen]
    terms = direct[:, j] + took / log.propensity * residual
    # where j answered it may be easy to predict; elsewhere it is as hard as the others are
    s2 = max(
        float((residual[took] ** 2).mean()) if took.any() else 0.0, float((residual**2).mean())
    )
    variance = max(float(terms.var()), float(np.mean(1.0 / mu[:, j])) * s2)
    half = _Z * math.sqrt(variance / len(terms))
    point = float(terms.mean())
    low, high = max(point - half, 0.0), min(point + half, top)
    return _Value(float(np.clip(point, 0.0, top)), low, high)


def _cost_as_outcome(log: DecisionLog) -> DecisionLog:
    """``log`` with cost as its outcome: estimating ``reward`` at p = 0 then estimates cost."""
    return replace(log, quality=log.cost, cost=np.zeros_like(log.cost))


def savings_report(
    store: StateStore,
    *,
    baseline: str | None = None,
    since: float | None = None,
    until: float | None = None,
    arms: Sequence[str] | None = None,
    cost_weight: float = 0.1,
    alpha: float = 0.05,
    seed: int = 0,
    bootstrap: int = 200,
) -> SavingsReport:
    """What routing saved against always using ``baseline``, from ``store``'s log.

    Args:
        store: The store the workers log to.
        baseline: The model to compare with (None: the one of highest estimated quality).
        since: The window's start, Unix time (None: the start of the log).
        until: Its end (None: now).
        arms: The pool (None: every model in the window's log).
        cost_weight: ``p`` in the reward the verdicts compare.
        alpha: The verdicts' error over every look together.
        seed: The estimators' seed.
        bootstrap: Bootstrap resamples for the intervals.

    Returns:
        The report.

    Raises:
        ValueError: No logged decision in the window, none with a propensity, a baseline that
            is not in the pool, or one the router never chose (nothing to estimate it from).
    """
    until = time.time() if until is None else until
    logged = [e for _, e in store.events_after(None) if isinstance(e, FeedbackEvent)]
    # a decision's later grade replaces its quality in the estimates; it is not another call
    log_window = [e for e in logged if (since is None or e.time >= since) and e.time < until]
    events = [e for e in log_window if e.replaces is None]
    if not events:
        raise ValueError(f"{store} logged no decision in the window: widen --since")
    pool = list(arms) if arms is not None else list(dict.fromkeys(e.arm for e in events))
    log = log_from_events(log_window, pool, source=str(store))
    k = len(pool)
    graded = len(log.chosen)
    folds = max(2, min(5, graded // 4))
    mu = logging_distribution(log.chosen, log.propensity, k)
    direct = np.clip(cross_fitted(log, folds, seed)[0], 0.0, 1.0)
    cost_log = _cost_as_outcome(log)
    cost_direct = np.clip(cross_fitted(cost_log, folds, seed)[0], 0.0, None)

    chosen_counts = np.bincount(log.chosen, minlength=k)
    qualities = {j: _always(log, j, direct, 1.0, mu) for j in range(k) if chosen_counts[j] > 0}
    if baseline is None:
        baseline = pool[max(qualities, key=lambda j: qualities[j].point)]
    if baseline not in pool:
        raise ValueError(f"the baseline {baseline!r} is not in the pool {pool}")
    b = pool.index(baseline)
    if b not in qualities:
        raise ValueError(
            f"the router never chose {baseline!r} in this window, so nothing estimates it: "
            "keep the default exploration floor (LinUCB(explore=0.03)) or widen --since"
        )
    base_q, base_c = qualities[b], _always(cost_log, b, cost_direct, np.inf, mu)
    mine = on_policy(replace(log, cost=np.zeros_like(log.cost)), cost_weight=0.0, scale=1.0,
                     seed=seed, bootstrap=bootstrap)[PRIMARY]  # fmt: skip
    mine_q = _Value(mine.quality, mine.reward_low, mine.reward_high)

    calls: dict[str, int] = defaultdict(int)
    spend: dict[str, float] = defaultdict(float)
    failures: dict[str, int] = defaultdict(int)
    for e in events:
        calls[e.arm] += 1
        spend[e.arm] += e.cost
        failures[e.arm] += int(e.failure)
    total = len(events)
    models = {}
    for j, name in enumerate(pool):
        q = qualities.get(j)
        models[name] = ModelFigures(
            calls[name], spend[name], calls[name] / total, failures[name],
            None if q is None else q.point, None if q is None else q.low,
            None if q is None else q.high,
        )  # fmt: skip
    report = SavingsReport(
        str(store), since, until, baseline, cost_weight, total, graded, float(sum(spend.values())),
        *mine_q, *base_q, *base_c, models,
    )  # fmt: skip
    report.days = _days(events, log, b, direct, cost_direct, base_c.point)
    report.verdicts = _verdicts(log, baseline, b, cost_weight, alpha, seed)
    return report


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d")


def _days(
    events: list[FeedbackEvent],
    log: DecisionLog,
    b: int,
    direct: np.ndarray,
    cost_direct: np.ndarray,
    cost_per_call: float,
) -> list[DayFigures]:
    """Per UTC day: calls and spend, and the baseline's DR estimates from that day's rows."""
    graded = [e for e in events if e.propensity is not None and not e.failure and e.arm in log.arms]
    rows = np.arange(len(log.chosen))
    took = (log.chosen == b) / log.propensity
    q_terms = direct[:, b] + took * (log.quality - direct[rows, log.chosen])
    c_terms = cost_direct[:, b] + took * (log.cost - cost_direct[rows, log.chosen])
    by_day: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(graded):
        by_day[_day(e.time)].append(i)
    calls: dict[str, int] = defaultdict(int)
    spend: dict[str, float] = defaultdict(float)
    for e in events:
        calls[_day(e.time)] += 1
        spend[_day(e.time)] += e.cost
    out = []
    for day in sorted(calls):
        idx = by_day.get(day, [])
        per_call = float(np.clip(c_terms[idx].mean(), 0.0, None)) if idx else cost_per_call
        out.append(
            DayFigures(
                day,
                calls[day],
                spend[day],
                per_call * calls[day],
                float(log.quality[idx].mean()) if idx else None,
                float(np.clip(q_terms[idx].mean(), 0.0, 1.0)) if idx else None,
            )  # fmt: skip
        )
    return out


def _verdicts(
    log: DecisionLog, baseline: str, b: int, cost_weight: float, alpha: float, seed: int
) -> dict[str, SequentialVerdict]:
    """Anytime-valid verdicts on each shadow's (and the baseline's) reward against the live one's."""
    scale = log_cost_scale(log)
    reward = log.quality - cost_weight * log.cost / scale
    k = len(log.arms)
    candidates = {f"always {baseline}": (np.ones(len(reward), dtype=bool), np.eye(k)[
        np.full(len(reward), b)])}  # fmt: skip
    for name, probabilities in log.shadows.items():
        keep = ~np.isnan(probabilities).any(axis=1)
        candidates[f"shadow {name}"] = (keep, probabilities)
    out = {}
    for name, (keep, probabilities) in candidates.items():
        if not keep.any():
            continue
        terms, variances = prequential_terms(
            log.vectors[keep], log.chosen[keep], log.propensity[keep], reward[keep],
            probabilities[keep], seed=seed,
        )  # fmt: skip
        out[name] = sequential_verdict(terms - reward[keep], alpha=alpha, variances=variances)
    return out
