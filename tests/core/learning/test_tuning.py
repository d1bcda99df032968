"""Cross-validation's shared fits: candidates that differ only in penalties fit once per fold."""

from __future__ import annotations

import numpy as np
import pytest

from metallm.learning import DEFAULT_CANDIDATES, PromptLengthFeatures
from metallm.learning._tuning import SharedFits, out_of_fold, tune_features


def _table(n: int = 240, dim: int = 24, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = (rng.random((n, 3)) < 1 / (1 + np.exp(-4 * X[:, :3]))).astype(float)
    C = np.tile([0.001, 0.004, 0.0005], (n, 1))
    return X, Q, C


def test_shared_fits_give_every_candidate_the_same_predictions_as_fitting_it_alone() -> None:
    X, Q, C = _table()
    fits = SharedFits()
    candidates = [*DEFAULT_CANDIDATES, *(PromptLengthFeatures(c) for c in DEFAULT_CANDIDATES[:2])]
    for candidate in candidates:
        Xc = (
            np.hstack([X, np.full((len(X), 1), 0.3)])
            if isinstance(candidate, PromptLengthFeatures)
            else X
        )
        shared = out_of_fold(candidate, Xc, Q, C, seed=3, fits=fits)
        alone = out_of_fold(candidate, Xc, Q, C, seed=3, fits=SharedFits())
        np.testing.assert_allclose(shared[0], alone[0], atol=1e-10)
        np.testing.assert_allclose(shared[1], alone[1], atol=1e-10)
    # one PCA and one k-means per fold and input, not one per candidate and fold
    assert len(fits) == 5 * 2 + 5


def test_tuning_scores_each_candidate_with_its_own_penalties() -> None:
    X, Q, C = _table(seed=1)
    tuning = tune_features(X, Q, C, seed=0)
    aiqs = [score.aiq for score in tuning.scores]
    assert len(set(np.round(aiqs, 12))) > 1  # penalties still differ after sharing the fits
    chosen = next(s for s in tuning.scores if s.features is tuning.chosen)
    assert chosen.aiq == max(s.aiq for s in tuning.scores if s.eligible)


def test_fold_gain_tells_a_lead_on_every_fold_from_none() -> None:
    from metallm.learning._tuning import fold_gain

    X, Q, C = _table(400)
    rng = np.random.default_rng(1)
    cost = np.tile(C[:1], (len(Q), 1))
    oracle = (Q + 0.01 * rng.random(Q.shape), cost)  # ranks each row's models as they did
    noise = (rng.random(Q.shape), cost)
    same = fold_gain(noise, noise, Q, C, folds=5, seed=0)
    assert same == (0.0, 0.0)
    mean, se = fold_gain(oracle, noise, Q, C, folds=5, seed=0)
    assert mean > 0.1 and mean > 3 * se  # ahead on every fold, far beyond the folds' spread
    back, back_se = fold_gain(noise, oracle, Q, C, folds=5, seed=0)
    assert back == -mean and back_se == se


def test_a_tuning_can_choose_another_candidate_and_drops_its_predictions_when_done() -> None:
    X, Q, C = _table()
    tuning = tune_features(X, Q, C, candidates=DEFAULT_CANDIDATES[:2])
    other = next(c.features for c in tuning.scores if c.features is not tuning.chosen)
    switched = tuning.choose(other)
    assert switched.chosen is other and switched.chosen_score.features is other
    assert not np.array_equal(switched.predicted_quality, tuning.predicted_quality)
    done = tuning.done()
    assert done.predictions == () and done.chosen is tuning.chosen
    with pytest.raises(ValueError, match="kept predictions"):
        done.choose(other)
