"""A budget held live by two worker processes sharing a SQLite store.

Real ChatOpenAI members with different prices talk HTTP to the local fake provider; the
feedback prefers the expensive one, so without the budget the router would send it almost
everything. With ``Budget(usd_per_query=...)`` in a shared store, the two processes' mean
cost per call over the last half of the run settles within 10% of the target.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metallm import SQLiteStore
from metallm.embedding import default_embedder
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from tests.integration.budget_worker import REPLIES

ROOT = Path(__file__).resolve().parents[2]
TARGET = 0.00015  # USD per call: mini costs about $0.000005, pro $0.00035


@pytest.fixture(scope="module")
def provider():
    with OpenAICompatibleServer({m: ScriptedModel(reply=r) for m, r in REPLIES.items()}) as server:
        yield server


def test_two_processes_sharing_a_store_hold_one_per_query_budget(provider, tmp_path):
    default_embedder().embed(["export the ONNX model once, before the workers start"])
    path = tmp_path / "state.sqlite"
    outs = [tmp_path / f"worker{w}.txt" for w in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.budget_worker",
                provider.base_url,
                str(path),
                str(w),
                "80",
                str(out),
                str(TARGET),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for w, out in enumerate(outs)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    rows = sorted(
        (float(t), float(c), model, float(p))
        for out in outs
        for t, c, model, p in (line.split() for line in out.read_text().splitlines())
    )
    assert len(rows) == 160
    costs = np.array([c for _, c, _, _ in rows])
    models = [m for _, _, m, _ in rows]
    late = costs[len(costs) // 2 :].mean()
    assert abs(late / TARGET - 1) <= 0.10, (late, models)
    assert {"mini", "pro"} <= set(models[len(models) // 2 :])  # held by mixing, not by one model
    # one budget: the store's spend is both processes' calls, and their p is one p
    store = SQLiteStore(path)
    period = int(rows[-1][0] // 86_400)
    state = store.budget_state("default", period)
    assert state.queries == 160 and state.spent == pytest.approx(costs.sum(), rel=1e-9)
    assert state.cost_weight is not None and state.cost_weight > 0.1
