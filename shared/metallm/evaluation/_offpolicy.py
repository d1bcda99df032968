"""Off-policy evaluation: what another routing policy would have given, estimated from a log.

A decision log holds, per query, the router's vector, the model it chose, the probability that
the logging policy chose that model (its **propensity**) and the outcome. A candidate policy
(a router at another ``p``, one model for everything, random, any ``vector -> model`` rule)
gives each query a distribution over models; its mean quality, cost and reward
``quality - p * cost / scale`` are then estimated three ways:

* **IPS**: ``mean(w * r)`` with ``w = candidate(a | x) / propensity`` (unbiased, high variance);
* **SNIPS**: ``sum(w * r) / sum(w)`` (self-normalised: a little bias, less variance);
* **DR** (doubly robust): the direct method's ``sum_a candidate(a | x) * r_hat(x, a)`` plus
  ``w * (r - r_hat(x, a))``, where ``r_hat`` is a ridge model per model **cross-fitted** on the
  log (fitted on the other folds, so a row never scores itself);
* **DRos** (doubly robust with optimistic shrinkage, Su, Dimakopoulou, Krishnamurthy and Dudik
  2020): DR with each weight shrunk to ``lam * w / (w**2 + lam)``, ``lam`` chosen from the log
  by the least estimated squared error (the terms' variance plus the square of the bias the
  shrinkage adds, estimated on the same rows). When the direct method is good and the weights
  large (a model the log rarely chose), DR spends most of its error correcting a small bias;
  DRos corrects only as much as the log can pay for. ``lam`` infinite is plain DR. It is the
  headline estimate (`PRIMARY`): on both shared routing tables it had the smallest error
  at a coverage above 0.9 (``python -m benchmarks.offpolicy_validation``; docs/benchmarks.md).

Each comes with a bootstrap 95% interval and the effective sample size ``(sum w)^2 / sum w^2``.
Shadow routers (`metallm.serving._shadows`) log their choice distribution beside each live
decision: `evaluate_shadows` estimates each from those, beside the live router's value on
the same rows, with their agreement and the estimated savings.
The repository's ``python -m benchmarks.offpolicy_validation`` checks the estimators on a
routing table, where every model's outcome is known, so each candidate's true value is too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from metallm.learning import LinearBandit, LinUCB, ProjectedFeatures, fold_splits
from metallm.serving import Router, base_id, parse_shadows, source_rank
from metallm.state import (
    FeedbackEvent,
    StateStore,
)

__all__ = [
    "ESTIMATORS",
    "PRIMARY",
    "SHRINKAGE_GRID",
    "evaluate_log",
    "evaluate_shadows",
    "render_shadows",
    "ShadowReport",
    "fixed_candidates",
    "log_cost_scale",
    "log_from_events",
    "log_from_store",
    "render_log_evaluation",
    "router_candidates",
    "text_candidate",
    "DecisionLog",
    "Estimate",
    "constant_policy",
    "cross_fitted",
    "estimate",
    "on_policy",
]

ESTIMATORS = ("IPS", "SNIPS", "DR", "DRos")

PRIMARY = "DRos"
"""The estimator tables, plots and shadow reports lead with."""

SHRINKAGE_GRID = np.concatenate([10.0 ** np.arange(-2.0, 6.01, 0.25), [np.inf]])
"""DRos's candidate ``lam`` values (``inf``: no shrinkage, plain DR)."""

_DIRECT_FEATURES = ProjectedFeatures(32, l2=1.0)
"""The direct method's features: few, as each model's logged rows are few."""

Candidate = Callable[[np.ndarray], np.ndarray]
"""A policy to evaluate: vectors (n, d) -> the probability of each model, (n, k)."""


