"""``python -m benchmarks.onboarding``: each model of a table added late with a short quiz."""

from __future__ import annotations

import json

import pytest


def test_the_onboard_command_reports_each_model_added_late(tmp_path, capsys):
    import csv

    from benchmarks.onboarding import main
    from metallm.testing.prompts import ASTRONOMY, COOKING, arithmetic_questions

    rows = [(q, "cooking") for q in COOKING * 4] + [(q, "astronomy") for q in ASTRONOMY * 4]
    rows += [(q, "arithmetic") for q, _ in arithmetic_questions(100, seed=3)]
    path = tmp_path / "table.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "cheap", "pro", "cheap|total_cost", "pro|total_cost"])
        for prompt, task in rows:
            writer.writerow([prompt, float(task != "astronomy"), 1.0, 0.0001, 0.002])
    out = tmp_path / "onboard.json"
    assert main(["--data", str(path), "--n", "10", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["model"] for r in report["rows"]] == ["cheap", "pro"]
    pro = report["rows"][1]
    assert pro["quiz_combination"] >= pro["without"] and pro["full"] == pytest.approx(1.0)
    assert "added late with a 10-prompt quiz" in capsys.readouterr().out
