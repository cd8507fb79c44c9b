"""The HTML report of ``statistics()`` and ``estimate()``: what a notebook shows (``_repr_html_``) and what
``to_html(path)`` writes, one self-contained file.

A statistics report holds the figures with their scopes, a chart of the job over time (requests and 429s per
second against ``maxRequestsPerMinute``, tokens per second, cumulative cost) drawn as inline SVG, and tables of
errors by code, HTTP statuses and cost by deployment. Nothing is fetched: no stylesheet, font or script from
the network. One small inline script shows the figures of the second under the pointer; it reads its data
from an inline JSON block, records any script error in the page (``.spark-aoai-errors``), and marks the
report ``data-ready="yes"`` when it has run (the browser test reads both). Pure: no pyspark.
"""

from __future__ import annotations

import html
import json
import math
import uuid
from pathlib import Path
from typing import Any

WIDTH, PANEL, GAP, LEFT = 720, 110, 34, 64
STYLE = """
.spark-aoai{font:13px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;color:#1f2328;max-width:760px}
.spark-aoai h3{font-size:15px;margin:10px 0 6px}.spark-aoai h4{font-size:13px;margin:12px 0 4px}
.spark-aoai table{border-collapse:collapse;margin:4px 0}.spark-aoai td,.spark-aoai th{padding:2px 10px 2px 0;
text-align:left;border-bottom:1px solid #eee}.spark-aoai td.n{text-align:right;font-variant-numeric:tabular-nums}
.spark-aoai .scope{color:#656d76;font-size:12px}.spark-aoai svg text{font-size:11px;fill:#444}
.spark-aoai .readout{color:#444;font-size:12px;min-height:1.4em}.spark-aoai-errors{color:#b00;margin:0}
"""
SCRIPT = """
(function(){var root=document.getElementById(%(id)s),errors=root.querySelector('.spark-aoai-errors');
window.addEventListener('error',function(e){errors.textContent+=e.message+'\\n';});
var data=JSON.parse(root.querySelector('script[type="application/json"]').textContent);
var svg=root.querySelector('svg.timeline'),out=root.querySelector('.readout');
if(svg&&data.points.length){svg.addEventListener('mousemove',function(e){var box=svg.getBoundingClientRect();
var x=(e.clientX-box.left)*data.width/box.width,i=Math.round((x-data.left)/data.step);
i=Math.max(0,Math.min(data.points.length-1,i));var p=data.points[i];
out.textContent='t+'+p[0]+' s: '+p[1]+' req/s, '+p[2]+' 429/s, '+p[3]+' tokens/s, cost so far $'+p[4];});}
root.dataset.ready='yes';})();
"""


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else html.escape(str(value))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_number(c)}</td>' if isinstance(c, (int, float)) else f"<td>{_number(c)}</td>" for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def _polyline(values: list[float], top: float, peak: float, step: float, color: str, name: str) -> str:
    points = " ".join(f"{LEFT + i * step:.1f},{top + PANEL - PANEL * v / peak:.1f}" for i, v in enumerate(values))
    return f'<polyline class="{name}" fill="none" stroke="{color}" stroke-width="1.6" points="{points}"/>'


def _panel(index: int, title: str, lines: list[tuple[str, list[float], str]], limit: float | None, step: float) -> str:
    top = 16 + index * (PANEL + GAP)
    peak = max([*(max(v, default=0) for _, v, _ in lines), limit or 0, 1e-9]) * 1.1
    parts = [
        f'<text x="{LEFT}" y="{top - 4}">{html.escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{top + PANEL}" x2="{WIDTH - 8}" y2="{top + PANEL}" stroke="#999"/>',
        f'<text x="{LEFT - 6}" y="{top + 8}" text-anchor="end">{peak / 1.1:,.3g}</text>',
        f'<text x="{LEFT - 6}" y="{top + PANEL}" text-anchor="end">0</text>',
    ]
    if limit:
        y = top + PANEL - PANEL * limit / peak
        parts.append(
            f'<line class="limit" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - 8}" y2="{y:.1f}" stroke="#d4a72c" '
            f'stroke-dasharray="5 4"/><text x="{WIDTH - 8}" y="{y - 3:.1f}" text-anchor="end">limit '
            f"{limit:,.3g}/s</text>"
        )
    parts += [_polyline(values, top, peak, step, color, name) for name, values, color in lines]
    return "".join(parts)


