"""Telemetry's settings: none, automatic (nothing without OpenTelemetry), or given."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from metallm import ConfigurationError, Router
from metallm.serving import METRICS
from metallm.serving._telemetry import NO_TELEMETRY, telemetry_for


def test_without_opentelemetry_installed_auto_reports_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    assert telemetry_for("auto") is NO_TELEMETRY
    router = Router(["a", "b"], embedder=None)
    call = router.route(np.ones(4), prices={"a": (1.0, 1.0), "b": (1.0, 1.0)})
    assert call.run(lambda decision: decision.arm) in ("a", "b")
    assert call.succeeded(input_tokens=3, output_tokens=4)["cost_usd"] is not None


def test_none_reports_nothing_and_a_typo_is_refused():
    assert telemetry_for(None) is NO_TELEMETRY
    with pytest.raises(ConfigurationError, match="'auto', None or a Telemetry"):
        Router(["a", "b"], embedder=None, telemetry="otel")


def test_every_metric_is_named_and_described_and_labelled_by_bounded_values():
    assert set(METRICS) == {
        "metallm.decisions", "metallm.fallbacks", "metallm.cost", "metallm.tokens",
        "metallm.latency", "metallm.time_to_first_token", "metallm.feedback",
        "metallm.pending_decisions", "metallm.spooled_events", "metallm.quarantined_events",
        "metallm.budget.spent", "metallm.budget.cost_weight",
    }  # fmt: skip
    assert all(description.endswith(".") for description in METRICS.values())
