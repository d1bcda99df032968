"""`metallm bench` and `metallm simulate` end to end on a small table built from real sentences."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from metallm.cli import main
from metallm.testing.prompts import ASTRONOMY, COOKING, arithmetic_questions
from tests.core.evaluation.conftest import MODELS


def test_bench_writes_the_exact_report_and_a_plot(table, tmp_path, capsys):
    out, plot = tmp_path / "report.json", tmp_path / "plot.png"
    assert main(["bench", "--data", str(table), "--json", str(out), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert list(report) == [
        "dataset",
        "n_test",
        "models",
        "single",
        "oracle",
        "router",
        "baseline_linear",
        "budgets",
        "summary",
        "others",
        "latency",
        "blended",
        "capacity",
    ]
    assert report["latency"] == []  # the table has no latency columns
    assert set(report["summary"]) == {"aiq", "aiq_zero", "max_quality", "savings_at_best"}
    assert report["n_test"] == 120 and report["models"] == list(MODELS)
    assert report["router"][0]["p"] == 0.0 and report["baseline_linear"][0]["p"] == 0.0
    assert set(report["router"][0]) == {"p", "quality", "cost"}
    assert {b["budget_model"] for b in report["budgets"]} == set(MODELS)
    by_budget = sorted(report["budgets"], key=lambda b: b["budget"])
    for column in ("oof_quality", "curve_quality"):  # monotone where each is chosen
        values = [b[column] for b in by_budget if b[column] is not None]
        assert values == sorted(values), (column, values)
    assert report["blended"]["name"] == "map + kNN blend, always"
    assert report["blended"]["setting"].startswith("k=")
    assert 0.5 < report["blended"]["max_quality"] <= 1.0
    summary = report["summary"]
    # the router learns cooking + arithmetic -> cheap, astronomy -> pro
    assert summary["max_quality"] > 0.95
    assert summary["aiq"] > summary["aiq_zero"]
    assert summary["savings_at_best"] > 0.5
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["others"] == []  # the literature's routers are the research harness's
    capacity = report["capacity"]  # every candidate cross-validation weighed, best first
    assert len(capacity) == 11 and sum(c["chosen"] for c in capacity) == 1
    # the ten maps and the kNN blend weighed over the best linear one
    assert sum("kNN blend" in c["features"] for c in capacity) == 1
    assert [c["cv_aiq"] for c in capacity] == sorted((c["cv_aiq"] for c in capacity), reverse=True)
    chosen = next(c for c in capacity if c["chosen"])
    assert chosen["eligible"] and chosen["cv_aiq"] == max(
        c["cv_aiq"] for c in capacity if c["eligible"]
    )
    assert chosen["features"] in printed
    assert "aiq" in printed and "plain paper" in printed and "budgets" in printed
    assert "capacity by cross-validation" in printed
    assert "kNN blend" in printed and "out of fold" in printed


def test_bench_reports_a_bad_table_clearly(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,a\nhello,1\n")
    assert main(["bench", "--data", str(bad)]) == 2
    assert "model column 'a' has no cost column" in capsys.readouterr().err


def test_simulate_ucb_beats_random_and_holds_a_budget(table, tmp_path, capsys):
    out, plot = tmp_path / "sim.json", tmp_path / "sim.png"
    assert (
        main(
            [
                "simulate",
                "--data",
                str(table),
                "--budget",
                "0.0006",
                "--json",
                str(out),
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert runs["UCB (cold)"]["regret"] < runs["random (cold)"]["regret"]
    assert runs["UCB (warm)"]["regret"] < runs["random (warm)"]["regret"]
    assert abs(report["budget"]["cost_error"]) < 0.10
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert "dual ascent" in capsys.readouterr().out


def test_bench_and_simulate_run_on_a_static_embedder(table, static_model_dir, tmp_path, capsys):
    out = tmp_path / "static.json"
    assert (
        main(
            ["bench", "--data", str(table), "--static-model", static_model_dir, "--json", str(out)]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert 0.0 < report["summary"]["max_quality"] <= 1.0
    assert main(["simulate", "--data", str(table), "--static-model", static_model_dir]) == 0
    capsys.readouterr()
    # a missing folder is a clear error (exit 2), not a silent fall back to Sentence-BERT
    assert main(["bench", "--data", str(table), "--static-model", str(tmp_path / "absent")]) == 2
    assert "could not load the static embedder" in capsys.readouterr().err


def test_bench_measures_one_fixed_feature_map_on_request(table, tmp_path, capsys):
    from metallm.cli import FEATURE_NAMES
    from metallm.evaluation._bench import FEATURE_CHOICES

    assert list(FEATURE_NAMES) == list(FEATURE_CHOICES)
    assert main(["bench", "--data", str(table), "--features", "projected64"]) == 0
    assert (
        "router features (chosen by 5-fold CV on the training rows): "
        "PromptLengthFeatures(inner=ProjectedFeatures(dims=64" in capsys.readouterr().out
    )


def test_bench_measures_each_embedder_on_the_same_split(table, tmp_path, capsys):
    from metallm.cli import EMBEDDER_NAMES
    from metallm.embedding._choice import EMBEDDER_KINDS

    assert set(EMBEDDER_NAMES) == set(EMBEDDER_KINDS)
    summaries = {}
    for kind in ("sentence-transformers", "onnx", "onnx-int8"):
        out = tmp_path / f"{kind}.json"
        args = ["bench", "--data", str(table), "--embedder", kind, "--json", str(out)]
        assert main(args) == 0
        summaries[kind] = json.loads(out.read_text())["summary"]
    capsys.readouterr()
    # fp32 ONNX computes the same vectors as sentence-transformers, so the same routing
    for key, value in summaries["sentence-transformers"].items():
        assert summaries["onnx"][key] == pytest.approx(value, abs=0.01), key
    assert summaries["onnx-int8"]["max_quality"] > 0.9
    with pytest.raises(SystemExit) as info:
        main(["bench", "--data", str(table), "--embedder", "bert"])
    assert info.value.code == 2 and "invalid choice: 'bert'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def timed_table(tmp_path_factory):
    """Two models equally right everywhere; 'slow' is a little cheaper and ten times slower."""
    rows = [q for q in COOKING * 5] + [q for q in ASTRONOMY * 5]
    rows += [q for q, _ in arithmetic_questions(100, seed=2)]
    path = tmp_path_factory.mktemp("timed") / "timed.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "fast", "slow", "fast|total_cost", "slow|total_cost",
                         "fast|latency", "slow|latency"])  # fmt: skip
        for i, prompt in enumerate(rows):
            jitter = (i % 7) / 70
            writer.writerow([prompt, 0.9, 0.9, 0.0012, 0.001, 0.3 + jitter, 3.0 + jitter])
    return path


def test_a_tables_latency_columns_are_read_and_used_by_simulate_and_bench(
    timed_table, tmp_path, capsys
):
    from metallm.evaluation._datasets import load_routing_table

    assert load_routing_table(timed_table).latency.shape[1] == 2
    out = tmp_path / "simulate.json"
    args = ["simulate", "--data", str(timed_table), "--seed", "0", "--json", str(out)]
    assert main([*args, "--latency-weight", "1.0"]) == 0
    weighed = json.loads(out.read_text())["runs"]["UCB (cold)"]
    assert main(args) == 0  # weight 0: latency is learned but not weighed
    ignored = json.loads(out.read_text())["runs"]["UCB (cold)"]
    assert weighed["latency"] < 0.8 < ignored["latency"]  # fast 0.3-0.4 s, slow 3.0-3.1 s
    assert "s/query" in capsys.readouterr().out
    report = tmp_path / "bench.json"
    assert main(["bench", "--data", str(timed_table), "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["latency"]
    assert [r["latency_weight"] for r in rows] == [0.0, 0.1, 0.3, 1.0]
    assert rows[-1]["latency"] < 0.5 and rows[-1]["quality"] == pytest.approx(0.9)
    assert "latency (the router at p = 0.1" in capsys.readouterr().out


def test_a_latency_weight_needs_latency_columns(table, capsys):
    assert main(["simulate", "--data", str(table), "--latency-weight", "0.5"]) == 2
    assert "needs latency columns" in capsys.readouterr().err


def test_bench_calibrates_budgets_at_the_significance_asked(table, tmp_path, capsys):
    strict, plain = tmp_path / "strict.json", tmp_path / "plain.json"
    assert main(["bench", "--data", str(table), "--json", str(strict)]) == 0
    assert main(["bench", "--data", str(table), "--json", str(plain), "--significance", "0"]) == 0
    for path in (strict, plain):
        rows = sorted(json.loads(path.read_text())["budgets"], key=lambda b: b["budget"])
        oof = [b["oof_quality"] for b in rows if b["oof_quality"] is not None]
        assert oof == sorted(oof)
    by_model = {b["budget_model"]: b for b in json.loads(plain.read_text())["budgets"]}
    for b in json.loads(strict.read_text())["budgets"]:  # no stricter rule finds more out of fold
        if b["oof_quality"] is not None:
            assert b["oof_quality"] <= by_model[b["budget_model"]]["oof_quality"] + 1e-12
    capsys.readouterr()
    assert main(["bench", "--data", str(table), "--significance", "-1"]) == 2
    assert "significance must be a finite number >= 0" in capsys.readouterr().err


def test_the_budget_rows_script_counts_monotone_columns_over_splits(table, monkeypatch, capsys):
    """benchmarks/budget_rows.py: out-of-fold and curve columns rise with the budget on every split."""
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "benchmarks" / "budget_rows.py"
    argv = ["budget_rows.py", "--data", str(table), "--seeds", "0,1", "--fold-seeds", "2"]
    monkeypatch.setattr("sys.argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out
    assert "out of fold 2/2, curve 2/2" in printed
    assert "out of fold, fold seed 1:" in printed and "test rows:" in printed


def test_long_commands_say_what_they_are_doing_on_stderr(table, capsys):
    assert main(["bench", "--data", str(table)]) == 0
    err = capsys.readouterr().err
    for step in ("fitting the default router", "fitting the kNN blend", "the paper's budget"):
        assert f"metallm: {step}" in err, step
        assert any(
            line.startswith(f"metallm: {step}") and line.endswith(" s") for line in err.splitlines()
        )
    assert main(["simulate", "--data", str(table), "--budget", "0.0005"]) == 0
    err = capsys.readouterr().err
    assert "simulating" in err and "query" in err  # a bar over the replayed queries
    assert "holding the budget" in err and "finding the hindsight p" in err


def _kept_figures(monkeypatch) -> list:  # noqa: ANN001
    """The figures the plots draw, kept instead of closed, to look at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept: list = []
    monkeypatch.setattr(plt, "close", kept.append)
    return kept


