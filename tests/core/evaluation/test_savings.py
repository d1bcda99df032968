"""`metallm report`: what routing saved against one model, read from a default deployment's store."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import datetime, timezone

import numpy as np
import pytest

from metallm import LinUCB, Router, SQLiteStore
from metallm.cli import main
from metallm.evaluation import parse_since, savings_report
from metallm.state import FeedbackEvent

MODELS = ["cheap", "mid", "pro"]
PRICE = np.array([0.001, 0.004, 0.01])


def _world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """'cheap' is good when x0 > 0 and poor otherwise; 'mid' middling; 'pro' good everywhere."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    chance = np.stack([np.where(X[:, 0] > 0, 0.9, 0.2), np.full(n, 0.6), np.full(n, 0.92)], 1)
    quality = (rng.random((n, 3)) < chance).astype(float)
    cost = PRICE * rng.uniform(0.5, 1.5, size=(n, 3))  # prices times a prompt's length
    return X, quality, cost


def _deploy(path, n=1_200, seed=0, shadows=None):  # noqa: ANN001, ANN202
    """A default router logging to SQLite answers ``n`` queries; returns the true outcomes."""
    X, quality, cost = _world(n, seed)
    router = Router(MODELS, embedder=None, seed=seed, store=SQLiteStore(path),
                    sync_interval=None, shadows=shadows or {})  # fmt: skip
    for i in range(n):
        decision = router.select(X[i])
        j = MODELS.index(decision.arm)
        router.record(decision.id, quality=quality[i, j], cost=cost[i, j])
    router.close()
    return X, quality, cost


def test_the_report_adds_up_and_estimates_the_baseline_it_never_ran(tmp_path):
    path = tmp_path / "live.sqlite"
    X, quality, cost = _deploy(path)
    store = SQLiteStore(path)
    report = savings_report(store, baseline="pro")
    events = [e for _, e in store.events_after(None)]
    assert report.decisions == len(events) == 1_200 and report.graded == 1_200
    assert report.spend_usd == pytest.approx(sum(e.cost for e in events))
    assert sum(m.calls for m in report.models.values()) == 1_200
    assert sum(m.share for m in report.models.values()) == pytest.approx(1.0)
    assert report.models["cheap"].calls > 100  # routing sent the cheap model its share
    assert report.quality == pytest.approx(np.mean([e.quality for e in events]))
    # the baseline's truth on these very queries is known here; the report never saw it
    assert report.baseline_quality_low <= quality[:, 2].mean() <= report.baseline_quality_high
    assert report.baseline_cost_low <= cost[:, 2].mean() <= report.baseline_cost_high
    assert report.baseline_spend_usd == pytest.approx(report.baseline_cost_per_call * 1_200)
    assert report.saved_usd == pytest.approx(report.baseline_spend_usd - report.spend_usd)
    assert report.saved_share == pytest.approx(1 - report.spend_usd / report.baseline_spend_usd)
    assert report.saved_share > 0.05
    assert [d.calls for d in report.days] == [1_200]  # one day of traffic
    text = report.render()
    assert "always pro would have cost" in text and "routing saved" in text
    store.close()


def test_the_baseline_estimate_covers_the_truth_in_at_least_90_percent_of_runs(tmp_path):
    covered, widths = [], []
    for seed in range(20):
        path = tmp_path / f"run{seed}.sqlite"
        X, quality, cost = _deploy(path, n=800, seed=seed)
        with closing(SQLiteStore(path)) as store:
            report = savings_report(store, baseline="pro", bootstrap=50)
        covered.append(
            report.baseline_quality_low <= quality[:, 2].mean() <= report.baseline_quality_high
        )
        widths.append(report.baseline_quality_high - report.baseline_quality_low)
    assert np.mean(covered) >= 0.9, covered
    assert np.mean(widths) < 0.5  # and says something


def test_the_default_baseline_is_the_model_of_highest_estimated_quality(tmp_path):
    path = tmp_path / "live.sqlite"
    _deploy(path, n=800)
    with closing(SQLiteStore(path)) as store:
        report = savings_report(store)
    assert report.baseline == "pro"
    estimated = {name: m.estimated_quality for name, m in report.models.items()}
    assert max(estimated, key=lambda name: estimated[name] or 0.0) == "pro"


def _event(i: int, arm: str, day: int, quality: float, propensity: float) -> FeedbackEvent:
    when = datetime(2026, 11, day, 12, tzinfo=timezone.utc).timestamp() + i
    vector = np.array([float(i % 7), float(i % 3), 1.0])
    return FeedbackEvent(f"d{i}", arm, vector, quality, PRICE[MODELS.index(arm)], when,
                         propensity=propensity)  # fmt: skip


