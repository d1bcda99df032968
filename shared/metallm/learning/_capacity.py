"""What a fit serves: the feature map and kNN blend a routing table's rows choose.

`choose_capacity` is the part of ``fit`` that decides, from full-information rows alone,
how much capacity the router gets: a feature map chosen by cross-validation among the
candidates (`tune_features`), and the kNN blend weighed over the best linear one, kept only
where it is ahead of the chosen map beyond the folds' noise (`fold_gain`). The bandit then
builds its statistics on what this returns; nothing here touches them.

>>> import numpy as np
>>> from metallm.learning import ProjectedFeatures
>>> rng = np.random.default_rng(0)
>>> X, Q, C = rng.normal(size=(60, 4)), rng.random((60, 2)), rng.random((60, 2))
>>> capacity = choose_capacity(X, X, Q, C, features=ProjectedFeatures(2), tune=False)
>>> capacity.features.fitted, capacity.neighbours is None, capacity.tuning is None
(True, True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from metallm.learning._features import FeatureMap
from metallm.learning._neighbours import NEIGHBOUR_KS, NEIGHBOUR_WEIGHTS, NeighbourQuality
from metallm.learning._tuning import (
    DEFAULT_CANDIDATES,
    NeighbourChoice,
    Tuning,
    fold_gain,
    is_linear,
    tune_features,
    tune_neighbours,
)

__all__ = ["Capacity", "choose_capacity"]

TIE = 1e-9
"""An AIQ lead this small is float rounding (both route every row alike): a tie."""


@dataclass(frozen=True)
class Capacity:
    """What a fit serves, and the cross-validation behind it.

    Attributes:
        features: The feature map, fitted on every row.
        neighbours: The kNN blend it serves, if any (fitted on the rows).
        tuning: The feature maps' cross-validation (None: not tuned), its predictions dropped.
        blend_choice: How the blend's ``k`` and weight were chosen, and whether an offered
            blend was kept (None: no blend was weighed).
    """

    features: FeatureMap
    neighbours: NeighbourQuality | None
    tuning: Tuning | None
    blend_choice: NeighbourChoice | None


def _tune_blend(
    blend: NeighbourQuality,
    parts: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    over: Tuning,
    seed: int,
) -> NeighbourChoice:
    """The blend's ``k`` and weight by cross-validation over ``over``'s chosen map."""
    return tune_neighbours(
        blend.vectors(parts),
        quality,
        cost,
        over,
        ks=NEIGHBOUR_KS if blend.k_setting is None else (blend.k_setting,),
        weights=NEIGHBOUR_WEIGHTS if blend.weight_setting is None else (blend.weight_setting,),
        seed=seed,
        max_rows=blend.max_rows,
    )


def _weigh_blend(
    blend: NeighbourQuality,
    parts: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    tuning: Tuning,
    seed: int,
) -> tuple[FeatureMap, NeighbourQuality | None, Tuning, NeighbourChoice | None]:
    """Weigh an offered blend over the best linear candidate against the chosen map.

    The blend and a nonlinear map both add local detail; running both would double a
    select's time for gains within the seeds' noise (docs/benchmarks.md), so the blend
    competes over the best linear map and is kept, with that map, only where it is ahead
    of the chosen map fold by fold by more than one standard error (`fold_gain`): on the
    shared tables a blend ahead by a tenth of a point over all folds, within that noise,
    was behind on the test rows every time.

    Returns:
        The map to serve, the blend (None: left out), the tuning as served, and the blend's
        cross-validation (None: no linear candidate to blend over).
    """
    base = tuning.best(is_linear)
    if base is None:  # no linear candidate: nothing to blend over
        return tuning.chosen, None, tuning, None
    blend.fit(parts, quality)  # its memory (and projection) do not depend on k or weight
    over = tuning.choose(base.features)
    choice = _tune_blend(blend, parts, quality, cost, over, seed)
    gain = fold_gain(
        (choice.predicted_quality, over.predicted_cost),
        (tuning.predicted_quality, tuning.predicted_cost),
        quality,
        cost,
        folds=tuning.folds,
        seed=seed,
    )
    kept = choice.weight > 0.0 and gain[0] > max(gain[1], TIE)
    choice = replace(choice, kept=kept, gain=gain)
    if not kept:
        return tuning.chosen, None, tuning, choice
    blend.k, blend.weight = choice.k, choice.weight
    return base.features, blend, over.choose(base.features, choice.predicted_quality), choice


def choose_capacity(
    embeddings: np.ndarray,
    parts: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    *,
    features: FeatureMap,
    tune: bool,
    neighbours: NeighbourQuality | None = None,
    blend: NeighbourQuality | None = None,
    candidates: Sequence[FeatureMap] = DEFAULT_CANDIDATES,
    seed: int = 0,
) -> Capacity:
    """The feature map, and the kNN blend, a fit on these full-information rows serves.

    Args:
        embeddings: (n, dim) what the feature maps read (the prompt's length included, where
            the router reads it).
        parts: (n, d) the embeddings without that length (what a kNN memory remembers).
        quality: (n, k).
        cost: (n, k) USD.
        features: The map in use (served when ``tune`` is False; fitted again if unfitted or
            not learned from data).
        tune: Choose the map by cross-validation among ``candidates``.
        neighbours: The caller's blend, served over whatever map is chosen (its unset ``k``
            and weight chosen when ``tune``); ignored when ``blend`` is offered.
        blend: A blend to weigh (``tune`` only): a fresh copy of it is kept only where it
            wins (`_weigh_blend`).
        candidates: The maps to choose among.
        seed: The folds' and the fits' seed.

    Returns:
        What to serve (`Capacity`).
    """
    tuning = (
        tune_features(embeddings, quality, cost, candidates=tuple(candidates), seed=seed)
        if tune
        else None
    )
    chosen = features if tuning is None else tuning.chosen
    choice = None
    if tuning is not None and blend is not None:
        chosen, neighbours, tuning, choice = _weigh_blend(
            blend.fresh(), parts, quality, cost, tuning, seed
        )
    elif neighbours is not None:  # the caller's: over the chosen map, always
        neighbours.fit(parts, quality)
        if tuning is not None and (
            neighbours.k_setting is None or neighbours.weight_setting is None
        ):
            choice = _tune_blend(neighbours, parts, quality, cost, tuning, seed)
            neighbours.k, neighbours.weight = choice.k, choice.weight
    if tune or not chosen.fitted or not getattr(chosen, "learned", True):
        # a cold projection is random until fitted: fit() finds its principal directions
        chosen = chosen.fit(embeddings, seed=seed)
    return Capacity(chosen, neighbours, None if tuning is None else tuning.done(), choice)
