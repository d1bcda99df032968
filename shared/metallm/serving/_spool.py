"""A local, durable spool for feedback events while the store cannot be reached.

Each process appends to its own file (``<name>.<pid>.spool``), one JSON line per event, each
flushed to disk before ``record`` returns. When the store is back, the events are appended
to it in the order they were spooled; an event the store already holds (written before a
crash cut the spool's clean-up short) is skipped, so nothing is lost or doubled. Spools of
processes that died are replayed by the next process that finds the store reachable.

Threads and processes: appending and handing a file over to the replay happen under one
lock, and the hand-over is a rename (``<name>.<pid>.<ns>.taken``), so an event spooled while
another thread replays goes to a fresh file and is never cut by the replay's clean-up. One
process at a time replays a folder (an ``flock`` on ``<name>.lock`` beside the files).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from metallm.exceptions import DuplicateEventError, SpoolFullError
from metallm.state import (
    FeedbackEvent,
    StateStore,
)

__all__ = ["Spool", "SpoolFullError"]

logger = logging.getLogger(__name__)


class Spool:
    """Feedback events waiting for the store, in files under ``folder`` named after ``name``.

    Args:
        folder: Where the spool files live (created on the first event).
        name: The store's name for its files, so stores sharing a folder keep apart.

    >>> import tempfile
    >>> spool = Spool(tempfile.mkdtemp(), "demo")
    >>> len(spool), spool.status()["events"]
    (0, 0)
    """

    def __init__(self, folder: str | Path, name: str) -> None:
        self.folder = Path(folder)
        self.name = name
        self.path = self.folder / f"{name}.{os.getpid()}.spool"
        self._lock = threading.Lock()
        # look at the disk at start (a dead process's spool), then only after add()
        self._maybe = True
        self.unreadable_lines = 0
        """Spooled lines that could not be read back (a line cut by a crash); skipped."""

    def __len__(self) -> int:
        return int(self.status()["events"])

    def status(self) -> dict[str, Any]:
        """What waits here: ``events``, ``files`` and ``oldest_s`` (age of the oldest file, s)."""
        events, oldest = 0, None
        files = self._files()
        now = time.time()
        for path in files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
                age = now - path.stat().st_mtime
            except OSError:  # replayed and removed meanwhile
                continue
            events += sum(1 for line in text.splitlines() if line.strip())
            oldest = age if oldest is None else max(oldest, age)
        return {
            "events": events,
            "files": len(files),
            "oldest_s": None if oldest is None else round(oldest, 3),
        }

    def add(self, event: FeedbackEvent) -> None:
        """Append one event durably (flushed and fsynced) before returning.

        Raises:
            SpoolFullError: the line could not be written (disk full, folder read-only); the
                file is cut back to its last whole line, so the events before it stay readable.
        """
        line = json.dumps(
            {
                "decision_id": event.decision_id,
                "arm": event.arm,
                "embedding": base64.b64encode(
                    np.asarray(event.embedding, dtype=np.float64).tobytes()
                ).decode(),
                "quality": event.quality,
                "cost": event.cost,
                "time": event.time,
                "prompt": event.prompt,
                "failure": event.failure,
                "propensity": event.propensity,
                "shadows": event.shadows,
                "latency": event.latency,
                "source": event.source,
                "replaces": event.replaces,
            }
        )
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as handle:
                    size = handle.tell()
                    try:
                        handle.write(line + "\n")
                        handle.flush()
                        os.fsync(handle.fileno())
                    except OSError:
                        with contextlib.suppress(OSError):
                            os.truncate(self.path, size)
                        raise
            except OSError as e:
                raise SpoolFullError(
                    f"feedback for decision {event.decision_id} could not be spooled in "
                    f"{self.folder} ({type(e).__name__}: {e.strerror or e}) while the store is "
                    "unreachable; nothing was recorded: free disk space there (or point the "
                    "store's spool_dir elsewhere) and record it again"
                ) from e
            self._maybe = True

    def replay(self, store: StateStore) -> int:
        """Append every spooled event to ``store``, in order; how many were new there.

        Returns:
            How many events the store did not hold yet (0 when another process is replaying).

        Raises:
            StoreError: the store failed again midway (the events not yet replayed stay
                spooled, in order, for the next replay).
        """
        if not self._maybe or not self.folder.is_dir():
            return 0
        replayed = 0
        with self._folder_lock() as mine:
            if not mine:
                return 0  # another process replays this folder now; ours waits for next time
            with self._lock:  # hand our file over: later events go to a fresh one
                self._maybe = False
                if self.path.exists():
                    os.replace(self.path, self._taken_path())
            try:
                for path in self._files(include_own=False):
                    replayed += self._replay_file(path, store)
            except BaseException:
                self._maybe = True
                raise
        if replayed:
            logger.warning("metallm replayed %d spooled feedback event(s) into %s", replayed, store)
        return replayed

    def _replay_file(self, path: Path, store: StateStore) -> int:
        try:
            lines = [
                line
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
                if line.strip()
            ]
        except FileNotFoundError:
            return 0
        replayed = 0
        for i, line in enumerate(lines):
            try:
                event = _event(line)
            except (ValueError, KeyError, TypeError) as e:
                self.unreadable_lines += 1
                logger.warning("metallm skipped an unreadable spooled event in %s: %s", path, e)
                continue
            try:
                store.append(event)
                replayed += 1
            except DuplicateEventError:
                pass  # already in the store: spooled, written, then the process died
            except BaseException:
                _rewrite(path, lines[i:])
                raise
        path.unlink(missing_ok=True)
        return replayed

    def _taken_path(self) -> Path:
        return self.folder / f"{self.name}.{os.getpid()}.{time.time_ns()}.taken"

    @contextlib.contextmanager
    def _folder_lock(self) -> Iterator[bool]:
        """Whether this process holds the folder's replay lock (never waits for it)."""
        with open(self.folder / f"{self.name}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _files(self, *, include_own: bool = True) -> list[Path]:
        """Files to replay, oldest first: handed-over ones, then dead processes' spools.

        ``include_own``: this process's live file too (what `status` counts).
        """
        if not self.folder.is_dir():
            return []
        taken: list[tuple[int, Path]] = []
        spools: list[Path] = []
        prefix = f"{self.name}."
        for path in self.folder.iterdir():
            if not path.name.startswith(prefix):
                continue
            parts = path.name[len(prefix) :].split(".")
            if (
                len(parts) == 3
                and parts[2] == "taken"
                and parts[0].isdigit()
                and parts[1].isdigit()
            ):
                if int(parts[0]) == os.getpid() or not _alive(int(parts[0])):
                    taken.append((int(parts[1]), path))
            elif len(parts) == 2 and parts[1] == "spool" and parts[0].isdigit():
                if path == self.path:
                    if include_own:
                        spools.append(path)
                elif not _alive(int(parts[0])):
                    spools.append(path)
        return [path for _, path in sorted(taken)] + sorted(spools)


def _rewrite(path: Path, lines: list[str]) -> None:
    """Replace ``path`` with ``lines`` atomically (what is left of a replay that failed)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _event(line: str) -> FeedbackEvent:
    data = json.loads(line)
    return FeedbackEvent(
        str(data["decision_id"]),
        str(data["arm"]),
        np.frombuffer(base64.b64decode(data["embedding"]), dtype=np.float64),
        float(data["quality"]),
        float(data["cost"]),
        float(data["time"]),
        data.get("prompt"),
        bool(data.get("failure", False)),
        None if data.get("propensity") is None else float(data["propensity"]),
        data.get("shadows") if isinstance(data.get("shadows"), str) else None,
        None if data.get("latency") is None else float(data["latency"]),
        data.get("source") if isinstance(data.get("source"), str) else None,
        None if data.get("replaces") is None else float(data["replaces"]),
    )