def test_the_window_and_the_days_follow_the_events_times(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    rng = np.random.default_rng(0)
    for i in range(600):
        arm = MODELS[int(rng.integers(0, 3))]
        store.append(_event(i, arm, 28 + i // 200, float(rng.random() < 0.7), 1 / 3))
    report = savings_report(store, baseline="pro")
    assert [(d.day, d.calls) for d in report.days] == [
        ("2026-11-28", 200), ("2026-11-29", 200), ("2026-11-30", 200)
    ]  # fmt: skip
    assert sum(d.spend_usd for d in report.days) == pytest.approx(report.spend_usd)
    since = datetime(2026, 11, 29, tzinfo=timezone.utc).timestamp()
    recent = savings_report(store, baseline="pro", since=since)
    assert recent.decisions == 400 and [d.day for d in recent.days][0] == "2026-11-29"
    with pytest.raises(ValueError, match="no decision in the window"):
        savings_report(store, since=since + 30 * 86_400)
    with pytest.raises(ValueError, match="not in the pool"):
        savings_report(store, baseline="gpt-9")
    store.close()


def test_a_baseline_the_router_never_chose_cannot_be_estimated(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    for i in range(50):
        store.append(_event(i, "cheap", 28, 1.0, 1.0))
    with pytest.raises(ValueError, match="never chose 'pro'.*exploration floor"):
        savings_report(store, baseline="pro", arms=MODELS)
    store.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7d", 1_000_000 - 7 * 86_400), ("36h", 1_000_000 - 36 * 3_600), ("90m", 1_000_000 - 5_400)],
)
def test_since_takes_a_duration(text, expected):
    assert parse_since(text, now=1_000_000.0) == expected


def test_since_takes_a_date_and_refuses_anything_else():
    assert parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()
    with pytest.raises(ValueError, match="a duration"):
        parse_since("last week")


def test_each_shadows_verdict_brackets_its_true_gain_and_names_no_wrong_side(tmp_path):
    from metallm.evaluation._offpolicy import log_from_store

    trained = Router(MODELS, embedder=None, seed=0, policy=LinUCB(alpha=0.0), cost_weight=0.1)
    trained.fit(*_world(3_000, seed=99), tune=False)  # knows the world already
    thrifty = Router(MODELS, embedder=None, seed=0, policy=LinUCB(alpha=0.0), cost_weight=50.0)
    path = tmp_path / "live.sqlite"
    X, quality, cost = _deploy(path, n=3_000, seed=1, shadows={"trained": trained,
                                                                "thrifty": thrifty})  # fmt: skip
    with closing(SQLiteStore(path)) as store:
        report = savings_report(store, baseline="pro")
        log = log_from_store(store, MODELS)
    reward = quality - 0.1 * cost / log.cost[log.chosen == 2].mean()
    live = reward[np.arange(3_000), log.chosen].mean()
    for name in ("trained", "thrifty"):
        verdict = report.verdicts[f"shadow {name}"]
        truth = (log.shadows[name] * reward).sum(axis=1).mean() - live
        assert verdict.rows == 3_000
        assert verdict.low <= truth <= verdict.high, (name, truth, verdict)
        assert verdict.verdict != ("worse" if truth > 0 else "better"), (name, truth, verdict)
    assert report.verdicts["shadow thrifty"].verdict == "worse"  # nearly always the cheap one
    assert "shadow trained" in report.render()


def test_the_cli_writes_text_json_a_plot_and_a_page(tmp_path, capsys):
    path = tmp_path / "live.sqlite"
    _deploy(path, n=600)
    out, plot, page = tmp_path / "r.json", tmp_path / "r.png", tmp_path / "r.html"
    argv = ["report", "--store", str(path), "--since", "7d", "--baseline", "pro",
            "--json", str(out), "--plot", str(plot), "--html", str(page)]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["baseline"] == "pro" and data["decisions"] == 600
    assert data["saved_usd"] == pytest.approx(data["baseline_spend_usd"] - data["spend_usd"])
    assert set(data["verdicts"]) == {"always pro"}
    assert plot.read_bytes()[:4] == b"\x89PNG"
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    assert "routing saved" in capsys.readouterr().out


def test_the_cli_says_what_is_wrong(tmp_path, capsys):
    assert main(["report", "--store", str(tmp_path / "missing.sqlite")]) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "live.sqlite"
    _deploy(path, n=100)
    assert main(["report", "--store", str(path), "--since", "soon"]) == 2
    assert "a duration (7d, 36h, 90m)" in capsys.readouterr().err
    assert main(["report", "--store", str(path), "--baseline", "nope"]) == 2
    assert "not in the pool" in capsys.readouterr().err
