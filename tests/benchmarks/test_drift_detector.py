"""``python -m benchmarks.drift_detector``: the default detector with and without a snapshot change."""

from __future__ import annotations

import csv
import json
import sys

import pytest

from benchmarks import drift_detector
from metallm.testing.prompts import ASTRONOMY, COOKING, arithmetic_questions

pytestmark = pytest.mark.slow  # tens of seconds: left out by `pytest -m "not slow"`


def test_the_detector_switches_sooner_and_costs_nothing_without_a_change(
    tmp_path, monkeypatch, capsys
):
    """'good' (right everywhere, cheapest) starts answering as 'weak' (right on cooking only)
    halfway through a long replay; without a change the detector raises no alarm."""
    prompts = COOKING * 6 + ASTRONOMY * 6 + [q for q, _ in arithmetic_questions(300, seed=4)]
    with (tmp_path / "switch.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "good", "backup", "weak",
                         "good|total_cost", "backup|total_cost", "weak|total_cost"])  # fmt: skip
        for prompt in prompts:
            writer.writerow([prompt, 1.0, 0.9, float(prompt in COOKING), 0.0001, 0.0005, 0.01])
    monkeypatch.setattr(drift_detector, "DATA", tmp_path)
    out = tmp_path / "figures.json"
    monkeypatch.setattr(sys, "argv", ["drift_detector", "--seeds", "0",
                                      "--switches", "switch:good=weak", "--json", str(out)])  # fmt: skip
    drift_detector.main()
    figures = json.loads(out.read_text())
    for label, runs in figures["stationary"]["switch"].items():
        assert runs["detector"] == pytest.approx(runs["none"]), label  # no false alarm
    (change,) = figures["snapshot_change"]
    with_it, without = change["queries_to_switch"]
    assert change["share_before"][0] > 0.5 and with_it is not None
    assert without is None or with_it <= without  # as soon or sooner (the centred measure)
    assert change["regret"][0] < change["regret"][1]  # and it stays away: less regret
    assert "a snapshot change: switch:good=weak" in capsys.readouterr().out
