"""A small routing table built from real sentences, shared by the evaluation tests."""

from __future__ import annotations

import csv

import pytest

from metallm.testing.prompts import ASTRONOMY, COOKING, arithmetic_questions

MODELS = {"cheap": 0.0001, "pro": 0.002, "weak": 0.00005}  # USD per query


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """400 prompts: 'cheap' is right on cooking and arithmetic, 'pro' on everything, 'weak' on cooking."""
    rows = [(q, "cooking") for q in COOKING * 5] + [(q, "astronomy") for q in ASTRONOMY * 5]
    rows += [(q, "arithmetic") for q, _ in arithmetic_questions(160, seed=1)]
    path = tmp_path_factory.mktemp("bench") / "small.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "task", *MODELS, *(f"{m}|total_cost" for m in MODELS)])
        for prompt, task in rows:
            right = {"cheap": task != "astronomy", "pro": True, "weak": task == "cooking"}
            writer.writerow([prompt, task, *(float(right[m]) for m in MODELS), *MODELS.values()])
    return path
