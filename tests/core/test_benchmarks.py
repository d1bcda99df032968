"""`python -m metallm.benchmarks` runs and prints every figure (no timing is asserted here)."""

from __future__ import annotations

import pytest

from metallm.benchmarks import main


def test_the_speed_budget_script_prints_each_measurement(capsys):
    assert main(["--n", "60", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    for expected in ("select, full features", "select_batch, compact features", "record -> SQLiteStore",
                     "record -> RedisStore", "MB held", "(rounds ", "MiniLM, repeated query", "overhead (difference of medians)"):
        assert expected in out, expected


def test_the_speed_budget_script_refuses_zero_rounds(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--rounds", "0"])
    assert exit_info.value.code == 2
    assert "--n and --rounds must be at least 1" in capsys.readouterr().err
