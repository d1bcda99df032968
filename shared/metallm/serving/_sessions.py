"""Sticky sessions: a conversation stays on the model it started with."""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["StickySessions"]


class StickySessions:
    """The model of each recent session (at most ``max_sessions``; the least recent is forgotten)."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        self.max_sessions = max_sessions
        self._models: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: str) -> str | None:
        """The model ``session`` is kept on, if any (and mark the session as recent)."""
        with self._lock:
            model = self._models.get(session)
            if model is not None:
                self._models.move_to_end(session)
            return model

    def claim(self, session: str, model: str) -> str:
        """Keep ``session`` on ``model`` unless it is already kept on one; the model it is kept on."""
        with self._lock:
            kept = self._models.setdefault(session, model)
            self._models.move_to_end(session)
            while len(self._models) > self.max_sessions:
                self._models.popitem(last=False)
            return kept

    def stick(self, session: str, model: str) -> None:
        """Keep ``session`` on ``model`` from now on."""
        with self._lock:
            self._models[session] = model
            self._models.move_to_end(session)
            while len(self._models) > self.max_sessions:
                self._models.popitem(last=False)

    def __len__(self) -> int:
        return len(self._models)
