"""Test helpers shared by the adapters' tests: an embedder that counts, and a wait with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class CountingEmbedder:
    """Embeds every text as the same 3-d vector and keeps the texts it was given."""

    dimension = 3

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts += list(texts)
        return np.ones((len(texts), 3))


def wait_for(condition: Callable[[], object], seconds: float = 10.0) -> bool:
    """Whether ``condition()`` turned true within ``seconds`` (polled every 10 ms)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())
