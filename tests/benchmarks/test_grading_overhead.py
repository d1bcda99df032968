"""The grading overhead benchmark runs and prints each setting (figures are for the notes)."""

from __future__ import annotations

from benchmarks.grading_overhead import main


def test_it_prints_every_setting_per_round_and_the_medians(capsys):
    assert main(["--calls", "20", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("round ") >= 2
    for name in ("no feedback handler", "an evaluator, no judge", "a judge of 50 ms"):
        assert name in out
    assert "the calls never waited for it" in out
