"""Cross-validation's shared fits: candidates that differ only in penalties fit once per fold."""

from __future__ import annotations

import numpy as np

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
