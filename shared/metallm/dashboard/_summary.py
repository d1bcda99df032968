"""What the dashboard shows, folded from a store's event log as new events arrive.

Every worker sharing a store appends its feedback events (graded answers, and provider
failures learned as quality 0) to one log; `LogSummary` reads the events after the last one it
saw and keeps running totals: calls, spend and quality per model and per day, failures, the
slowest models, and entries that could not be read. The baseline is what the same calls
would have cost on the best model (the highest mean quality graded), at that model's mean
observed cost per call: an estimate from the log, labelled as such.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from metallm.state import FeedbackEvent, StateStore

__all__ = ["LogSummary"]


class LogSummary:
    """Running totals of a store's event log (thread-safe; ``update`` reads only new events).

    Args:
        store: The store every worker writes to.

    >>> from metallm import SQLiteStore
    >>> import tempfile, os
    >>> summary = LogSummary(SQLiteStore(os.path.join(tempfile.mkdtemp(), "s.sqlite")))
    >>> summary.update()
    0
    >>> summary.snapshot()["totals"]["calls"]
    0
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._position: str | None = None
        self._calls: dict[str, int] = defaultdict(int)
        self._spend: dict[str, float] = defaultdict(float)
        self._quality: dict[str, float] = defaultdict(float)
        self._graded: dict[str, int] = defaultdict(int)
        self._failures: dict[str, int] = defaultdict(int)
        self._latency: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self._days: dict[str, dict[str, Any]] = {}
        self._unreadable = 0
        self._updated = 0.0

    def update(self) -> int:
        """Fold the events appended since the last update.

        Returns:
            How many events were read.
        """
        read = 0
        with self._lock:
            for position, event in self.store.events_after(self._position):
                self._position = position
                read += 1
                if isinstance(event, FeedbackEvent):
                    self._fold(event)
                else:
                    self._unreadable += 1
            self._updated = time.time()
        return read

    def _fold(self, event: FeedbackEvent) -> None:
        arm = event.arm
        if event.replaces is not None:  # a later grade replacing one in force: not a new call
            self._quality[arm] += event.quality - event.replaces
            return
        day = datetime.fromtimestamp(event.time, tz=timezone.utc).strftime("%Y-%m-%d")
        bucket = self._days.setdefault(
            day, {"calls": defaultdict(int), "spend": defaultdict(float), "failures": 0}
        )
        self._calls[arm] += 1
        bucket["calls"][arm] += 1
        if event.failure:
            self._failures[arm] += 1
            bucket["failures"] += 1
            return
        self._spend[arm] += event.cost
        bucket["spend"][arm] += event.cost
        self._graded[arm] += 1
        self._quality[arm] += event.quality
        if event.latency is not None:
            self._latency[arm][0] += event.latency
            self._latency[arm][1] += 1

    def snapshot(self) -> dict[str, Any]:
        """Everything the page draws, as JSON-able data.

        Returns:
            ``totals`` (calls, graded, failures, spend_usd, baseline_usd, saved_usd,
            unreadable), ``models`` (per model: calls, share, spend, mean quality, failures,
            mean latency), ``days`` (per UTC day: calls and spend per model, baseline spend,
            failures), ``best_model`` and ``updated`` (epoch seconds).
        """
        with self._lock:
            models = sorted(self._calls)
            calls = sum(self._calls.values())
            quality = {m: self._quality[m] / self._graded[m] for m in models if self._graded[m]}
            best = max(quality, key=lambda m: quality[m]) if quality else None
            best_cost = self._spend[best] / self._graded[best] if best else 0.0
            days = []
            for day in sorted(self._days):
                bucket = self._days[day]
                day_calls = sum(bucket["calls"].values())
                days.append(
                    {
                        "day": day,
                        "calls": {m: bucket["calls"].get(m, 0) for m in models},
                        "spend_usd": {m: bucket["spend"].get(m, 0.0) for m in models},
                        "baseline_usd": (day_calls - bucket["failures"]) * best_cost,
                        "failures": bucket["failures"],
                    }
                )
            spend = sum(self._spend.values())
            graded = sum(self._graded.values())
            baseline = graded * best_cost
            return {
                "totals": {
                    "calls": calls,
                    "graded": graded,
                    "failures": sum(self._failures.values()),
                    "spend_usd": spend,
                    "baseline_usd": baseline,
                    "saved_usd": baseline - spend,
                    "unreadable": self._unreadable,
                },
                "models": {
                    m: {
                        "calls": self._calls[m],
                        "share": self._calls[m] / calls if calls else 0.0,
                        "spend_usd": self._spend[m],
                        "quality": quality.get(m),
                        "failures": self._failures[m],
                        "latency_s": (
                            self._latency[m][0] / self._latency[m][1]
                            if self._latency[m][1]
                            else None
                        ),
                    }
                    for m in models
                },
                "days": days,
                "best_model": best,
                "store": repr(self.store),
                "updated": self._updated,
            }
