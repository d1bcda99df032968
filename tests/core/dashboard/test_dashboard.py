"""The dashboard's server and totals: loopback by default, a token beyond it, data from the log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from metallm import ConfigurationError, Router, SQLiteStore
from metallm.cli import main
from metallm.dashboard import Dashboard, LogSummary

PRICES = {"mini": (0.15, 0.60), "pro": (2.50, 10.00)}


def _log(path, n: int = 20) -> SQLiteStore:  # noqa: ANN001
    """``n`` graded calls and one provider failure, written by a router through its store."""
    router = Router(list(PRICES), embedder=None, store=SQLiteStore(path), seed=0)
    for i in range(n):
        call = router.route(np.random.default_rng(i).normal(size=6), prices=PRICES)
        call.run(lambda decision: decision.arm)
        meta = call.succeeded(input_tokens=100, output_tokens=40)
        router.record(meta["decision_id"], quality=0.8 if meta["model"] == "mini" else 1.0)
    call = router.route(np.ones(6), prices=PRICES, force="mini")
    with pytest.raises(TimeoutError):
        call.run(lambda decision: (_ for _ in ()).throw(TimeoutError("provider timed out")))
    return SQLiteStore(path)


def _get(url: str, headers: dict | None = None):  # noqa: ANN202
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10)


def test_the_summary_folds_spend_shares_quality_and_failures_from_the_log(tmp_path):
    summary = LogSummary(_log(tmp_path / "s.sqlite"))
    assert summary.update() == 21 and summary.update() == 0  # only new events the second time
    totals = summary.snapshot()["totals"]
    assert (totals["calls"], totals["graded"], totals["failures"]) == (21, 20, 1)
    models = summary.snapshot()["models"]
    assert sum(m["calls"] for m in models.values()) == 21
    assert models["mini"]["failures"] == 1
    best = summary.snapshot()["best_model"]
    assert best == max((m for m in models if models[m]["quality"] is not None),
                       key=lambda m: models[m]["quality"])  # fmt: skip
    assert totals["saved_usd"] == pytest.approx(totals["baseline_usd"] - totals["spend_usd"])


def test_the_page_the_script_and_the_data_are_served_on_loopback(tmp_path):
    dashboard = Dashboard(_log(tmp_path / "s.sqlite"), port=0).start()
    try:
        page = _get(dashboard.url).read().decode()
        assert '<canvas id="spendChart">' in page and "/static/chart.umd.min.js" in page
        script = _get(f"http://127.0.0.1:{dashboard.port}/static/chart.umd.min.js").read()
        assert script.startswith(b"/*!\n * Chart.js v4")
        data = json.loads(_get(f"http://127.0.0.1:{dashboard.port}/api/summary").read())
        assert data["totals"]["calls"] == 21 and data["error"] is None
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(f"http://127.0.0.1:{dashboard.port}/elsewhere")
    finally:
        dashboard.stop()


def test_beyond_loopback_a_token_is_required_and_checked(tmp_path):
    store = _log(tmp_path / "s.sqlite", n=2)
    with pytest.raises(ConfigurationError, match="give it a token"):
        Dashboard(store, host="0.0.0.0", port=0)
    dashboard = Dashboard(store, port=0, token="s3cret").start()
    base = f"http://127.0.0.1:{dashboard.port}"
    try:
        with pytest.raises(urllib.error.HTTPError, match="401"):
            _get(f"{base}/api/summary")
        with pytest.raises(urllib.error.HTTPError, match="401"):
            _get(f"{base}/api/summary?token=wrong")
        assert _get(f"{base}/api/summary?token=s3cret").status == 200
        assert _get(f"{base}/api/summary", {"Authorization": "Bearer s3cret"}).status == 200
        assert "chart.umd.min.js?token=s3cret" in _get(dashboard.url).read().decode()
    finally:
        dashboard.stop()


def test_a_store_that_fails_shows_what_was_read_and_why(tmp_path):
    store = _log(tmp_path / "s.sqlite", n=3)
    dashboard = Dashboard(store, port=0).start()
    try:
        _get(f"http://127.0.0.1:{dashboard.port}/api/summary")

        def down(position):  # noqa: ANN001, ANN202
            raise OSError("the store is unreachable")

        store.events_after = down  # type: ignore[method-assign]
        data = json.loads(_get(f"http://127.0.0.1:{dashboard.port}/api/summary").read())
        assert data["totals"]["calls"] == 4 and "unreachable" in data["error"]
    finally:
        dashboard.stop()


def test_the_command_says_a_missing_store_file_is_missing(tmp_path, capsys):
    assert main(["dashboard", "--store", str(tmp_path / "typo.sqlite")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "typo.sqlite").exists()


def test_a_budget_shows_the_periods_spend_against_its_cap_and_the_shared_p(tmp_path):
    from metallm import Budget

    budget = Budget(usd_per_day=1.0, name="team")
    router = Router(list(PRICES), embedder=None, store=SQLiteStore(tmp_path / "s.sqlite"),
                    budget=budget, seed=0)  # fmt: skip
    for i in range(5):
        call = router.route(np.random.default_rng(i).normal(size=6), prices=PRICES)
        call.run(lambda decision: decision.arm)
        call.succeeded(input_tokens=1000, output_tokens=400)
    dashboard = Dashboard(SQLiteStore(tmp_path / "s.sqlite"), port=0, budget=budget).start()
    try:
        data = json.loads(_get(f"http://127.0.0.1:{dashboard.port}/api/summary").read())
    finally:
        dashboard.stop()
    shown = data["budget"]
    assert shown["name"] == "team" and shown["cap_usd"] == 1.0 and shown["queries"] == 5
    assert shown["spent_usd"] == pytest.approx(router.budget_status()["spent_usd"])
    assert shown["cost_weight"] == pytest.approx(router.budget_status()["cost_weight"])
