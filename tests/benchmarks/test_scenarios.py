"""``python -m benchmarks.scenarios --scenario drift:...``: forgetting reacts to a model that got worse."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from benchmarks.scenarios import main, parse_scenario
from metallm import ConfigurationError, EmbeddingFeatures, LinUCB, Router
from metallm.testing.prompts import ASTRONOMY, COOKING, arithmetic_questions

pytestmark = pytest.mark.slow  # seconds each: left out by `pytest -m "not slow"`


def test_discounted_statistics_equal_the_discounted_least_squares_online_and_in_batch():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.random(40)
    features = np.hstack([X, np.ones((40, 1))])
    weights = 0.9 ** np.arange(39, -1, -1)
    expected = np.linalg.solve(
        np.eye(4) + (features.T * weights) @ features, (features.T * weights) @ y
    )

    def router() -> Router:
        # growth=None: pending decisions keep the exact features (capacity growth keeps
        # float32 embeddings, as a store does), so the claim below holds to 1e-9
        return Router(["a", "b"], embedder=None, policy=LinUCB(alpha=0.0, discount=0.9),
                      features=EmbeddingFeatures(l2=1.0), growth=None)  # fmt: skip

    online = router()
    for x, q in zip(X, y):
        d = online.select(x, force="a")
        online.record(d.id, quality=q, cost=0.0)
    batch = router().partial_fit(X, ["a"] * 40, y, np.zeros(40))
    for r in (online, batch):
        np.testing.assert_allclose(r.bandit.stats.theta[0, :, 0], expected, rtol=1e-9)
    with pytest.raises(ConfigurationError, match="discount"):
        LinUCB(discount=0.0)


def test_parse_scenario_says_what_is_wrong():
    assert parse_scenario("drift:gpt-4@0.5") == ("drift", "gpt-4", 0.5)
    for bad in ("drift:gpt-4", "shift:gpt-4@0.5", "drift:gpt-4@1.5"):
        with pytest.raises(ValueError):
            parse_scenario(bad)


@pytest.fixture(scope="module")
def drifting_table(tmp_path_factory):
    """'good' is right everywhere and cheap; 'backup' right everywhere but pricier."""
    prompts = COOKING * 6 + ASTRONOMY * 6 + [q for q, _ in arithmetic_questions(300, seed=4)]
    path = tmp_path_factory.mktemp("drift") / "drift.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "good", "backup", "good|total_cost", "backup|total_cost"])
        for prompt in prompts:
            writer.writerow([prompt, 1.0, 0.9, 0.0001, 0.0005])
    return path


def test_the_drift_scenario_reports_how_fast_each_method_reacts(drifting_table, tmp_path, capsys):
    out, plot = tmp_path / "drift.json", tmp_path / "drift.png"
    args = ["--data", str(drifting_table), "--scenario", "drift:good@0.5"]
    assert main([*args, "--json", str(out), "--plot", str(plot)]) == 0
    runs = {r["method"]: r for r in json.loads(out.read_text())["runs"]}
    plain, forgetting = runs["UCB"], runs["UCB, discount 0.99"]
    assert plain["share_before"] > 0.5 and forgetting["share_before"] > 0.5
    assert forgetting["queries_to_react"] is not None
    assert (
        plain["queries_to_react"] is None
        or forgetting["queries_to_react"] < plain["queries_to_react"]
    )
    assert forgetting["queries_to_switch"] is not None  # centred: no trailing window's lag
    assert forgetting["queries_to_switch"] < forgetting["queries_to_react"]
    assert "queries to react" in capsys.readouterr().out and plot.stat().st_size > 1000
    assert main(["--data", str(drifting_table), "--scenario", "drift:nobody@0.5"]) == 2


def test_a_snapshot_change_switches_a_models_answers_to_another_models_column(tmp_path):
    """'good' starts answering as 'weak' (right on cooking only) halfway: the model's price
    stays, its quality column changes; every method, the default included, is measured."""
    prompts = COOKING * 6 + ASTRONOMY * 6 + [q for q, _ in arithmetic_questions(300, seed=4)]
    path = tmp_path / "switch.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "good", "backup", "weak",
                         "good|total_cost", "backup|total_cost", "weak|total_cost"])  # fmt: skip
        for prompt in prompts:
            weak = 1.0 if prompt in COOKING else 0.0
            writer.writerow([prompt, 1.0, 0.9, weak, 0.0001, 0.0005, 0.01])
    out = tmp_path / "switch.json"
    args = ["--data", str(path), "--scenario", "drift:good=weak@0.5", "--json", str(out)]
    assert main(args) == 0
    runs = {r["method"]: r for r in json.loads(out.read_text())["runs"]}
    assert list(runs)[:2] == [
        "the default (UCB, 3% floor, drift detector)",
        "the default without its drift detector",
    ]
    forgetting = runs["UCB, discount 0.99"]
    assert forgetting["share_before"] > 0.3 and forgetting["queries_to_switch"] is not None
    assert {"UCB", "UCB, discount 0.95", "UCB, discount 0.999"} <= set(runs)
    assert main(["--data", str(path), "--scenario", "drift:good=nobody@0.5"]) == 2


def test_the_new_model_scenario_reports_how_fast_each_onboarding_reaches_its_share(
    drifting_table, tmp_path, capsys
):
    out, plot = tmp_path / "new.json", tmp_path / "new.png"
    args = ["--data", str(drifting_table), "--scenario", "new-model:good@0.4"]
    assert main([*args, "--json", str(out), "--plot", str(plot)]) == 0
    report = json.loads(out.read_text())
    assert report["target_share"] > 0.9  # the full-information router sends it nearly everything
    runs = {r["method"]: r for r in report["runs"]}
    assert set(runs) == {"no warm start", "similar (quiz 10)", "quiz 10", "quiz 30", "quiz 50"}
    assert runs["no warm start"]["queries_to_share"] is not None  # UCB tries a newcomer
    assert runs["quiz 30"]["queries_to_share"] is not None
    assert all(r["regret"] >= -1e-9 for r in runs.values())
    assert "joins at query" in capsys.readouterr().out and plot.stat().st_size > 1000


def test_queries_to_switch_reads_a_switch_where_it_happened():
    from benchmarks.scenarios import WINDOW, queries_to_switch

    rng = np.random.default_rng(0)
    before = (rng.random(3000) < 0.4).astype(float)
    picks = before.copy()
    picks[2000:] = 0.0  # the router drops the model 500 queries after a drift at 1500
    found = queries_to_switch(picks, 1500, 0.4)
    assert found is not None and abs(found - 500) <= WINDOW // 4
    assert queries_to_switch(before, 1500, 0.4) is None  # never dropped


def test_the_drift_scenario_can_start_from_a_router_fitted_offline(drifting_table, tmp_path):
    out = tmp_path / "warm.json"
    args = ["--data", str(drifting_table), "--scenario", "drift:good@0.6"]
    assert main([*args, "--warm-start", "0.3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n_warm"] == round(0.3 * report["n_queries"]) > 0
    runs = {r["method"]: r for r in report["runs"]}
    assert runs["UCB"]["share_before"] > 0.9  # fitted offline: it knows 'good' from the start
    assert runs["UCB, discount 0.99"]["queries_to_react"] is not None
    assert main([*args, "--warm-start", "0.7"]) == 2  # the offline part must end before the drift


def test_plain_ucb_reacts_later_after_a_longer_history_and_forgetting_does_not(
    drifting_table, tmp_path
):
    from benchmarks.scenarios import (
        drift_by_history,
        plot_drift_by_history,
        render_drift_by_history,
    )

    points = drift_by_history(drifting_table, "good", [100, 900], after=250, seeds=[0],
                              progress=False)  # fmt: skip
    by = {(p.history, p.method): p for p in points}
    assert set(by) == {(h, m) for h in (100, 900) for m in ("UCB", "UCB, discount 0.99")}
    assert all(p.queries_after >= 250 for p in points)  # enough passes to follow the drift
    slow = [by[(h, "UCB")].queries_to_switch for h in (100, 900)]
    fast = [by[(h, "UCB, discount 0.99")].queries_to_switch for h in (100, 900)]
    assert None not in fast and abs(fast[1] - fast[0]) <= 50
    assert slow[1] is None or slow[1] > 2 * slow[0]
    table = render_drift_by_history(points)
    assert "900" in table and "x" in table
    assert plot_drift_by_history(points, tmp_path / "h.png").stat().st_size > 1000
