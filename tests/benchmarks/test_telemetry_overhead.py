"""The telemetry overhead benchmark runs and prints each setting (figures are for the notes)."""

from __future__ import annotations

from benchmarks.telemetry_overhead import main


def test_it_prints_every_setting_per_round_and_the_medians(capsys):
    assert main(["--calls", "50", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("round ") >= 2
    for name in ("telemetry=None", "OpenTelemetry not configured", "an SDK recording"):
        assert name in out
