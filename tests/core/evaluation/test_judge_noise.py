"""`metallm simulate --judge-noise`: the default router learning from a simulated noisy judge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metallm.cli import main
from metallm.evaluation import JudgeNoise, run_judge_noise


def test_the_judge_grades_the_sampled_share_and_flips_the_stated_share():
    rng = np.random.default_rng(0)
    noise = JudgeNoise(flip=0.2, sample=0.5)
    grades = [noise.grade(1.0, rng) for _ in range(20_000)]
    graded = [g for g in grades if g is not None]
    assert len(graded) / len(grades) == pytest.approx(0.5, abs=0.02)
    assert graded.count(0.0) / len(graded) == pytest.approx(0.2, abs=0.02)
    assert set(graded) == {0.0, 1.0}


def test_gaussian_grade_noise_stays_in_the_unit_interval():
    rng = np.random.default_rng(1)
    grades = np.array([JudgeNoise(sigma=0.5).grade(0.9, rng) for _ in range(5_000)])
    assert grades.min() >= 0.0 and grades.max() <= 1.0
    assert 0.0 < grades.std() < 0.5


@pytest.mark.parametrize(
    "kwargs", [{"flip": -0.1}, {"flip": 1.5}, {"sample": 0.0}, {"sample": 1.1}, {"sigma": -1.0}]
)
def test_settings_out_of_range_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        JudgeNoise(**kwargs)


def test_a_worse_judge_and_fewer_grades_cost_regret_on_a_real_sentence_table(table):
    result = run_judge_noise(
        table, flips=(0.0, 0.4), samples=(1.0, 0.2), seeds=(0, 1), progress=False
    )
    assert [(r.flip, r.sample) for r in result.rows] == [
        (0.0, 1.0), (0.0, 0.2), (0.4, 1.0), (0.4, 0.2)
    ]  # fmt: skip
    full, sparse = result.row(0.0, 1.0), result.row(0.0, 0.2)
    wrong = result.row(0.4, 1.0)
    assert full.graded == result.n_queries  # every answer graded
    assert sparse.graded == pytest.approx(0.2 * result.n_queries, rel=0.2)
    assert full.regret < wrong.regret  # a judge wrong 40% of the time teaches worse routing
    assert full.regret < sparse.regret  # and a fifth of the grades teaches slower
    assert full.quality > wrong.quality
    assert result.best_model == "pro" and result.best_cost == pytest.approx(0.002)
    assert full.savings == pytest.approx(1 - full.cost / 0.002)
    assert full.savings > 0.3  # cheap answers cooking and arithmetic as well as pro
    assert "vs full labels" in result.render()


def test_the_cli_writes_the_table_json_and_a_plot(table, tmp_path, capsys):
    out, plot = tmp_path / "judge.json", tmp_path / "judge.png"
    argv = ["simulate", "--data", str(table), "--judge-noise", "0,0.3", "--judge-sample", "1",
            "--seeds", "0", "--json", str(out), "--plot", str(plot)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert [(r["flip"], r["sample"]) for r in report["rows"]] == [(0.0, 1.0), (0.3, 1.0)]
    assert report["seeds"] == [0]
    assert plot.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "judge errs (f)" in printed and "best single model pro" in printed


def test_the_cli_says_what_is_wrong_with_a_bad_list(table, capsys):
    assert main(["simulate", "--data", str(table), "--judge-noise", "0,x"]) == 2
    assert "--judge-noise must be comma-separated numbers" in capsys.readouterr().err
    assert (
        main(["simulate", "--data", str(table), "--judge-noise", "0", "--judge-sample", "0"]) == 2
    )
    assert "sample must be in (0, 1]" in capsys.readouterr().err
