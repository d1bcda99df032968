"""``metallm dashboard``: a local web page of what routing spends, saves and chooses.

The page (Chart.js, shipped with metallm) fetches ``/api/summary`` every few seconds; the
server folds the store's new events before answering, so many workers writing to one Redis
show up as they write. It binds to 127.0.0.1 by default; bound to any other address it needs
a token (``?token=`` in the page's address, or ``Authorization: Bearer``).
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from metallm.dashboard._summary import LogSummary
from metallm.exceptions import ConfigurationError
from metallm.serving import Budget
from metallm.state import BudgetStore, StateStore

__all__ = ["Dashboard"]

logger = logging.getLogger(__name__)

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Dashboard:
    """The dashboard's web server over one store.

    Args:
        store: The store the workers share.
        host: The address to bind (loopback by default).
        port: The port (0: a free one; see ``port`` after construction).
        token: Required on every request (and required when ``host`` is not loopback).
        refresh_s: Seconds between the page's updates.
        budget: The workers' `metallm.Budget` (its name, period and cap): the page then shows
            the period's spend against the cap and the shared ``p``.

    Raises:
        ConfigurationError: Bound beyond loopback without a token.
    """

    def __init__(
        self,
        store: StateStore,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        refresh_s: float = 5.0,
        budget: Budget | None = None,
    ) -> None:
        if host not in _LOOPBACK and not token:
            raise ConfigurationError(
                f"the dashboard binds {host}, beyond this machine: give it a token (--token, or "
                "$METALLM_DASHBOARD_TOKEN), which every request must carry"
            )
        self.summary = LogSummary(store)
        self.budget = budget
        self.token = token
        self.refresh_s = refresh_s
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("dashboard: " + format, *args)

            def do_GET(self) -> None:
                dashboard._answer(self)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address (with its token)."""
        query = f"?token={self.token}" if self.token else ""
        return f"http://{self.host}:{self.port}/{query}"

    def serve_forever(self) -> None:
        """Serve until interrupted."""
        self._server.serve_forever()

    def start(self) -> Dashboard:
        """Serve on a background thread (tests, notebooks); ``stop()`` ends it."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        url = urlparse(request.path)
        if self.token is not None and not self._authorised(request, url.query):
            return _send(request, 401, b"a token is needed: ?token=...", "text/plain")
        if url.path == "/":
            page = _page(self.refresh_s, self.token).encode("utf-8")
            return _send(request, 200, page, "text/html; charset=utf-8")
        if url.path == "/static/chart.umd.min.js":
            script = (files("metallm.dashboard") / "static" / "chart.umd.min.js").read_bytes()
            return _send(request, 200, script, "text/javascript")
        if url.path == "/api/summary":
            try:
                self.summary.update()
            except Exception as e:  # the store is down: show what was read, and why
                logger.warning("metallm dashboard could not read %s: %s", self.summary.store, e)
                body = {**self.summary.snapshot(), "error": f"{type(e).__name__}: {e}"}
            else:
                body = {**self.summary.snapshot(), "error": None}
            body["budget"] = self._budget()
            return _send(request, 200, json.dumps(body).encode("utf-8"), "application/json")
        return _send(request, 404, b"not found", "text/plain")

    def _budget(self) -> dict[str, Any] | None:
        """The budget's current period as the store holds it (None: no budget given)."""
        budget, store = self.budget, self.summary.store
        if budget is None or not isinstance(store, BudgetStore):
            return None
        try:
            state = store.budget_state(budget.name, budget.period_index(budget.clock()))
        except Exception as e:
            return {"name": budget.name, "error": f"{type(e).__name__}: {e}"}
        return {
            "name": budget.name,
            "spent_usd": state.spent,
            "queries": state.queries,
            "cost_weight": state.cost_weight,
            "cap_usd": budget.cap,
            "usd_per_query": budget.usd_per_query,
        }

    def _authorised(self, request: BaseHTTPRequestHandler, query: str) -> bool:
        given = parse_qs(query).get("token", [""])[0]
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer ") :]
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token.encode())


def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
    request.send_response(status)
    request.send_header("Content-Type", kind)
    request.send_header("Content-Length", str(len(body)))
    request.send_header("Cache-Control", "no-store")
    request.end_headers()
    request.wfile.write(body)


