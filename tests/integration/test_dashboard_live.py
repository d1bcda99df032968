"""Two workers route through ChatMetaLLM into one Redis; telemetry and the dashboard show it.

Each worker (a separate process) sets up OpenTelemetry as an application would (an in-memory
exporter, httpx's instrumentation) and serves Prometheus with one call. While they run, a
headless Chromium (Debian's) opens ``metallm dashboard``'s page over their Redis store.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from metallm import RedisStore
from metallm.dashboard import Dashboard
from tests.integration.conftest import PRICES

ROOT = Path(__file__).resolve().parents[2]
CALLS = 12
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
         *extra, url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _shown(dom: str) -> dict[str, str]:
    return dict(re.findall(r'id="(calls|spend|baseline|saved|failures|unreadable)">([^<]*)<', dom))


@pytest.mark.slow
def test_workers_spans_prometheus_and_the_dashboard_agree(server, redis_url, tmp_path):
    prefix = f"dash{uuid.uuid4().hex[:8]}"
    dashboard = Dashboard(RedisStore(redis_url, prefix=prefix), port=0, refresh_s=1.0).start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.telemetry_worker",
                server.base_url,
                redis_url,
                prefix,
                str(CALLS),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        time.sleep(3)
        during = _shown(_browser(dashboard.url, "--dump-dom").stdout)  # while they route
        outputs = [worker.communicate(timeout=300) for worker in workers]
        for worker, (_, err) in zip(workers, outputs):
            assert worker.returncode == 0, err[-3000:]
        dom = _browser(dashboard.url, "--dump-dom").stdout
        shot = tmp_path / "dashboard.png"
        _browser(dashboard.url, "--window-size=1280,900", f"--screenshot={shot}")
    finally:
        dashboard.stop()
        for worker in workers:
            worker.kill()

    for out, _ in outputs:
        report = json.loads(out.strip().splitlines()[-1])
        assert report["decisions_counted"] == CALLS  # Prometheus counted every call
        assert len(report["routes"]) == CALLS  # one routing span per call ...
        for route in report["routes"]:
            model = route["name"].removeprefix("metallm.route ")
            assert model in PRICES
            assert route["children"] == [f"metallm.attempt {model}"]  # ... its attempt inside
            assert route["grandchildren"] and all(
                n.startswith("POST") for n in route["grandchildren"]
            )

    assert during and int(during["calls"]) <= 2 * CALLS
    shown = _shown(dom)
    assert int(shown["calls"]) == 2 * CALLS and shown["failures"] == "0"
    summary = dashboard.summary.snapshot()
    assert float(shown["spend"]) == pytest.approx(summary["totals"]["spend_usd"], abs=1e-6)
    assert sum(m["calls"] for m in summary["models"].values()) == 2 * CALLS
    drawn = [int(n) for n in re.findall(r'data-drawn="(\d+)"', dom)]
    assert len(drawn) == 4 and all(n > 0 for n in drawn)  # every chart drew its data
    assert shot.stat().st_size > 20_000
    if os.environ.get("METALLM_DOCS_SCREENSHOT"):  # regenerate the docs' picture
        shutil.copy(shot, ROOT / "docs" / "img" / "dashboard.png")
