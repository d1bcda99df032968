"""The off-policy estimators checked on a routing table, where every policy's truth is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.offpolicy_validation import logged_replay, main, validate
from metallm.evaluation._offpolicy import DecisionLog
from tests.core.evaluation.conftest import table  # noqa: F401 - the fixture
from tests.core.evaluation.test_offpolicy import _world


def test_a_logged_replay_records_exact_propensities_with_a_floor():
    X, quality, cost = _world(n=500)
    log = logged_replay(["a", "b"], X, quality, cost, epsilon=0.2, scale=0.01, seed=0)
    assert set(np.round(log.propensity, 6)) <= {0.1, 0.9}  # 1 - eps + eps / k, or eps / k
    assert (log.propensity >= 0.1).all()
    learned = (log.chosen[250:] == (X[250:, 0] <= 0)).mean()
    assert learned > 0.7  # the logging router learns while it explores
    with pytest.raises(ValueError, match="epsilon must be in"):
        logged_replay(["a", "b"], X, quality, cost, epsilon=0.0)
    with pytest.raises(ValueError, match="propensities must be in"):
        DecisionLog(["a"], X[:2], np.zeros(2, int), np.zeros(2), np.ones(2), np.ones(2))


def test_validation_reports_coverage_and_error_per_estimator():
    X, quality, cost = _world(n=1500)
    result = validate("world", X, quality, cost, ["a", "b"], seeds=2, epsilon=0.5)
    assert set(result.validation) == {"IPS", "SNIPS", "DR", "DRos"}
    assert result.validation["DR"]["pairs"] == 2 * (4 + 2 + 1)  # 4 routers, 2 models, random
    assert result.validation["DR"]["coverage"] >= 0.8
    assert result.validation["DR"]["mean_abs_error"] < 0.05
    assert {row["candidate"] for row in result.first_seed} >= {"random", "always a", "router p=0"}


def test_the_module_command_validates_on_a_routing_table(table, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "evaluate.json"
    assert main(["--data", str(table), "--seeds", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["validation"]) == {"IPS", "SNIPS", "DR", "DRos"}
    assert "coverage of 95% intervals" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--data", str(table), "--epsilon", "0"])
