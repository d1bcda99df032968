"""A local, durable spool for feedback events while the store cannot be reached.

Each process appends to its own file (``<name>.<pid>.spool``), one JSON line per event, each
flushed to disk before ``record`` returns. When the store is back, the events are appended
to it in the order they were spooled; an event the store already holds (written before a
crash cut the spool's truncation short) is skipped, so nothing is lost or doubled. Spools of
processes that died are replayed by the next process that finds the store reachable.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

import numpy as np

from metallm.exceptions import DuplicateEventError
from metallm.state.base import FeedbackEvent, StateStore

__all__ = ["Spool"]

logger = logging.getLogger(__name__)


class Spool:
    """Feedback events waiting for the store, in files under ``folder`` named after ``name``."""

    def __init__(self, folder: str | Path, name: str) -> None:
        self.folder = Path(folder)
        self.name = name
        self.path = self.folder / f"{name}.{os.getpid()}.spool"
        self._maybe = (
            True  # look at the disk at start (a dead process's spool), then only after add()
        )

    def __len__(self) -> int:
        return sum(
            1 for path in self._files() for line in path.read_text().splitlines() if line.strip()
        )

    def add(self, event: FeedbackEvent) -> None:
        """Append one event durably (flushed and fsynced)."""
        self.folder.mkdir(parents=True, exist_ok=True)
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
            }
        )
        self._maybe = True
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def replay(self, store: StateStore) -> int:
        """Append every spooled event to ``store``, in order; how many were new there.

        Raises the store's :class:`~metallm.StoreError` when it fails again midway (the
        events not yet replayed stay spooled).
        """
        if not self._maybe:
            return 0
        replayed = 0
        for path in self._files():
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            for i, line in enumerate(lines):
                try:
                    event = _event(line)
                except (ValueError, KeyError) as e:
                    logger.warning("metallm skipped an unreadable spooled event in %s: %s", path, e)
                    continue
                try:
                    store.append(event)
                    replayed += 1
                except DuplicateEventError:
                    pass  # already in the store: spooled, written, then the process died
                except Exception:
                    path.write_text("".join(rest + "\n" for rest in lines[i:]), encoding="utf-8")
                    raise
            path.unlink()
        self._maybe = False
        if replayed:
            logger.warning("metallm replayed %d spooled feedback event(s) into %s", replayed, store)
        return replayed

    def _files(self) -> list[Path]:
        """This process's spool, and those of processes no longer running."""
        if not self.folder.is_dir():
            return []
        files = []
        for path in sorted(self.folder.glob(f"{self.name}.*.spool")):
            pid = path.suffixes[-2].lstrip(".") if len(path.suffixes) >= 2 else ""
            if path == self.path or (pid.isdigit() and not _alive(int(pid))):
                files.append(path)
        return files


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
    )
