"""A worker process for the store tests: records feedback, noting each id once record returned.

usage: python -m tests.core.state.store_worker KIND TARGET WORKER N [IDS_FILE]
"""

from __future__ import annotations

import os
import sys

import numpy as np

from metallm import LinUCB, Router
from tests.stores import open_store

ARMS = ["a", "b", "c"]
DIM = 16


def events(worker: int, n: int):
    """The deterministic feedback of one worker: (embedding, arm, quality, cost)."""
    rng = np.random.default_rng(1000 + worker)
    for _ in range(n):
        x = rng.normal(size=DIM)
        yield (
            x / np.linalg.norm(x),
            ARMS[int(rng.integers(3))],
            float(rng.random()),
            float(rng.random() / 100),
        )


def main() -> None:
    kind, target, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ids_file = sys.argv[5] if len(sys.argv) > 5 else None
    router = Router(
        ARMS,
        embedder=None,
        policy=LinUCB(alpha=0.25),
        store=open_store(kind, target),
        snapshot_every=200,
        sync_interval=None,
        # METALLM_TEST_GROWTH=off: additive statistics only (a test compares them to a fold of
        # the events in any order, which a switch of feature maps would not equal)
        growth=None if os.environ.get("METALLM_TEST_GROWTH") == "off" else "default",
    )
    out = open(ids_file, "a", buffering=1) if ids_file else None
    for x, arm, quality, cost in events(worker, n):
        decision = router.select(x, force=arm)
        router.record(decision.id, quality=quality, cost=cost)
        if out is not None:  # only once record has returned
            out.write(decision.id + "\n")
            out.flush()
            os.fsync(out.fileno())


if __name__ == "__main__":
    main()
