"""The exploration floor benchmark replays each setting on the same orders and prints them."""

from __future__ import annotations

from benchmarks.exploration_floor import main
from tests.core.evaluation.conftest import table  # noqa: F401 - the fixture


def test_it_prints_each_floor_per_order_and_the_spread(table, capsys):  # noqa: F811
    assert main(["--data", str(table), "--orders", "2", "--floors", "0,0.03"]) == 0
    out = capsys.readouterr().out
    assert out.count("order 0:") == 2 and out.count("order 1:") == 2
    assert "UCB, explore 0 " in out and "UCB, explore 0.03 (default)" in out
    assert "(mean, min-max)" in out
