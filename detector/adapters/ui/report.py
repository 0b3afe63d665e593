"""``querywatch replay --html``: a back-test as one self-contained page.

The page carries its data, the vendored uPlot and its script inline, so it opens from a
file with no network and no server. It shows the summary, the top clients' risk over event
time (the dashboard's chart, with the alert threshold and the first alert marked) and a
table of the clients by peak risk. Raw inputs are never in it: the report holds none.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from typing import Any

from querywatch.detector.pipeline.replay import ReplayReport

#: Nothing may be fetched: inline script and style only.
_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
#: Clients listed in the page's table (the JSON report has them all).
TABLE_ROWS = 200

_SCRIPT = """
const data = JSON.parse(document.getElementById("report-data").textContent);
const cell = (row, text) => {
  const td = document.createElement("td"); td.textContent = text; row.append(td);
};
const table = document.querySelector("#clients tbody");
for (const c of data.table) {
  const row = document.createElement("tr");
  cell(row, c.client_id); cell(row, c.queries); cell(row, c.risk.toFixed(3));
  cell(row, c.first_alert_query ?? "-"); cell(row, c.reasons[0] ?? "");
  table.append(row);
}
const charts = document.getElementById("charts");
for (const c of data.charts) {
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  caption.textContent = `${c.client_id}: ${c.queries} queries, peak risk ${c.risk.toFixed(3)}` +
    (c.first_alert_query ? `, alerted at query ${c.first_alert_query}` : "");
  figure.append(caption);
  charts.append(figure);
  const xs = c.points.map((p) => p[1]), ys = c.points.map((p) => p[2]);
  const alertAt = c.first_alert_ts;
  new uPlot({
    width: 560, height: 180, scales: { x: { time: true }, y: { range: [0, 1] } },
    series: [{}, { label: "risk", stroke: "#1f5fbf", width: 2 },
             { label: "alert threshold", stroke: "#c0392b", dash: [6, 4] }],
    hooks: { draw: [(u) => {
      if (alertAt == null) return;
      const x = Math.round(u.valToPos(alertAt, "x", true));
      u.ctx.save(); u.ctx.strokeStyle = "#c0392b"; u.ctx.setLineDash([2, 3]);
      u.ctx.beginPath(); u.ctx.moveTo(x, u.bbox.top); u.ctx.lineTo(x, u.bbox.top + u.bbox.height);
      u.ctx.stroke(); u.ctx.restore();
    }] },
  }, [xs, ys, xs.map(() => data.alert_risk)], figure);
}
document.body.dataset.rendered = String(data.charts.length);
"""

_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
#charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; border: 1px solid #ddd; padding: .5em; }
figcaption { font-weight: 600; margin-bottom: .3em; }
table { border-collapse: collapse; margin-top: 1em; }
td, th { border-bottom: 1px solid #eee; padding: .2em .6em; text-align: left; }
.muted { color: #777; }
"""


def _vendor(name: str) -> str:
    return (files("querywatch.detector.adapters.ui") / "static" / "vendor" / name).read_text()


def report_data(report: ReplayReport, *, top: int, alert_risk: float) -> dict[str, Any]:
    """What the page draws: the top clients' timelines and the table rows."""
    clients = report.ranked()
    first_alert_ts: dict[str, float] = {}
    for alert in report.alerts.values():
        first_alert_ts.setdefault(alert.client_id, alert.ts)
    charts = []
    for c in clients[:top]:
        points = list(c.timeline.points) if c.timeline is not None else []
        charts.append(
            {
                "client_id": c.client_id,
                "queries": c.queries,
                "risk": round(c.risk, 4),
                "first_alert_query": c.first_alert_query,
                "first_alert_ts": first_alert_ts.get(c.client_id),
                "points": [[q, round(ts, 3), round(risk, 4)] for q, ts, risk in points],
            }
        )
    table = [
        {
            "client_id": c.client_id,
            "queries": c.queries,
            "risk": round(c.risk, 4),
            "first_alert_query": c.first_alert_query,
            "reasons": list(c.reasons[:1]),
        }
        for c in clients[:TABLE_ROWS]
    ]
    return {"alert_risk": alert_risk, "charts": charts, "table": table}


#: Characters that may start markup inside a script element, and their JSON escapes.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(data: Any) -> str:
    """``data`` as JSON that is inert inside ``<script type="application/json">``: escaping
    only ``</`` let a client id holding ``<!--<script>`` put the parser in the script element's
    escaped state, so the element ran past its end tag and the page broke. No ``<``, ``>`` or
    ``&`` is left (outside strings JSON has none; inside, the escapes parse back the same).

    >>> script_json({"id": "<!--<script>&"})
    '{"id":"\\\\u003c!--\\\\u003cscript\\\\u003e\\\\u0026"}'
    """
    return json.dumps(data, separators=(",", ":")).translate(_SCRIPT_SAFE)


def _refused_by(report: ReplayReport, shown: int = 5) -> str:
    """Who sent the invalid lines, as far as they name a client (``refused_senders``).

    >>> from collections import Counter
    >>> r = ReplayReport(refused_clients={"<b>": Counter(non_finite=3), "a": Counter(not_json=1)})
    >>> _refused_by(r)
    ', from 2 named clients (most: &lt;b&gt; 3, a 1)'
    """
    if not report.refused_clients:
        return ""
    who, most = report.refused_senders(shown, html.escape)
    return f", from {who} (most: {most})"


def render_report(report: ReplayReport, *, top: int, alert_risk: float, title: str) -> str:
    """The whole page as one HTML string (no external reference of any kind)."""
    data = script_json(report_data(report, top=top, alert_risk=alert_risk))
    alerted = sum(1 for c in report.clients.values() if c.first_alert_query is not None)
    rejected = sum(report.rejected.values())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>{html.escape(title)}</title>
<style>{_vendor("uPlot.min.css")}{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{report.events} events from {len(report.clients)} clients; <strong>{alerted} clients alerted</strong>;
{report.duplicates} duplicates dropped; {rejected} invalid lines{_refused_by(report)}.
{"".join(f"<br>{html.escape(note)}." for note in report.input_notes())}
<span class="muted">Risk over event time of the {min(top, len(report.clients))} riskiest clients; the dashed
line is the alert threshold, the dotted one the first alert.</span></p>
<section id="charts"></section>
<h2>Clients by peak risk</h2>
<table id="clients"><thead><tr><th>client</th><th>queries</th><th>peak risk</th><th>alert at query</th>
<th>reason</th></tr></thead><tbody></tbody></table>
<script id="report-data" type="application/json">{data}</script>
<script>{_vendor("uPlot.iife.min.js")}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
