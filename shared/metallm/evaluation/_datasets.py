"""Routing tables: logged per-prompt outcomes of every model, the data users bring.

One row per prompt, RouterBench's wide layout: ``prompt``, an optional ``task``, and per
model ``M`` a column ``M`` (quality of its answer in [0, 1]) and ``M|total_cost`` (USD), and
optionally ``M|latency`` (seconds; every model's, or none).
Reads ``.csv``, ``.jsonl`` and ``.parquet`` (the last needs pyarrow).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metallm.exceptions import RoutingTableError

__all__ = ["COST_SUFFIX", "LATENCY_SUFFIX", "RoutingTable", "load_routing_table"]

COST_SUFFIX = "|total_cost"
LATENCY_SUFFIX = "|latency"
_RESERVED = {"prompt", "task"}


@dataclass(frozen=True)
class RoutingTable:
    """Prompts with every model's quality and cost: ``quality`` and ``cost`` are (n, k).

    Attributes:
        name: The table's name.
        prompts: The n prompts.
        tasks: Each prompt's task, when known.
        models: The k models.
        quality: (n, k) qualities in [0, 1].
        cost: (n, k) USD.
        latency: (n, k) seconds, when known.
    """

    name: str
    prompts: list[str]
    tasks: list[str] | None
    models: tuple[str, ...]
    quality: np.ndarray
    cost: np.ndarray
    latency: np.ndarray | None = None
    """Seconds per call, (n, k), when the table has ``M|latency`` columns."""

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: Sequence[int] | np.ndarray) -> RoutingTable:
        """The same table restricted to ``rows`` (in that order).

        Args:
            rows: The rows to keep.
        """
        index = np.asarray(rows, dtype=int)
        return RoutingTable(
            name=self.name,
            prompts=[self.prompts[i] for i in index],
            tasks=None if self.tasks is None else [self.tasks[i] for i in index],
            models=self.models,
            quality=self.quality[index],
            cost=self.cost[index],
            latency=None if self.latency is None else self.latency[index],
        )


def load_routing_table(path: str | Path) -> RoutingTable:
    """Read and validate a routing table; `RoutingTableError` names the column or row.

    Args:
        path: A .csv, .jsonl or .parquet table.
    """
    source = Path(path)
    if not source.is_file():
        raise RoutingTableError(f"{source}: no such file")
    suffix = source.suffix.lower()
    if suffix == ".csv":
        columns, rows = _read_csv(source)
    elif suffix == ".jsonl":
        columns, rows = _read_jsonl(source)
    elif suffix == ".parquet":
        columns, rows = _read_parquet(source)
    else:
        raise RoutingTableError(
            f"{source}: unsupported format {suffix!r}; use .csv, .jsonl or .parquet"
        )
    return _build(source, columns, rows)


def _read_csv(source: Path) -> tuple[list[str], list[dict[str, Any]]]:
    csv.field_size_limit(1 << 30)
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise RoutingTableError(f"{source}: the file is empty") from None
        dupes = sorted({c for c in header if header.count(c) > 1})
        if dupes:
            raise RoutingTableError(f"{source}: duplicate columns {dupes}")
        rows = []
        for number, values in enumerate(reader, start=2):
            if len(values) != len(header):
                raise RoutingTableError(
                    f"{source}: line {number} has {len(values)} fields, the header {len(header)}"
                )
            rows.append(dict(zip(header, values)))
    return header, rows


def _read_jsonl(source: Path) -> tuple[list[str], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    with source.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise RoutingTableError(f"{source}: line {number} is not JSON ({e})") from e
            if not isinstance(row, dict):
                raise RoutingTableError(f"{source}: line {number} is not a JSON object")
            if not columns:
                columns = list(row)
            rows.append(row)
    return columns, rows


def _read_parquet(source: Path) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RoutingTableError(
            "reading .parquet needs pyarrow: pip install 'metallm[bench]'"
        ) from e
    table = pq.read_table(source)
    columns = list(table.column_names)
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise RoutingTableError(f"{source}: duplicate columns {dupes}")
    return columns, table.to_pylist()


def _number(source: Path, value: Any, column: str, row: int) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RoutingTableError(
            f"{source}: row {row}, column {column!r}: {value!r} is not a number"
        ) from None
    if not math.isfinite(number):
        raise RoutingTableError(
            f"{source}: row {row}, column {column!r}: {value!r} is not a finite number"
        )
    return number


def _build(source: Path, columns: list[str], rows: list[dict[str, Any]]) -> RoutingTable:
    if "prompt" not in columns:
        raise RoutingTableError(f"{source}: no 'prompt' column")
    models = [
        c
        for c in columns
        if c not in _RESERVED and not c.endswith(COST_SUFFIX) and not c.endswith(LATENCY_SUFFIX)
    ]
    latencies = [c for c in columns if c.endswith(LATENCY_SUFFIX)]
    for column in latencies:
        if column[: -len(LATENCY_SUFFIX)] not in models:
            raise RoutingTableError(f"{source}: latency column {column!r} has no quality column")
    if latencies and len(latencies) != len(models):
        missing = [m + LATENCY_SUFFIX for m in models if m + LATENCY_SUFFIX not in columns]
        raise RoutingTableError(
            f"{source}: latency columns for some models but not {missing}: give every model's or none"
        )
    costs = [c for c in columns if c.endswith(COST_SUFFIX)]
    if not models:
        raise RoutingTableError(
            f"{source}: no model columns (expected 'M' and 'M{COST_SUFFIX}' per model)"
        )
    for model in models:
        if model + COST_SUFFIX not in columns:
            raise RoutingTableError(
                f"{source}: model column {model!r} has no cost column {model + COST_SUFFIX!r}"
            )
    for column in costs:
        if column[: -len(COST_SUFFIX)] not in models:
            raise RoutingTableError(f"{source}: cost column {column!r} has no quality column")
    if not rows:
        raise RoutingTableError(f"{source}: the table has no rows")
    n, k = len(rows), len(models)
    quality, cost = np.empty((n, k)), np.empty((n, k))
    latency = np.empty((n, k)) if latencies else None
    prompts: list[str] = []
    tasks: list[str] | None = [] if "task" in columns else None
    for i, row in enumerate(rows):
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise RoutingTableError(f"{source}: row {i + 1} has an empty prompt")
        prompts.append(prompt)
        if tasks is not None:
            tasks.append(str(row.get("task") or ""))
        for j, model in enumerate(models):
            q = _number(source, row.get(model), model, i + 1)
            if not 0.0 <= q <= 1.0:
                raise RoutingTableError(
                    f"{source}: row {i + 1}, column {model!r}: quality {q} is outside [0, 1]"
                )
            c = _number(source, row.get(model + COST_SUFFIX), model + COST_SUFFIX, i + 1)
            if c < 0:
                raise RoutingTableError(
                    f"{source}: row {i + 1}, column {model + COST_SUFFIX!r}: negative cost {c}"
                )
            quality[i, j], cost[i, j] = q, c
            if latency is not None:
                name = model + LATENCY_SUFFIX
                seconds = _number(source, row.get(name), name, i + 1)
                if seconds < 0:
                    raise RoutingTableError(
                        f"{source}: row {i + 1}, column {name!r}: negative latency {seconds}"
                    )
                latency[i, j] = seconds
    return RoutingTable(source.stem, prompts, tasks, tuple(models), quality, cost, latency)
