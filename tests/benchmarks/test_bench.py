"""``python -m benchmarks.bench``: ``metallm bench`` beside three routers from the literature."""

from __future__ import annotations

import json

import pytest

from benchmarks.bench import main
from tests.core.evaluation.conftest import table  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow  # seconds each: left out by `pytest -m "not slow"`


def test_the_bench_measures_the_literatures_routers_on_the_same_split(table, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "report.json"
    assert main(["--data", str(table), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    others = {o["name"]: o for o in report["others"]}
    assert list(others) == ["kNN", "cluster router", "MLP"]
    assert others["kNN"]["setting"].startswith("k=")
    assert all(0.5 < o["max_quality"] <= 1.0 for o in others.values())
    printed = capsys.readouterr().out
    assert "cluster router" in printed and "setting (by CV)" in printed


def test_over_several_seeds_the_baselines_get_their_spread(table, tmp_path, capsys, monkeypatch):  # noqa: F811
    import benchmarks.bench

    monkeypatch.setattr(benchmarks.bench, "BASELINES", benchmarks.bench.BASELINES[:1])  # kNN
    out = tmp_path / "seeds.json"
    argv = ["--data", str(table), "--seeds", "0,1", "--json", str(out), "--features", "projected64"]
    assert main(argv) == 0
    methods = json.loads(out.read_text())["methods"]
    assert "kNN" in {name.split(" (")[0] for name in methods}
    assert all(len(m["aiq"]) == 2 for m in methods.values())
    assert "AIQ vs default" in capsys.readouterr().out
