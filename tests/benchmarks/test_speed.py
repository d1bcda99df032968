"""`python -m benchmarks.speed` runs and prints every figure (no timing is asserted here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.speed import main
from metallm.cli import main as metallm

pytestmark = pytest.mark.slow  # seconds each: left out by `pytest -m "not slow"`


def test_the_speed_budget_prints_each_measurement_and_says_each_section_as_it_starts(capsys):
    assert main(["--n", "60", "--rounds", "2"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    starts = [line for line in captured.err.splitlines() if " ..." in line and "measuring" in line]
    assert len(starts) == 9 and starts[0].startswith("metallm: [1/9] measuring routing")
    assert "[2/9] measuring capacity candidates" in starts[1]
    for expected in (
        "select, full features",
        "select_batch, compact features",
        "select, map + kNN blend, always",
        # each capacity candidate, 12 models: select, record and the state's size
        "select, clusters 32 + PCA 128 (161 + length), default",
        "record, random ReLU 64 + 192 (257 + length)",
        "select, linear PCA 128 + table blend (2,000 x 64), default",
        "select, clusters + PCA 128 + table blend, not default",
        "state, linear, full embedding (385 + length)",
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
        # the LangChain adapter's section
        "overhead (difference of medians)",
    ):
        assert expected in out, expected


def test_the_speed_budget_refuses_zero_rounds(capsys):
    assert main(["--rounds", "0"]) == 2
    assert "--n and --rounds must be at least 1" in capsys.readouterr().err


def test_metallm_speed_says_where_the_harness_moved(capsys):
    assert metallm(["speed", "--n", "60"]) == 2
    assert "python -m benchmarks.speed" in capsys.readouterr().err


def test_the_module_command_runs_from_the_repository_root():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--rounds" in result.stdout
