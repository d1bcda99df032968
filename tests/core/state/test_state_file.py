"""Saving and loading a router: round trip, atomic writes, corrupt and mismatched files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from metallm import EpsilonGreedy, LinUCB, Router, StateFileError

ARMS = ["a", "b", "c"]


@pytest.fixture
def trained() -> Router:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    return Router(
        ARMS, embedder=None, policy=LinUCB(alpha=0.4, l2=2.0), cost_weight=0.3, seed=1
    ).fit(X, rng.random((80, 3)), rng.random((80, 3)) / 100)


def test_round_trip_keeps_the_learned_state(tmp_path, trained):
    path = trained.save(tmp_path / "router.npz")
    loaded = Router.load(path, embedder=None, seed=1)
    X = np.random.default_rng(5).normal(size=(20, 5))
    before, after = trained.predict(X), loaded.predict(X)
    np.testing.assert_allclose(before.quality, after.quality, atol=1e-12)
    np.testing.assert_allclose(before.width, after.width, atol=1e-12)
    assert loaded.policy == LinUCB(alpha=0.4, l2=2.0)
    assert loaded.cost_weight == 0.3
    assert loaded.cost_scale == pytest.approx(trained.cost_scale)
    assert loaded.n_updates == trained.n_updates
    assert [d.arm for d in loaded.select_batch(X)] == [d.arm for d in trained.select_batch(X)]


def test_a_cold_router_round_trips(tmp_path):
    path = Router(ARMS, embedder=None, policy=EpsilonGreedy(0.2)).save(tmp_path / "cold.npz")
    loaded = Router.load(path, embedder=None)
    assert loaded.dimension is None and loaded.policy == EpsilonGreedy(0.2)


def test_the_write_is_atomic_and_leaves_no_temp_files(tmp_path, trained):
    path = tmp_path / "router.npz"
    trained.save(path)
    trained.save(path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["router.npz"]


def test_the_file_holds_no_pickle(tmp_path, trained):
    path = trained.save(tmp_path / "router.npz")
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)


def _rewrite(path, mutate):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    mutate(arrays)
    np.savez(path, **arrays)


def _header(arrays):
    return json.loads(arrays["header_json"].tobytes())


def _set_header(arrays, header):
    arrays["header_json"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "not a readable .npz file"),
        (lambda p: p.write_bytes(b"garbage" * 50), "not a readable .npz file"),
        (lambda p: _rewrite(p, lambda a: a.pop("header_json")), "the JSON header is missing"),
        (
            lambda p: _rewrite(
                p, lambda a: a.update(header_json=np.frombuffer(b"{nope", np.uint8))
            ),
            "header is corrupt",
        ),
        (
            lambda p: _rewrite(p, lambda a: _set_header(a, {**_header(a), "format_version": 99})),
            "format_version is 99",
        ),
        (
            lambda p: _rewrite(p, lambda a: _set_header(a, {**_header(a), "arms": ["a", "b"]})),
            "do not match 2 arms",
        ),
        (lambda p: _rewrite(p, lambda a: a.pop("B")), "arrays A and B are missing"),
        (lambda p: _rewrite(p, lambda a: a["A"].__setitem__((0, 0, 0), np.nan)), "NaN or inf"),
        (
            lambda p: _rewrite(p, lambda a: a["A"].__setitem__(0, -np.eye(6))),
            "not positive definite",
        ),
        (
            lambda p: _rewrite(p, lambda a: _set_header(a, {"format_version": 1})),
            "header is incomplete",
        ),
    ],
)
def test_corrupt_or_mismatched_files_raise_a_typed_error_naming_the_file(
    tmp_path, trained, damage, problem
):
    path = trained.save(tmp_path / "router.npz")
    damage(path)
    with pytest.raises(StateFileError, match=problem) as info:
        Router.load(path, embedder=None)
    assert info.value.path == path
    assert str(path) in str(info.value)


def test_a_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(StateFileError, match="no such file"):
        Router.load(tmp_path / "absent.npz", embedder=None)


def test_a_zip_without_arrays_is_rejected(tmp_path):
    path = tmp_path / "empty.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(StateFileError):
        Router.load(path, embedder=None)
