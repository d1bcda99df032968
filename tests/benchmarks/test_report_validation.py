"""The report's validation replays a default deployment and counts coverage and wrong verdicts."""

from __future__ import annotations

from benchmarks.report_validation import main
from tests.core.evaluation.conftest import table  # noqa: F401 - the fixture


def test_it_prints_each_order_and_the_coverage_and_error_counts(table, capsys):  # noqa: F811
    assert main(["--data", str(table), "--runs", "2", "--look", "100"]) == 0
    out = capsys.readouterr().out
    assert "order 0: pro quality" in out and "order 1: pro quality" in out
    assert "2 runs: the baseline's 95% quality interval covered its truth in" in out
    for name in ("baseline", "shadow trained", "shadow thrifty"):
        assert f"  {name}" in out and "wrong side at any look in" in out
