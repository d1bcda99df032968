"""Reading and writing a router's state: an ``.npz`` of arrays plus a JSON header.

No pickle anywhere: arrays load with ``allow_pickle=False`` and the header is JSON stored
as bytes. Writes go to a temporary file in the same folder, are flushed to disk and then
renamed over the target, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

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


def write_state(path: str | Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write ``header`` and ``arrays`` to ``path``."""
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
    path: str | Path, *, data: bytes | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Header and arrays from ``path`` (or from ``data``, named ``path`` in errors).

    Raises :class:`StateFileError` saying what is wrong.
    """
    source = Path(path)
    if data is None and not source.is_file():
        raise StateFileError(source, "no such file")
    try:
        with np.load(source if data is None else io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise StateFileError(source, f"not a readable .npz file ({e})") from e
    raw = arrays.pop(_HEADER_KEY, None)
    if raw is None:
        raise StateFileError(source, "the JSON header is missing")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateFileError(source, f"the JSON header is corrupt ({e})") from e
    if not isinstance(header, dict):
        raise StateFileError(source, "the JSON header is not an object")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise StateFileError(
            source, f"format_version is {version!r}; this metallm reads version {FORMAT_VERSION}"
        )
    return header, arrays
