"""``python -m benchmarks.capacity_growth``: the growing router beside the fixed one, and each switch."""

from __future__ import annotations

import json

import numpy as np

from benchmarks import capacity_growth
from tests.core.learning.test_growth import _world


def test_growth_lowers_regret_and_each_switch_is_measured(tmp_path, monkeypatch, capsys):
    """Topics no linear map separates: the growing router switches to clusters and wins."""
    X, quality = _world(1_600, seed=4)
    cost = np.tile([0.001, 0.001], (len(X), 1))

    def ordered(data, seed):  # the table's vectors in replay order, without embedding text
        return ["even", "odd"], X, quality, cost

    monkeypatch.setattr(capacity_growth, "_ordered", ordered)
    out = tmp_path / "growth.json"
    assert capacity_growth.main(["--data", "topics.csv", "--seeds", "0", "--json", str(out)]) == 0
    (result,) = json.loads(out.read_text())
    growing, fixed = result["regret"]
    assert growing < fixed - 100  # the linear map stays near chance (the reference is linear too)
    (switch, *_) = result["switches"]
    assert switch["to"].startswith("ClusterFeatures") and switch["at"] % 500 == 0
    assert switch["jump"] > -(3 * switch["jump_se"] + 0.05)  # no dip at the switch (here a rise)
    assert "reward change at each switch" in capsys.readouterr().out
