"""A worker process for the budget store tests: adds spend to a shared budget, noting each add once it returned.

usage: python -m tests.core.state.budget_worker KIND TARGET WORKER N [ACKS_FILE]
(N = 0: until killed)
"""

from __future__ import annotations

import os
import sys

from tests.core.state.store_worker import open_store

CHANGE = 0.0005


def cost(worker: int, i: int) -> float:
    """The cost of a worker's i-th call (known to the test)."""
    return 0.001 * ((worker * 7 + i) % 5 + 1)


def main() -> None:
    kind, target, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    acks = open(sys.argv[5], "a", buffering=1) if len(sys.argv) > 5 else None
    store = open_store(kind, target)
    i = 0
    while n == 0 or i < n:
        store.add_spend(
            "shared", 7, cost=cost(worker, i), queries=1, change=CHANGE,
            floor=0.0, ceiling=1e9, initial=0.1,
        )  # fmt: skip
        if acks is not None:  # only once the add has returned
            acks.write(f"{i}\n")
            acks.flush()
            os.fsync(acks.fileno())
        i += 1


if __name__ == "__main__":
    main()
