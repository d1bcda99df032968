"""Loading routing tables: the three formats, and errors that name the column or row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metallm.evaluation._datasets import load_routing_table
from metallm.exceptions import RoutingTableError

HEADER = "prompt,task,a,b,a|total_cost,b|total_cost\n"


def _csv(tmp_path, body, header=HEADER, name="t.csv"):
    path = tmp_path / name
    path.write_text(header + body)
    return path


def test_a_table_in_routerbenchs_layout_loads_with_quoted_prompts_and_many_models(tmp_path):
    """The layout of the team's real tables (``../shared/data``, read only by the benchmarks)."""
    models = ["gpt-4", "text-davinci-002", "j1-large"]
    header = "prompt,task," + ",".join(models) + "," + ",".join(f"{m}|total_cost" for m in models)
    rows = [
        '"Is this overruling? ""We overrule Smith, in part.""",overruling,1,1,0,0.009,0.002,7e-05',
        '"Line one\nline two, with a comma",overruling,0,1,1,0.008,0.002,8e-05',
    ]
    table = load_routing_table(_csv(tmp_path, "\n".join(rows) + "\n", header=header + "\n"))
    assert list(table.models) == models and len(table) == 2 and table.tasks == ["overruling"] * 2
    assert table.prompts[0] == 'Is this overruling? "We overrule Smith, in part."'
    assert table.prompts[1] == "Line one\nline two, with a comma"
    np.testing.assert_array_equal(table.quality, [[1, 1, 0], [0, 1, 1]])
    assert table.cost.min() == pytest.approx(7e-05)


def test_csv_jsonl_and_parquet_give_the_same_table(tmp_path):
    csv_path = _csv(tmp_path, 'hello,t1,1,0,0.001,0.01\n"bye, now",t2,0.5,1,0.002,0.02\n')
    rows = [
        {
            "prompt": "hello",
            "task": "t1",
            "a": 1,
            "b": 0,
            "a|total_cost": 0.001,
            "b|total_cost": 0.01,
        },
        {
            "prompt": "bye, now",
            "task": "t2",
            "a": 0.5,
            "b": 1,
            "a|total_cost": 0.002,
            "b|total_cost": 0.02,
        },
    ]
    jsonl_path = tmp_path / "t.jsonl"
    jsonl_path.write_text("\n".join(json.dumps(r) for r in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet_path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet_path)
    tables = [load_routing_table(p) for p in (csv_path, jsonl_path, parquet_path)]
    for table in tables:
        assert table.models == ("a", "b") and table.prompts == ["hello", "bye, now"]
        np.testing.assert_array_equal(table.quality, [[1, 0], [0.5, 1]])
        np.testing.assert_array_equal(table.cost, [[0.001, 0.01], [0.002, 0.02]])


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        (
            "prompt,a,b,a|total_cost\n",
            "x,1,0,0.1\n",
            "model column 'b' has no cost column 'b|total_cost'",
        ),
        (
            "prompt,a,a|total_cost,c|total_cost\n",
            "x,1,0.1,0.1\n",
            "cost column 'c|total_cost' has no quality column",
        ),
        (HEADER, "x,t,nan,0,0.1,0.1\n", "row 1, column 'a': 'nan' is not a finite number"),
        (HEADER, "x,t,1.5,0,0.1,0.1\n", "row 1, column 'a': quality 1.5 is outside \\[0, 1\\]"),
        (HEADER, "x,t,1,0,-0.1,0.1\n", "row 1, column 'a\\|total_cost': negative cost"),
        (HEADER, "x,t,1,0,0.1,\n", "row 1, column 'b\\|total_cost': '' is not a number"),
        (HEADER, "ok,t,1,0,0.1,0.1\n  ,t,1,0,0.1,0.1\n", "row 2 has an empty prompt"),
        ("prompt,a,a,a|total_cost\n", "x,1,1,0.1\n", "duplicate columns \\['a'\\]"),
        ("question,a,a|total_cost\n", "x,1,0.1\n", "no 'prompt' column"),
        (HEADER, "x,t,1,0\n", "line 2 has 4 fields, the header 6"),
        (HEADER, "", "no rows"),
    ],
)
def test_bad_tables_are_rejected_with_the_place(tmp_path, header, body, message):
    with pytest.raises(RoutingTableError, match=message):
        load_routing_table(_csv(tmp_path, body, header))


def test_unsupported_format_and_missing_file(tmp_path):
    with pytest.raises(RoutingTableError, match="unsupported format '.xlsx'"):
        load_routing_table(_csv(tmp_path, "", name="t.xlsx"))
    with pytest.raises(RoutingTableError, match="no such file"):
        load_routing_table(tmp_path / "missing.csv")


def test_latency_columns_must_cover_every_model_and_be_seconds(tmp_path):
    import pytest

    from metallm.evaluation._datasets import load_routing_table
    from metallm.exceptions import RoutingTableError

    head = "prompt,a,b,a|total_cost,b|total_cost"
    partial = tmp_path / "partial.csv"
    partial.write_text(f"{head},a|latency\nhi,1,0,0.1,0.2,0.5\n")
    with pytest.raises(RoutingTableError, match="give every model's or none"):
        load_routing_table(partial)
    negative = tmp_path / "negative.csv"
    negative.write_text(f"{head},a|latency,b|latency\nhi,1,0,0.1,0.2,0.5,-1\n")
    with pytest.raises(RoutingTableError, match="negative latency"):
        load_routing_table(negative)
    fine = tmp_path / "fine.csv"
    fine.write_text(f"{head},a|latency,b|latency\nhi,1,0,0.1,0.2,0.5,1.5\n")
    table = load_routing_table(fine)
    assert table.latency.tolist() == [[0.5, 1.5]] and table.subset([0]).latency.tolist() == [
        [0.5, 1.5]
    ]
