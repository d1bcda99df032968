"""`metallm speed` (and `python -m metallm.benchmarks`) runs and prints every figure (no timing is asserted here)."""

from __future__ import annotations

import subprocess
import sys

from metallm.cli import main


def test_the_speed_budget_prints_each_measurement(capsys):
    assert main(["speed", "--n", "60", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "select, full features",
        "select_batch, compact features",
        "select, default + kNN blend",
        "record -> SQLiteStore",
        "record -> RedisStore",
        "select + ledger write -> SQLiteStore",
        "select + ledger write -> RedisStore",
        "MB held",
        "(rounds ",
        "MiniLM, repeated query",
        "Router.select(text), distinct 30-word queries",
        "default (OnnxEmbedder",
        "x sentence-transformers",
        "cosine to sentence-transformers >= 1.0000",
        "other core busy",
        "fresh process, import to first embedding with the default embedder (OnnxEmbedder",
        "fresh process, ChatMetaLLM construction to first answer",
        # from the LangChain adapter, through the metallm.speed entry point
        "overhead (difference of medians)",
    ):
        assert expected in out, expected


def test_the_speed_budget_refuses_zero_rounds(capsys):
    assert main(["speed", "--rounds", "0"]) == 2
    assert "--n and --rounds must be at least 1" in capsys.readouterr().err


def test_the_documented_module_command_still_runs():
    result = subprocess.run(
        [sys.executable, "-m", "metallm.benchmarks", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--rounds" in result.stdout
