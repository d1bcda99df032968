"""`metallm demo`: runs with no keys and no data, says the pool is scripted, and saves money."""

from __future__ import annotations

import re
import subprocess
import sys

from metallm.cli import main


def test_the_demo_learns_and_spends_less_than_always_pro(capsys):
    assert main(["demo", "--queries", "150"]) == 0
    out = capsys.readouterr().out
    assert "SCRIPTED" in out
    assert "How the routing shifted" in out
    router_row = re.search(r"metallm router\s+([\d.]+)\s+([\d.]+)\s+(\d+)% of the cost", out)
    assert router_row, out
    quality, percent = float(router_row.group(1)), int(router_row.group(3))
    assert percent < 80 and quality > 0.9
    assert "Feedback events recorded: 150" in out


def test_the_command_line_lists_its_commands():
    result = subprocess.run(
        [sys.executable, "-m", "metallm", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "demo" in result.stdout
