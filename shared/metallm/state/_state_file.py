"""Reading and writing a router's state: an ``.npz`` of arrays plus a JSON header.

No pickle anywhere: arrays load with ``allow_pickle=False`` and the header is JSON stored
as bytes. Writes go to a temporary file in the same folder, are flushed to disk and then
renamed over the target, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from metallm.exceptions import StateFileError

FORMAT_VERSION = 1
_HEADER_KEY = "header_json"

MAX_ARRAY_BYTES = 1 << 30
"""The largest array a state file may hold (1 GiB; a 10-model router with 417 features needs 14 MB)."""
MAX_TOTAL_BYTES = 2 << 30
"""All arrays of a state file together, uncompressed."""
MAX_COMPRESSION_RATIO = 200
"""Uncompressed / compressed size of one entry beyond which it is a zip bomb, not a state file."""
MAX_HEADER_BYTES = 1 << 20
MAX_HEADER_DEPTH = 32


def _checked_entries(
    archive: zipfile.ZipFile, source: Path, max_total: int = MAX_TOTAL_BYTES
) -> list[zipfile.ZipInfo]:
    """The archive's entries, refused before anything is inflated when their sizes are absurd."""
    entries = archive.infolist()
    total = 0
    for info in entries:
        if not info.filename.endswith(".npy") or "/" in info.filename:
            raise StateFileError(source, f"unexpected entry {info.filename!r} in the archive")
        if info.file_size > MAX_ARRAY_BYTES:
            raise StateFileError(
                source, f"{info.filename} claims {info.file_size} bytes (at most {MAX_ARRAY_BYTES})"
            )
        if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
            raise StateFileError(
                source,
                f"{info.filename} inflates {info.file_size / info.compress_size:.0f}x: not a state file",
            )
        total += info.file_size
    if total > max_total:
        raise StateFileError(source, f"the arrays claim {total} bytes in all (at most {max_total})")
    return entries


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: Path) -> np.ndarray:
    """One ``.npy`` entry, its declared shape checked against its real size before allocating."""
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(handle, max_header_size=10_000)
        if dtype.hasobject:
            raise StateFileError(source, f"{info.filename} holds Python objects (never loaded)")
        claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if claimed > info.file_size:
            raise StateFileError(
                source,
                f"{info.filename} claims a {shape} array that its {info.file_size} bytes cannot hold",
            )
        data = handle.read(claimed)
    if len(data) != claimed:
        raise StateFileError(source, f"{info.filename} is truncated")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C").copy()


def _depth(text: str) -> int:
    """How deep the JSON in ``text`` nests (brackets outside strings), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


_CHECKSUM_KEY = "checksum"


def _checksum(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the header (less its checksum) and every array's name, type, shape and bytes.

    It binds the header's model names to the arrays' rows, so a header edited after the fact
    (models swapped, say) is refused instead of attributing statistics to the wrong models.
    """
    digest = hashlib.sha256()
    body = {k: v for k, v in header.items() if k != _CHECKSUM_KEY}
    digest.update(json.dumps(body, sort_keys=True).encode("utf-8"))
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"\n{name}:{array.dtype.str}:{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_state(path: str | Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write ``header`` and ``arrays`` to ``path`` (the header checksummed with them).

    Args:
        path: The file.
        header: JSON-able fields.
        arrays: Named arrays.
    """
    header = {**header, _CHECKSUM_KEY: _checksum(header, arrays)}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        _HEADER_KEY: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    }
    payload.update(arrays)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            buffer = io.BytesIO()
            np.savez(buffer, **payload)
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def read_state(
    path: str | Path, *, data: bytes | None = None, max_total_bytes: int = MAX_TOTAL_BYTES
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Header and arrays from ``path`` (or from ``data``, named ``path`` in errors).

    ``max_total_bytes`` bounds what the arrays may inflate to, checked before inflating.
    Raises `StateFileError` saying what is wrong.

    Args:
        path: The file (or the name of ``data`` in errors).
        data: The bytes to read instead of the file.
        max_total_bytes: The most the arrays may inflate to.
    """
    source = Path(path)
    if data is None and not source.is_file():
        raise StateFileError(source, "no such file")
    try:
        with zipfile.ZipFile(source if data is None else io.BytesIO(data)) as archive:
            arrays = {
                info.filename.removesuffix(".npy"): _read_array(archive, info, source)
                for info in _checked_entries(archive, source, max_total_bytes)
            }
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise StateFileError(source, f"not a readable .npz file ({e})") from e
    raw = arrays.pop(_HEADER_KEY, None)
    if raw is None:
        raise StateFileError(source, "the JSON header is missing")
    if raw.size > MAX_HEADER_BYTES:
        raise StateFileError(
            source, f"the JSON header claims {raw.size} bytes (at most {MAX_HEADER_BYTES})"
        )
    text = raw.tobytes().decode("utf-8", errors="replace")
    if _depth(text) > MAX_HEADER_DEPTH:
        raise StateFileError(source, f"the JSON header nests deeper than {MAX_HEADER_DEPTH} levels")
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise StateFileError(source, f"the JSON header is corrupt ({e})") from e
    if not isinstance(header, dict):
        raise StateFileError(source, "the JSON header is not an object")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise StateFileError(
            source, f"format_version is {version!r}; this metallm reads version {FORMAT_VERSION}"
        )
    checksum = header.get(_CHECKSUM_KEY)  # absent in files written before it was kept
    if checksum is not None and checksum != _checksum(header, arrays):
        raise StateFileError(
            source,
            "its checksum does not match its header and arrays: the file was edited or damaged "
            "after it was written (restore it, or fit the router again)",
        )
    return header, arrays