def _page(refresh_s: float, token: str | None) -> str:
    query = "" if token is None else "?" + urlencode({"token": token})
    return _PAGE.replace("__REFRESH_MS__", str(int(refresh_s * 1000))).replace(
        "__TOKEN_QUERY__", html.escape(query)
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>metallm dashboard</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
 .totals { display: flex; gap: 2rem; flex-wrap: wrap; margin-bottom: 1rem; }
 .totals div { min-width: 9rem; } .totals b { display: block; font-size: 1.5rem; }
 .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1.5rem; }
 .panel { border: 1px solid #ddd; border-radius: 6px; padding: .75rem; }
 .error { color: #b00; } small { color: #666; }
</style></head><body>
<h1>metallm: what routing spends, saves and chooses</h1>
<p><small id="store"></small> <small id="updated"></small> <span class="error" id="error"></span></p>
<div class="totals">
 <div>calls <b id="calls">-</b></div>
 <div>spend (USD) <b id="spend">-</b></div>
 <div>on the best model, estimated <b id="baseline">-</b></div>
 <div>saved <b id="saved">-</b></div>
 <div>failures <b id="failures">-</b></div>
 <div>unreadable log entries <b id="unreadable">-</b></div>
 <div>budget: spent this period / cap <b id="budget">-</b></div>
 <div>budget's p <b id="budgetP">-</b></div>
</div>
<div class="grid">
 <div class="panel"><h3>Spend per day against always the best model</h3><canvas id="spendChart"></canvas></div>
 <div class="panel"><h3>Calls per model per day</h3><canvas id="sharesChart"></canvas></div>
 <div class="panel"><h3>Mean quality per model (feedback and judges)</h3><canvas id="qualityChart"></canvas></div>
 <div class="panel"><h3>Failures and mean latency per model</h3><canvas id="failuresChart"></canvas></div>
</div>
<script src="/static/chart.umd.min.js__TOKEN_QUERY__"></script>
<script>
const token = new URLSearchParams(location.search).get("token");
const palette = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
const charts = {};
function draw(id, config) {
  if (charts[id]) { charts[id].data = config.data; charts[id].update("none"); }
  else { config.options = Object.assign({animation: false, responsive: true}, config.options || {});
         charts[id] = new Chart(document.getElementById(id), config); }
  document.getElementById(id).dataset.drawn = String(config.data.datasets.reduce((n, d) => n + d.data.length, 0));
}
async function refresh() {
  const response = await fetch("/api/summary" + (token ? "?token=" + encodeURIComponent(token) : ""));
  const s = await response.json();
  const models = Object.keys(s.models), days = s.days.map(d => d.day);
  document.getElementById("calls").textContent = s.totals.calls;
  document.getElementById("spend").textContent = s.totals.spend_usd.toFixed(6);
  document.getElementById("baseline").textContent = s.totals.baseline_usd.toFixed(6);
  document.getElementById("saved").textContent = s.totals.saved_usd.toFixed(6);
  document.getElementById("failures").textContent = s.totals.failures;
  document.getElementById("unreadable").textContent = s.totals.unreadable;
  document.getElementById("store").textContent = s.store + (s.best_model ? "; best model: " + s.best_model : "");
  document.getElementById("updated").textContent = "updated " + new Date(s.updated * 1000).toLocaleTimeString();
  document.getElementById("error").textContent = s.error || (s.budget && s.budget.error) || "";
  if (s.budget && !s.budget.error) {
    document.getElementById("budget").textContent = s.budget.spent_usd.toFixed(6) + " / " +
      (s.budget.cap_usd === null ? "no cap" : s.budget.cap_usd.toFixed(2));
    document.getElementById("budgetP").textContent = s.budget.cost_weight === null ? "-" : s.budget.cost_weight.toFixed(3);
  }
  draw("spendChart", {type: "line", data: {labels: days, datasets: [
    {label: "spend (USD)", data: s.days.map(d => Object.values(d.spend_usd).reduce((a, b) => a + b, 0)), borderColor: palette[0]},
    {label: "always the best model, estimated", data: s.days.map(d => d.baseline_usd), borderColor: palette[3], borderDash: [6, 4]}]}});
  draw("sharesChart", {type: "bar", data: {labels: days, datasets: models.map((m, i) => (
    {label: m, data: s.days.map(d => d.calls[m] || 0), backgroundColor: palette[i % palette.length]}))},
    options: {scales: {x: {stacked: true}, y: {stacked: true}}}});
  draw("qualityChart", {type: "bar", data: {labels: models, datasets: [
    {label: "mean quality", data: models.map(m => s.models[m].quality), backgroundColor: palette[2]}]},
    options: {scales: {y: {min: 0, max: 1}}}});
  draw("failuresChart", {type: "bar", data: {labels: models, datasets: [
    {label: "failures", data: models.map(m => s.models[m].failures), backgroundColor: palette[3]},
    {label: "mean latency (s)", data: models.map(m => s.models[m].latency_s), backgroundColor: palette[4], yAxisID: "seconds"}]},
    options: {scales: {y: {title: {display: true, text: "failures"}, beginAtZero: true},
                       seconds: {position: "right", title: {display: true, text: "seconds"}, beginAtZero: true, grid: {drawOnChartArea: false}}}}});
  document.body.dataset.ready = "yes";
}
refresh(); setInterval(refresh, __REFRESH_MS__);
</script></body></html>
"""
