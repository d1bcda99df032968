"""Saving and loading a router: round trip, atomic writes, corrupt and mismatched files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from metallm import EpsilonGreedy, LinUCB, Router
from metallm.exceptions import StateFileError

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


def _rewrite(path, mutate, *, sign=True):
    """Change a saved file as a writer would; ``sign``: with a checksum that fits the change
    (so the reader's own checks are what is tested), else keeping the old one."""
    from metallm.state._state_file import _checksum

    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    mutate(arrays)
    if sign and "header_json" in arrays:
        try:
            header = json.loads(arrays["header_json"].tobytes())
        except ValueError:
            header = None
        if isinstance(header, dict) and "checksum" in header:
            body = {k: v for k, v in arrays.items() if k != "header_json"}
            header["checksum"] = _checksum(header, body)
            _set_header(arrays, header)
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
            "do not (match 2 arms|fit 2 models)",
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


def test_a_header_edited_after_saving_is_refused_by_its_checksum(tmp_path, trained):
    path = trained.save(tmp_path / "router.npz")
    swapped = list(reversed(trained.arms))
    _rewrite(path, lambda a: _set_header(a, {**_header(a), "arms": swapped}), sign=False)
    with pytest.raises(StateFileError, match="checksum does not match"):
        Router.load(path, embedder=None)


def test_a_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(StateFileError, match="no such file"):
        Router.load(tmp_path / "absent.npz", embedder=None)


def test_a_zip_without_arrays_is_rejected(tmp_path):
    path = tmp_path / "empty.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(StateFileError):
        Router.load(path, embedder=None)


# -- hostile files: typed errors within bounded memory ----------------------------------------
def _npy_header(shape: tuple[int, ...]) -> bytes:
    import io as _io

    buffer = _io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _peak_while(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _saved(tmp_path):
    router = Router(["a", "b"], embedder=None, seed=0)
    router.record(router.select(np.ones(4)).id, quality=1.0, cost=0.0)
    return router.save(tmp_path / "router.npz")


def test_an_array_claiming_75_gib_is_refused_before_allocating(tmp_path):
    import zipfile

    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("A.npy", _npy_header((100_000, 100_000)) + b"\x00" * 64)  # 75 GiB claimed
    with pytest.raises(StateFileError, match=r"claims a \(100000, 100000\) array"):
        Router.load(path, embedder=None)
    assert _peak_while(lambda: _raises_state_error(path)) < 50 * 2**20


def _raises_state_error(path):
    try:
        Router.load(path, embedder=None)
    except StateFileError:
        return
    raise AssertionError("no StateFileError")


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path):
    import zipfile

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "A.npy", _npy_header((16, 2**20)) + b"\x00" * (128 * 2**20)
        )  # 128 MiB of zeros
    assert path.stat().st_size < 1 * 2**20
    with pytest.raises(StateFileError, match="inflates .*x: not a state file"):
        Router.load(path, embedder=None)
    assert _peak_while(lambda: _raises_state_error(path)) < 50 * 2**20


def test_a_deeply_nested_header_is_refused_without_recursing(tmp_path):
    import io as _io
    import zipfile

    path = tmp_path / "nested.npz"
    header = np.frombuffer(("[" * 100_000 + "]" * 100_000).encode(), dtype=np.uint8)
    buffer = _io.BytesIO()
    np.save(buffer, header)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("header_json.npy", buffer.getvalue())
    with pytest.raises(StateFileError, match="nests deeper than 32 levels"):
        Router.load(path, embedder=None)


def test_a_good_file_still_loads_exactly(tmp_path):
    path = _saved(tmp_path)
    again = Router.load(path, embedder=None)
    assert again.n_updates == 1 and sum(again.counts.values()) == 1
