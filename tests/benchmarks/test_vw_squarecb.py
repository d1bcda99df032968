"""``python -m benchmarks.vw_squarecb``: the default router beside Vowpal Wabbit's SquareCB on one replay."""

from __future__ import annotations

import csv
import json

import pytest

from benchmarks.vw_squarecb import main
from metallm.testing.prompts import ASTRONOMY, COOKING

pytestmark = pytest.mark.slow  # seconds: left out by `pytest -m "not slow"`


def test_both_learners_replay_the_same_rows_cold_and_warm_and_learn(tmp_path, capsys):
    """'cook' is right on cooking prompts only, 'star' on astronomy only, at the same price: a
    learner that picks at random loses about half a point per query; both learn the topics."""
    prompts = (COOKING + ASTRONOMY) * 8
    path = tmp_path / "topics.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "cook", "star", "mute", "cook|total_cost", "star|total_cost",
                         "mute|total_cost"])  # fmt: skip
        for prompt in prompts:
            cooking = prompt in COOKING
            writer.writerow([prompt, float(cooking), float(not cooking), 0.0, 0.001, 0.001, 0.0])
    out = tmp_path / "vw.json"
    with pytest.raises(SystemExit, match="not in"):
        main(["--data", str(path), "--models", "cook,chef"])
    # the free model that is always wrong is left out: a 2-model pool
    assert main(["--data", str(path), "--seeds", "0", "--models", "cook,star",
                 "--json", str(out)]) == 0  # fmt: skip
    replays = json.loads(out.read_text())["topics (2 models)"]
    assert {(r["method"], r["start"]) for r in replays} == {
        (m, s) for m in ("metallm default", "VW SquareCB") for s in ("cold", "warm")
    }
    live = len(prompts) - round(0.05 * len(prompts))
    for replay in replays:  # every run is scored on the same rows: at most one point a query
        assert 0.0 <= replay["regret"] <= live
        assert replay["regret"] < 0.35 * live, replay  # well below picking at random (0.5)
    printed = capsys.readouterr().out
    assert "VW SquareCB" in printed and "regret against the full-information router" in printed
