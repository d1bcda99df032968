"""The runnable examples in docs/examples run as written and say what they did."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_production_example_learns_from_feedback_given_in_other_processes():
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "production.py")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "web workers answered 20 questions and exited" in out
    assert "feedback endpoint recorded 10 thumbs" in out
    assert "grading job: 10 recorded, 0 unknown, 0 expired" in out
    learned = re.search(r"a fresh process learned from (\d+) outcomes", out)
    assert learned and int(learned.group(1)) == 20, out


def test_the_shadow_example_estimates_each_shadow_close_to_its_true_value(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "shadow_live.py"), "--calls", "240",
         "--plot", str(tmp_path / "shadows.png")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    asked = re.search(r"the provider was asked \{'mini': (\d+), 'pro': (\d+)\}", out)
    assert asked and int(asked.group(1)) + int(asked.group(2)) == 240, out  # live calls only
    for name in ("balanced", "quality-first"):
        truth = re.search(rf"true value of shadow '{name}' on these calls: quality ([\d.]+)", out)
        row = re.search(rf"^{name}\s+240\s+[\d.]+%\s+([\d.]+)", out, re.MULTILINE)
        assert truth and row, out
        assert abs(float(row.group(1)) - float(truth.group(1))) < 0.03, out
    assert (tmp_path / "shadows.png").stat().st_size > 1000


def test_an_example_run_without_plot_writes_no_file(tmp_path):
    images = {p: p.stat().st_mtime_ns for p in (ROOT / "docs" / "img").iterdir()}
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "shadow_live.py"), "--calls", "30"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "docs" / "img").iterdir()} == images
    assert list(tmp_path.iterdir()) == []