def _legible(fig) -> None:  # noqa: ANN001
    """Every labelled line and point set has a legend entry, in its own colour, off the data."""
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    entries = {text.get_text() for legend in legends for text in legend.get_texts()}
    drawn = [
        artist
        for ax in fig.axes
        for artist in (*ax.get_lines(), *ax.collections)
        if artist.get_label() and not artist.get_label().startswith("_")
    ]
    assert drawn and {a.get_label() for a in drawn} <= entries
    colours: dict[str, tuple] = {}
    for artist in drawn:
        colour = matplotlib_colour(artist)
        colours.setdefault(artist.get_label(), colour)
    by_colour = {}
    for label, colour in colours.items():
        assert by_colour.setdefault(colour, label) == label, f"{label} shares a colour"
    fig.canvas.draw()
    for legend in legends:
        box = legend.get_window_extent()
        assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes), "legend on data"


def matplotlib_colour(artist) -> tuple:  # noqa: ANN001
    from matplotlib.colors import to_rgba

    colour = artist.get_color() if hasattr(artist, "get_color") else artist.get_facecolor()
    if not isinstance(colour, str) and len(colour) and not isinstance(colour[0], float):
        colour = colour[0]
    return tuple(round(c, 3) for c in to_rgba(colour))


def test_the_plots_give_every_line_its_own_colour_and_a_legend_entry_off_the_data(
    table, tmp_path, monkeypatch
):
    kept = _kept_figures(monkeypatch)
    assert main(["bench", "--data", str(table), "--plot", str(tmp_path / "b.png")]) == 0
    assert (
        main(
            [
                "simulate",
                "--data",
                str(table),
                "--budget",
                "0.0005",
                "--plot",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )
    bench, simulation = kept
    _legible(bench)
    _legible(simulation)
    assert len({line.get_label() for ax in simulation.axes for line in ax.get_lines()}) >= 13


def test_a_budget_row_is_never_below_the_model_whose_budget_it_spends(table, monkeypatch, capsys):
    """Where the router cannot beat a model out of fold at that model's cost, the row sends
    every query to the model: its test quality is then exactly that model's."""
    import metallm.evaluation._bench as bench
    from metallm.learning import Calibration

    real = bench.calibrate_cost_weight

    def worse_out_of_fold(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        found = real(*args, **kwargs)
        return Calibration(cost_weight=found.cost_weight, quality=-1.0, cost=found.cost)

    monkeypatch.setattr(bench, "calibrate_cost_weight", worse_out_of_fold)
    result = bench.run_bench(table, progress=False)
    for row in result.budgets:
        assert row.alone and row.p is None
        assert row.quality == pytest.approx(result.single[row.budget_model].quality)
        assert row.cost == pytest.approx(result.single[row.budget_model].cost)
    from metallm.evaluation._reports import render_bench

    assert "all to it" in render_bench(result)
    monkeypatch.setattr(bench, "calibrate_cost_weight", real)
    honest = bench.run_bench(table, progress=False)
    assert any(not row.alone and row.p is not None for row in honest.budgets)  # it can beat some


def test_bench_over_several_seeds_reports_each_methods_spread_and_paired_difference(
    table, tmp_path, capsys
):
    out, plot = tmp_path / "seeds.json", tmp_path / "seeds.png"
    argv = [
        "bench",
        "--data",
        str(table),
        "--seeds",
        "0-2",
        "--json",
        str(out),
        "--plot",
        str(plot),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["seeds"] == [0, 1, 2]
    methods = report["methods"]
    assert {"metallm default", "plain paper (linear)", "map + kNN blend, always"} <= set(methods)
    assert all(len(m["aiq"]) == 3 for m in methods.values())
    mean, sd, se = report["summary"]["metallm default"]["aiq"]
    assert mean == pytest.approx(np.mean(methods["metallm default"]["aiq"]))
    assert se == pytest.approx(sd / np.sqrt(3))
    diff, diff_se, verdict = report["summary"]["plain paper (linear)"]["vs_default_aiq"]
    paired = np.subtract(methods["plain paper (linear)"]["aiq"], methods["metallm default"]["aiq"])
    assert diff == pytest.approx(paired.mean())
    assert verdict in {"ahead", "behind", "within noise"}
    assert plot.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert printed.count("seed ") >= 3 and "AIQ vs default" in printed
    assert len(report["served"]) == 3 and all("Features(" in s for s in report["served"])
    assert "the default's fit served: " in printed and "/3" in printed


def test_bench_seeds_must_be_integers(table, capsys):
    assert main(["bench", "--data", str(table), "--seeds", "zero-nine"]) == 2
    assert "--seeds takes 'A-B' or 'A,B,C'" in capsys.readouterr().err