def timeline_svg(stats: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The chart (three panels over time) and the data the pointer readout uses."""
    points = stats.get("timeline") or []
    width = stats.get("timeline_seconds") or 1
    if not points:
        return "<p>No requests were sent: nothing to chart.</p>", {"points": []}
    step = (WIDTH - 8 - LEFT) / max(len(points) - 1, 1)
    requests = [p[1] / width for p in points]
    throttled = [p[2] / width for p in points]
    tokens = [(p[3] + p[4]) / width for p in points]
    cost, spent = [], 0.0
    for p in points:
        spent += p[6]
        cost.append(spent)
    limit = stats.get("requests_per_minute_limit")
    height = 16 + 3 * (PANEL + GAP)
    panels = [
        _panel(0, "requests/s (blue) and 429s/s (red)", [("requests", requests, "#0969da"),
               ("throttled", throttled, "#cf222e")], limit / 60 if limit else None, step),
        _panel(1, "billed tokens/s", [("tokens", tokens, "#1a7f37")], None, step),
        _panel(2, "cumulative estimated cost ($)", [("cost", cost, "#8250df")], None, step),
    ]  # fmt: skip
    start = points[0][0]
    end = f"t+{points[-1][0] - start + width} s"
    axis = f'<text x="{LEFT}" y="{height - 6}">t+0 s</text><text x="{WIDTH - 8}" y="{height - 6}" text-anchor="end">'
    svg = (
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="the job over time">{"".join(panels)}{axis}{end}</text></svg>'
    )
    readout = [
        [p[0] - start, round(r, 2), round(t, 2), round(k, 1), round(c, 6)]
        for p, r, t, k, c in zip(points, requests, throttled, tokens, cost, strict=True)
    ]
    return svg, {"points": readout, "width": WIDTH, "left": LEFT, "step": step}


def _page(title: str, body: str, data: dict[str, Any]) -> str:
    """A report's markup: its own root, style, data and script (several reports can share a notebook)."""
    root = f"spark-aoai-{uuid.uuid4().hex[:12]}"
    payload = json.dumps(data).replace("</", "<\\/")
    return (
        f'<div class="spark-aoai" id="{root}"><style>{STYLE}</style><h3>{html.escape(title)}</h3>{body}'
        f'<pre class="spark-aoai-errors"></pre><script type="application/json">{payload}</script>'
        f"<script>{SCRIPT % {'id': json.dumps(root)}}</script></div>"
    )


def statistics_html(stats: dict[str, Any]) -> str:
    """``JobStatistics.as_dict()`` as a report (see the module docstring)."""
    if stats.get("note"):
        return _page("spark_aoai job statistics", f"<p>{html.escape(stats['note'])}</p>", {"points": []})
    cost = stats.get("estimated_cost")
    summary = [
        ["rows", stats.get("rows"), stats.get("rows_scope") or ""],
        ["rows ok", stats.get("rows_succeeded"), ""],
        ["rows failed", stats.get("rows_failed"), ""],
        ["requests", stats.get("requests"), f"every job ({_number(stats.get('jobs'))})"],
        ["retries", stats.get("retries"), ""],
        ["429s", stats.get("throttled"), ""],
        ["prompt tokens", stats.get("prompt_tokens"), f"cached {_number(stats.get('cached_tokens'))}"],
        ["completion tokens", stats.get("completion_tokens"), f"reasoning {_number(stats.get('reasoning_tokens'))}"],
        ["estimated cost ($)", cost, f"prices of {stats.get('prices_as_of')}" if cost is not None else "no price"],
        ["elapsed (s)", stats.get("elapsed_seconds"), ""],
    ]
    chart, data = timeline_svg(stats)
    errors = sorted((stats.get("errors_by_code") or {}).items(), key=lambda item: -item[1])
    statuses = sorted((stats.get("statuses") or {}).items())
    deployments = [
        [name, int(row["requests"]), int(row["tokens"]), row["cost"]]
        for name, row in (stats.get("by_deployment") or {}).items()
    ]
    missing = stats.get("missing") or []
    body = (
        _table(["figure", "value", "scope"], summary)
        + (f'<p class="scope">not available here: {html.escape(", ".join(missing))}</p>' if missing else "")
        + f"<h4>The job over time</h4>{chart}<div class='readout'></div>"
        + "<h4>Errors by code</h4>"
        + (_table(["code", "rows"], [list(e) for e in errors]) if errors else "<p>No error rows.</p>")
        + "<h4>HTTP statuses</h4>"
        + _table(["status", "attempts"], [list(s) for s in statuses])
        + "<h4>Cost by deployment</h4>"
        + _table(["deployment", "requests", "billed tokens", "estimated cost ($)"], deployments)
    )
    return _page("spark_aoai job statistics", body, data)


def estimate_html(estimate: dict[str, Any]) -> str:
    """An ``estimate()`` result as a report: its figures and the cost range as two bars."""
    low, high = estimate.get("estimated_cost") or (None, None)
    rows = [[name, value if not isinstance(value, tuple) else str(value), ""] for name, value in estimate.items()]
    bars = ""
    if low is not None and high:
        bars = (
            f'<svg class="cost-range" viewBox="0 0 {WIDTH} 60" width="{WIDTH}" height="60" role="img" '
            f'aria-label="estimated cost range"><rect x="{LEFT}" y="6" height="18" fill="#0969da" '
            f'width="{max(1.0, (WIDTH - LEFT - 80) * low / high):.1f}"/><text x="4" y="19">prompts</text>'
            f'<rect x="{LEFT}" y="34" height="18" fill="#8250df" width="{WIDTH - LEFT - 80}"/>'
            f'<text x="4" y="47">+ answers</text><text x="{WIDTH - 74}" y="47">${high:,.4f}</text></svg>'
        )
    body = (
        _table(["figure", "value", ""], rows) + "<h4>Estimated cost: prompts only, and every answer at its limit</h4>"
    )
    return _page("spark_aoai estimate (nothing sent)", body + (bars or "<p>No price for this deployment.</p>"), {})


def write_html(path: str, fragment: str, title: str) -> str:
    """One self-contained HTML file holding ``fragment``; returns the path."""
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f"<body>{fragment}</body></html>"
    )
    Path(path).write_text(page, encoding="utf-8")
    return path


class Estimate(dict):  # type: ignore[type-arg]
    """``estimate()``'s dict, which a notebook shows as a report; ``to_html(path)`` writes it to a file."""

    def _repr_html_(self) -> str:
        return estimate_html(dict(self))

    def to_html(self, path: str) -> str:
        return write_html(path, self._repr_html_(), "spark_aoai estimate")