@dataclass(frozen=True)
class DecisionLog:
    """Logged decisions: vectors (n, d), chosen model index, its propensity, and the outcome."""

    arms: list[str]
    vectors: np.ndarray
    chosen: np.ndarray
    propensity: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    shadows: dict[str, np.ndarray] = field(default_factory=dict)
    """Per shadow router, the probability it gave each model for each row, (n, k); NaN rows
    where it logged nothing (e.g. added later)."""
    shadow_chosen: dict[str, np.ndarray] = field(default_factory=dict)
    """Per shadow router, the model it chose for each row (-1 where it logged nothing)."""
    prompts: list[str | None] | None = None
    """The query texts, when the store kept them (``store_prompts=True``)."""

    def __post_init__(self) -> None:
        n = self.vectors.shape[0]
        for name in ("chosen", "propensity", "quality", "cost"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have one value per logged decision ({n})")
        if not ((self.propensity > 0) & (self.propensity <= 1)).all():
            raise ValueError("propensities must be in (0, 1]: a zero one cannot be reweighted")


@dataclass(frozen=True)
class Estimate:
    """One estimator's estimate of a candidate's mean quality, cost and reward (with its 95% interval)."""

    estimator: str
    quality: float
    cost: float
    reward: float
    reward_low: float
    reward_high: float
    effective_sample_size: float
    shrinkage: float | None = None
    """DRos's ``lam`` (None: no shrinkage, or another estimator)."""


def cross_fitted(
    log: DecisionLog,
    folds: int,
    seed: int,
    known: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted quality and cost (n, k) of every model for every row: the direct method.

    Each fold is predicted by ridge models fitted on the other folds' logged outcomes, on a
    32-d PCA of the vectors. ``known`` = (vectors, quality, cost) are rows outside the log with
    every model's outcome (the rows the candidates were fitted on): learned first, they teach
    the direct method about models the log rarely chose. No logged row scores itself either way.
    """
    n, k = log.vectors.shape[0], len(log.arms)
    quality, cost = np.empty((n, k)), np.empty((n, k))
    # PCA uses no outcome, so fitting it on every logged vector leaks nothing into a fold
    features = _DIRECT_FEATURES.fit(log.vectors, seed=seed)
    for rest, fold in fold_splits(n, folds, seed):
        bandit = LinearBandit(k, policy=LinUCB(alpha=0.0), features=features)
        if known is not None:
            bandit.fit(*known, tune=False)
        bandit.partial_fit(log.vectors[rest], log.chosen[rest], log.quality[rest], log.cost[rest])
        q, c, _ = bandit.predict(log.vectors[fold], widths=False)
        quality[fold], cost[fold] = q, c
    return quality, cost


def estimate(
    log: DecisionLog,
    candidate: np.ndarray,
    *,
    cost_weight: float,
    scale: float,
    folds: int = 5,
    bootstrap: int = 200,
    seed: int = 0,
    direct: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Estimate]:
    """IPS, SNIPS and DR estimates of a candidate's value from ``log``.

    ``candidate`` is its probability of each model for each logged row, (n, k); ``direct``
    the cross-fitted predictions (computed when not given; pass them to reuse across
    candidates).
    """
    n = log.vectors.shape[0]
    rows = np.arange(n)
    q_hat, c_hat = direct if direct is not None else cross_fitted(log, folds, seed)
    weight = candidate[rows, log.chosen] / log.propensity
    terms = _Terms(
        weight=weight,
        quality=log.quality,
        cost=log.cost,
        direct_quality=(candidate * q_hat).sum(axis=1),
        direct_cost=(candidate * c_hat).sum(axis=1),
        residual_quality=log.quality - q_hat[rows, log.chosen],
        residual_cost=log.cost - c_hat[rows, log.chosen],
        cost_weight=cost_weight,
        scale=scale,
    )
    # the estimates on the log itself (every row counted once), then on each bootstrap resample
    point, lam = terms.values(np.ones((1, n)))
    resampled: dict[str, list[np.ndarray]] = {e: [] for e in ESTIMATORS}
    for counts in _resample_counts(n, bootstrap, seed):
        found, _ = terms.values(counts)
        for e in ESTIMATORS:
            resampled[e].append(found[e][:, 0] - cost_weight * found[e][:, 1] / scale)
    ess = float(weight.sum() ** 2 / max(float((weight**2).sum()), 1e-12))
    out = {}
    for e in ESTIMATORS:
        quality, cost = float(point[e][0, 0]), float(point[e][0, 1])
        low, high = np.percentile(np.concatenate(resampled[e]), [2.5, 97.5])
        shrinkage = float(lam[0]) if e == "DRos" and np.isfinite(lam[0]) else None
        out[e] = Estimate(
            e,
            quality,
            cost,
            quality - cost_weight * cost / scale,
            float(low),
            float(high),
            ess,
            shrinkage,
        )
    return out


_RESAMPLE_CHUNK = 2_000_000
"""Bootstrap draws held at once (per-row counts of a few resamples: bounded memory on big logs)."""


def _resample_counts(n: int, bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """The bootstrap resamples of n rows as per-row counts, a few resamples (m, n) at a time.

    The draws are ``default_rng(seed).integers(0, n, size=(bootstrap, n))``, row by row.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, _RESAMPLE_CHUNK // max(n, 1))
    for start in range(0, bootstrap, chunk):
        draws = rng.integers(0, n, size=(min(chunk, bootstrap - start), n))
        yield np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)


@dataclass(frozen=True)
class _Terms:
    """A candidate's per-row terms on a log, evaluated on weighted rows (counts per row)."""

    weight: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    direct_quality: np.ndarray
    direct_cost: np.ndarray
    residual_quality: np.ndarray
    residual_cost: np.ndarray
    cost_weight: float
    scale: float

    def values(self, counts: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each estimator's (quality, cost) per row of ``counts`` (m, n) -> (m, 2), and DRos's lam.

        A row of counts is a resample (how often each logged row was drawn; ones: the log).
        """
        n = counts.shape[1]
        w = self.weight
        plain = np.column_stack(
            [
                w * self.quality,
                w * self.cost,
                self.direct_quality + w * self.residual_quality,
                self.direct_cost + w * self.residual_cost,
                w,
            ]
        )
        sums = counts @ plain
        found = {
            "IPS": sums[:, 0:2] / n,
            "SNIPS": sums[:, 0:2] / np.maximum(sums[:, 4:5], 1e-12),
            "DR": sums[:, 2:4] / n,
        }
        found["DRos"], lam = self._shrunk_values(counts)
        return found, lam

    def _shrunk_values(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DRos per row of counts: each picks the ``lam`` of least estimated squared error.

        The error of ``lam`` is the variance of its per-row reward terms over n plus the square
        of the bias its shrinkage adds, ``mean((w - w_lam) * residual)``, estimated on the same
        rows (the "optimistic" estimate of Su et al. 2020). Each bootstrap resample picks its
        own, so the interval includes the choice.
        """
        n, m = counts.shape[1], counts.shape[0]
        w = self.weight
        ratio = self.cost_weight / self.scale
        direct = self.direct_quality - ratio * self.direct_cost
        residual = self.residual_quality - ratio * self.residual_cost
        best = np.full(m, np.inf)
        chosen = np.full(m, np.inf)
        values = np.zeros((m, 2))
        for lam in SHRINKAGE_GRID[::-1]:  # from no shrinkage: ties keep the larger lam
            shrunk = _shrunk(w, lam)
            reward = direct + shrunk * residual
            columns = np.column_stack(
                [
                    reward,
                    reward**2,
                    (w - shrunk) * residual,
                    self.direct_quality + shrunk * self.residual_quality,
                    self.direct_cost + shrunk * self.residual_cost,
                ]
            )
            means = counts @ columns / n
            error = (means[:, 1] - means[:, 0] ** 2) / n + means[:, 2] ** 2
            better = error < best - 1e-15
            best = np.where(better, error, best)
            chosen = np.where(better, lam, chosen)
            values[better] = means[better, 3:5]
        return values, chosen


def _shrunk(weight: np.ndarray, lam: float) -> np.ndarray:
    """DRos's weights ``lam * w / (w**2 + lam)`` (``w`` itself where ``lam`` is infinite)."""
    if not np.isfinite(lam):
        return weight
    out: np.ndarray = lam * weight / (weight**2 + lam)
    return out


def on_policy(
    log: DecisionLog, *, cost_weight: float, scale: float, bootstrap: int = 200, seed: int = 0
) -> dict[str, Estimate]:
    """The logging policy's own value: the plain means of its outcomes (every estimator agrees)."""
    n = len(log.chosen)
    rewards = log.quality - cost_weight * log.cost / scale
    resampled = [counts @ rewards / n for counts in _resample_counts(n, bootstrap, seed)]
    low, high = np.percentile(np.concatenate(resampled), [2.5, 97.5])
    quality, cost = float(log.quality.mean()), float(log.cost.mean())
    return {
        estimator: Estimate(
            estimator,
            quality,
            cost,
            quality - cost_weight * cost / scale,
            float(low),
            float(high),
            float(n),
        )
        for estimator in ESTIMATORS
    }


def constant_policy(arm: int | None, k: int) -> Candidate:
    """The policy that picks ``arm`` every time (None: each model with probability 1 / k)."""
    row = np.full(k, 1.0 / k) if arm is None else np.eye(k)[arm]

    def policy(V: np.ndarray) -> np.ndarray:
        return np.tile(row, (len(V), 1))

    return policy


# -- a store's decision log ---------------------------------------------------------------
def log_from_store(store: StateStore, arms: Sequence[str]) -> DecisionLog:
    """The decision log in ``store``: every feedback event that carries its propensity.

    Failures learned as quality 0 and events of models not in ``arms`` are left out;
    ValueError when no event carries a propensity (logs written before propensities were kept).
    """
    events = [event for _, event in store.events_after(None) if isinstance(event, FeedbackEvent)]
    return log_from_events(events, arms, source=str(store))


def log_from_events(
    events: Sequence[FeedbackEvent], arms: Sequence[str], *, source: str = "the log"
) -> DecisionLog:
    """The decision log of ``events`` (in logging order): those that carry their propensity.

    Failures learned as quality 0 and events of models not in ``arms`` are left out.

    Args:
        events: Feedback events, oldest first.
        arms: The pool, in the order the log's model indices follow.
        source: What the events came from, for the error message.

    Raises:
        ValueError: No event carries a propensity, or the vectors differ in size.
    """
    index = {arm: j for j, arm in enumerate(arms)}
    in_force = _grades_in_force(events)
    rows = [
        replace(event, quality=in_force.get(event.decision_id, event.quality))
        for event in events
        if event.propensity is not None
        and not event.failure
        and event.replaces is None
        and event.arm in index
    ]
    if not rows:
        raise ValueError(
            f"{source} holds no feedback with a propensity for the models {list(arms)}: "
            "logs written before metallm kept propensities cannot be reweighted"
        )
    dims = {len(e.embedding) for e in rows}
    if len(dims) != 1:
        raise ValueError(f"the logged vectors have different sizes {sorted(dims)}")
    k = len(arms)
    shadows: dict[str, np.ndarray] = {}
    shadow_chosen: dict[str, np.ndarray] = {}
    for i, event in enumerate(rows):
        for name, choice in parse_shadows(event.shadows).items():
            if name not in shadows:
                shadows[name] = np.full((len(rows), k), np.nan)
                shadow_chosen[name] = np.full(len(rows), -1)
            if choice.arm in index and set(choice.probabilities) <= set(index):
                shadows[name][i] = 0.0
                for arm, p in choice.probabilities.items():
                    shadows[name][i, index[arm]] = p
                shadow_chosen[name][i] = index[choice.arm]
    return DecisionLog(
        list(arms),
        np.stack([np.asarray(e.embedding, dtype=np.float64) for e in rows]),
        np.array([index[e.arm] for e in rows]),
        np.array([float(e.propensity) for e in rows if e.propensity is not None]),
        np.array([e.quality for e in rows]),
        np.array([e.cost for e in rows]),
        shadows,
        shadow_chosen,
        [e.prompt for e in rows],
    )


def _grades_in_force(events: Sequence[FeedbackEvent]) -> dict[str, float]:
    """Per decision a later grade replaced, the quality in force (corrections, in log order).

    A correction counts only over a grade ranked below its own (``metallm.serving.GRADE_SOURCES``).
    """
    source: dict[str, str | None] = {}
    out: dict[str, float] = {}
    for event in events:
        if event.replaces is None:
            source[event.decision_id] = event.source
            continue
        base = base_id(event.decision_id)
        if base in source and source_rank(event.source) > source_rank(source[base]):
            source[base] = event.source
            out[base] = event.quality
    return out


def log_cost_scale(log: DecisionLog) -> float:
    """The reward's cost scale for a log: the priciest model's mean logged cost (1.0 if none)."""
    means = [
        log.cost[log.chosen == j].mean() for j in range(len(log.arms)) if (log.chosen == j).any()
    ]
    return float(max(means)) if means and max(means) > 0 else 1.0


def evaluate_log(
    log: DecisionLog,
    candidates: Mapping[str, Candidate | np.ndarray],
    *,
    cost_weight: float = 0.1,
    seed: int = 0,
) -> tuple[float, dict[str, dict[str, Estimate]]]:
    """Each candidate's estimates from ``log``, and the cost scale used.

    A candidate is a policy (vectors -> probabilities) or its probabilities for the logged
    rows, (n, k) (e.g. `text_candidate`).

    The scale is the priciest model's mean logged cost; the logging policy itself is added as
    ``"logged"`` (an on-policy estimate: its plain means).
    """
    scale = log_cost_scale(log)
    direct = cross_fitted(log, 5, seed)
    out = {
        label: estimate(
            log,
            policy if isinstance(policy, np.ndarray) else policy(log.vectors),
            cost_weight=cost_weight,
            scale=scale,
            seed=seed,
            direct=direct,
        )
        for label, policy in candidates.items()
    }
    out["logged"] = on_policy(log, cost_weight=cost_weight, scale=scale, seed=seed)
    return scale, out


@dataclass(frozen=True)
class ShadowReport:
    """A shadow router's estimated value from the live log, beside the live router's."""

    name: str
    rows: int
    """Logged decisions the shadow saw (with feedback and a propensity)."""
    agreement: float
    """The share of those where the shadow chose the live router's model."""
    shadow: dict[str, Estimate]
    live: dict[str, Estimate]
    """The live router's value on the same rows (on-policy: its plain means)."""

    @property
    def savings(self) -> float:
        """The share of the live router's cost the shadow would have saved (negative: more)."""
        live = self.live[PRIMARY].cost
        return 1.0 - self.shadow[PRIMARY].cost / live if live > 0 else 0.0

    @property
    def reward_gain(self) -> float:
        """The shadow's estimated reward (`PRIMARY`) minus the live router's."""
        return self.shadow[PRIMARY].reward - self.live[PRIMARY].reward


def _rows(log: DecisionLog, keep: np.ndarray) -> DecisionLog:
    return DecisionLog(
        log.arms,
        log.vectors[keep],
        log.chosen[keep],
        log.propensity[keep],
        log.quality[keep],
        log.cost[keep],
    )


def evaluate_shadows(
    log: DecisionLog, *, cost_weight: float = 0.1, seed: int = 0, min_rows: int = 20
) -> dict[str, ShadowReport]:
    """Each shadow router logged in ``log``: its estimates beside the live router's, on its rows.

    Shadows with fewer than ``min_rows`` logged rows are left out (too few to estimate).
    """
    scale = log_cost_scale(log)
    out = {}
    for name, probabilities in log.shadows.items():
        keep = ~np.isnan(probabilities).any(axis=1)
        if keep.sum() < min_rows:
            continue
        sub = _rows(log, keep)
        folds = min(5, int(keep.sum()) // 4)
        direct = cross_fitted(sub, folds, seed)
        shadow = estimate(
            sub, probabilities[keep], cost_weight=cost_weight, scale=scale, seed=seed, direct=direct
        )
        live = on_policy(sub, cost_weight=cost_weight, scale=scale, seed=seed)
        agreement = float((log.shadow_chosen[name][keep] == sub.chosen).mean())
        out[name] = ShadowReport(name, int(keep.sum()), agreement, shadow, live)
    return out


def render_shadows(reports: dict[str, ShadowReport]) -> str:
    """The shadows as a table: agreement, estimated reward beside the live router's, savings."""
    lines = [
        f"{'shadow':<20} {'rows':>6} {'agrees':>7} {'quality':>8} {'$/query':>10} "
        f"{'reward':>8} {'95% interval':>18} {'live reward':>11} {'savings':>8}"
    ]
    for name, r in reports.items():
        head = r.shadow[PRIMARY]
        lines.append(
            f"{name:<20} {r.rows:>6} {r.agreement:>7.1%} {head.quality:>8.4f} {head.cost:>10.6f} "
            f"{head.reward:>8.4f} [{head.reward_low:>7.4f}, {head.reward_high:>7.4f}] "
            f"{r.live[PRIMARY].reward:>11.4f} {r.savings:>8.1%}"
        )
    lines.append(
        f"(doubly robust estimates ({PRIMARY}) from the live log; savings: the share of the live "
        "router's cost the shadow would not have spent)"
    )
    return "\n".join(lines)


def text_candidate(choose: Callable[[str], str], log: DecisionLog) -> np.ndarray:
    """A rule ``text -> model`` as a candidate for ``log``: its choice per logged row, (n, k).

    Needs the query texts in the log (a store opened with ``store_prompts=True``).
    """
    prompts = log.prompts or []
    if len(prompts) != len(log.chosen) or any(p is None for p in prompts):
        raise ValueError(
            "the log holds no query texts: a rule text -> model needs a store opened with "
            "store_prompts=True while the traffic was logged"
        )
    index = {arm: j for j, arm in enumerate(log.arms)}
    out = np.zeros((len(prompts), len(log.arms)))
    for i, text in enumerate(prompts):
        model = choose(str(text))
        if model not in index:
            raise ValueError(
                f"the rule chose {model!r} for row {i}; the log's models are {log.arms}"
            )
        out[i, index[model]] = 1.0
    return out


def fixed_candidates(arms: Sequence[str]) -> dict[str, Candidate]:
    """Each model for every query (``"always <model>"``), and ``"random"``."""
    k = len(arms)
    out = {f"always {arm}": constant_policy(j, k) for j, arm in enumerate(arms)}
    out["random"] = constant_policy(None, k)
    return out


def router_candidates(
    router: Router, weights: Sequence[float], scale: float, *, label: str = "router"
) -> dict[str, Candidate]:
    """``router`` at each cost weight in ``weights`` (``"<label> p=<p>"``), greedy on its predictions."""
    k = len(router.arms)
    out: dict[str, Candidate] = {}
    for p in weights:

        def policy(V: np.ndarray, p: float = p) -> np.ndarray:
            predicted = router.predict(V, widths=False)
            chosen: np.ndarray = np.eye(k)[
                np.argmax(predicted.quality - p * predicted.cost / scale, axis=1)
            ]
            return chosen

        out[f"{label} p={p:g}"] = policy
    return out


def render_log_evaluation(
    name: str, log: DecisionLog, estimates: dict[str, dict[str, Estimate]]
) -> str:
    """The estimates as a table: the headline estimator's quality, cost and reward per candidate.

    With its interval, beside the other estimators' rewards and the effective sample size.
    """
    lines = [
        f"metallm evaluate --log: {name}, {len(log.chosen)} logged decisions with propensities",
        "",
        f"{'candidate':<28} {'quality':>8} {'$/query':>10} {'reward':>8} {'95% interval':>18} "
        f"{'IPS':>8} {'SNIPS':>8} {'DR':>8} {'ESS':>7}",
    ]
    for label, found in estimates.items():
        head = found[PRIMARY]
        lines.append(
            f"{label:<28} {head.quality:>8.4f} {head.cost:>10.6f} {head.reward:>8.4f} "
            f"[{head.reward_low:>7.4f}, {head.reward_high:>7.4f}] {found['IPS'].reward:>8.4f} "
            f"{found['SNIPS'].reward:>8.4f} {found['DR'].reward:>8.4f} "
            f"{head.effective_sample_size:>7.0f}"
        )
    lines.append(
        f"(quality, cost and reward: doubly robust with shrinkage ({PRIMARY}); the interval: its "
        "bootstrap 95%)"
    )
    return "\n".join(lines)
