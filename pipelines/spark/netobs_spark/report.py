"""The report: one self-contained HTML page (inline SVG and JS, nothing fetched) and CSV files.

Pure Python on small, already-collected rows (``ReportData``), so it is tested without Spark.
Files written to the report directory: ``report.html``, ``targets.csv``, ``series.csv``, ``slo.csv``,
``errors.csv``, ``paths.csv``, ``trends.csv``, ``ingest.csv``.
"""

from __future__ import annotations

import csv
import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HTML_TABLE_ROWS = 500  # longer tables are cut in the page (the CSV files have every row)
HEATMAP_TARGETS = 40
HEATMAP_POPS = 60


@dataclass
class ReportData:
    first_day: str
    last_day: str
    generated_at: str
    stats: dict[str, int]
    unreadable_files: list[str] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)  # range-level rollup per (check, target)
    series: list[dict[str, Any]] = field(default_factory=list)  # runs/successes per (check, target, POP)
    trends: list[dict[str, Any]] = field(default_factory=list)  # hourly percentiles of the worst targets
    errors: list[dict[str, Any]] = field(default_factory=list)
    paths: list[dict[str, Any]] = field(default_factory=list)
    slos: list[dict[str, Any]] = field(default_factory=list)
    maintenance_windows: int = 0
    top: int = 20


def badness(target: dict[str, Any]) -> tuple[float, float]:
    """Sort key of the worst targets: lowest availability first, then highest p95 latency."""
    availability = target.get("availability_pct")
    p95 = target.get("latency_p95_ms")
    return (
        availability if availability is not None else 101.0,
        -(p95 if p95 is not None else -1.0),
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(value: Any, css: str = "") -> str:
    sort_value = "" if value is None else str(value)
    klass = f' class="{css}"' if css else ""
    return f'<td data-v="{html.escape(sort_value)}"{klass}>{html.escape(_fmt(value))}</td>'


def _table(table_id: str, columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]], css: Any = None) -> str:
    """A sortable table; ``columns`` are (key, heading); ``css(row, key)`` may colour a cell."""
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in columns)
    body = []
    for row in rows[:HTML_TABLE_ROWS]:
        cells = "".join(_cell(row.get(k), css(row, k) if css else "") for k, _ in columns)
        body.append(f"<tr>{cells}</tr>")
    more = ""
    if len(rows) > HTML_TABLE_ROWS:
        more = f'<p class="note">{len(rows) - HTML_TABLE_ROWS:,} more rows in the CSV file.</p>'
    if not rows:
        return '<p class="note">No rows.</p>'
    return (
        f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>{more}"
    )


def availability_colour(pct: float | None) -> str:
    """Heat-map colour: green at 100%, through yellow at 99%, to red at 95% and below; grey without data."""
    if pct is None:
        return "#dddddd"
    if pct >= 100.0:
        return "#1a9850"
    if pct >= 99.9:
        return "#66bd63"
    if pct >= 99.0:
        return "#d9ef8b"
    if pct >= 97.0:
        return "#fee08b"
    if pct >= 95.0:
        return "#fc8d59"
    return "#d73027"


def heatmap_svg(series: Sequence[dict[str, Any]], targets: Sequence[tuple[str, str]]) -> str:
    """POP x target availability grid for ``targets`` (in that order); one coloured cell per series."""
    pops = sorted({s["pop"] for s in series})[:HEATMAP_POPS]
    wanted = {t: i for i, t in enumerate(targets[:HEATMAP_TARGETS])}
    cells = {(s["check_name"], s["target"], s["pop"]): s for s in series}
    if not pops or not wanted:
        return '<p class="note">No data.</p>'
    cell_px, label_px, head_px = 18, 320, 80
    width = label_px + cell_px * len(pops)
    height = head_px + cell_px * len(wanted)
    parts = [f'<svg class="heat" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for j, pop in enumerate(pops):
        x = label_px + j * cell_px + cell_px // 2
        parts.append(
            f'<text x="{x}" y="{head_px - 4}" transform="rotate(-60 {x} {head_px - 4})" '
            f'font-size="11">{html.escape(pop)}</text>'
        )
    for (check, target), i in wanted.items():
        y = head_px + i * cell_px
        label = f"{check} {target}"
        label = label if len(label) <= 48 else label[:47] + "…"
        parts.append(
            f'<text x="{label_px - 4}" y="{y + 13}" text-anchor="end" font-size="11">{html.escape(label)}</text>'
        )
        for j, pop in enumerate(pops):
            s = cells.get((check, target, pop))
            pct = s["availability_pct"] if s else None
            tip = f"{check} {target} @ {pop}: " + (
                f"{pct:.3f}% of {s['runs']} runs" if s and pct is not None else "no runs"
            )
            parts.append(
                f'<rect x="{label_px + j * cell_px}" y="{y}" width="{cell_px - 1}" height="{cell_px - 1}" '
                f'fill="{availability_colour(pct)}"><title>{html.escape(tip)}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def trend_svg(points: Sequence[dict[str, Any]], width: int = 560, height: int = 160) -> str:
    """Line chart of hourly latency p50/p95/p99 (ms) for one target; x = hours of the range in order."""
    series = (
        ("latency_p50_ms", "#1f77b4", "p50"),
        ("latency_p95_ms", "#ff7f0e", "p95"),
        ("latency_p99_ms", "#d62728", "p99"),
    )
    values = [p[k] for p in points for k, _, _ in series if p.get(k) is not None]
    if not values:
        return '<p class="note">No successful runs, no latency.</p>'
    top = max(values) * 1.1 or 1.0
    left, bottom, right, upper = 50, 20, 10, 10
    plot_w, plot_h = width - left - right, height - bottom - upper
    n = len(points)

    def xy(i: int, v: float) -> str:
        x = left + (plot_w * i / max(n - 1, 1))
        y = upper + plot_h * (1 - v / top)
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    parts.append(
        f'<line x1="{left}" y1="{upper + plot_h}" x2="{left + plot_w}" y2="{upper + plot_h}" stroke="#999"/>'
        f'<line x1="{left}" y1="{upper}" x2="{left}" y2="{upper + plot_h}" stroke="#999"/>'
        f'<text x="{left - 4}" y="{upper + 8}" text-anchor="end" font-size="10">{_fmt(top)}</text>'
        f'<text x="{left - 4}" y="{upper + plot_h}" text-anchor="end" font-size="10">0 ms</text>'
    )
    first, last = points[0], points[-1]
    parts.append(
        f'<text x="{left}" y="{height - 4}" font-size="10">{first["date"]} {first["hour"]:02d}:00</text>'
        f'<text x="{left + plot_w}" y="{height - 4}" text-anchor="end" font-size="10">'
        f"{last['date']} {last['hour']:02d}:00</text>"
    )
    for key, colour, name in series:
        coords = [xy(i, p[key]) for i, p in enumerate(points) if p.get(key) is not None]
        if coords:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(coords)}">'
                f"<title>{name}</title></polyline>"
            )
    legend_x = left + 8
    for key, colour, name in series:
        del key
        parts.append(f'<text x="{legend_x}" y="{upper + 10}" font-size="10" fill="{colour}">{name}</text>')
        legend_x += 30
    parts.append("</svg>")
    return "".join(parts)


TARGET_COLUMNS = (
    ("check_name", "check"),
    ("check_type", "type"),
    ("target", "target"),
    ("pops", "POPs"),
    ("runs", "runs"),
    ("successes", "ok"),
    ("availability_pct", "availability %"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p90_ms", "p90 ms"),
    ("latency_p95_ms", "p95 ms"),
    ("latency_p99_ms", "p99 ms"),
    ("icmp_loss_ratio", "ICMP loss"),
    ("icmp_jitter_avg_ms", "jitter ms"),
    ("ttfb_p95_ms", "TTFB p95 ms"),
    ("dns_p95_ms", "DNS p95 ms"),
)
SLO_COLUMNS = (
    ("check_name", "check"),
    ("target", "target"),
    ("runs", "runs counted"),
    ("runs_in_maintenance", "in maintenance"),
    ("availability_pct", "availability %"),
    ("availability_target_pct", "target %"),
    ("availability_budget_remaining_pct", "budget left %"),
    ("latency_threshold_ms", "latency ≤ ms"),
    ("latency_good_pct", "fast %"),
    ("latency_target_pct", "target %"),
    ("latency_budget_remaining_pct", "budget left %"),
)
ERROR_COLUMNS = (
    ("check_name", "check"),
    ("target", "target"),
    ("error_type", "error type"),
    ("failures", "failures"),
    ("pops", "POPs"),
)
PATH_COLUMNS = (
    ("check_name", "check"),
    ("target", "target"),
    ("pop", "POP"),
    ("traceroute_runs", "runs"),
    ("path_changes", "path changes"),
    ("distinct_paths", "distinct paths"),
    ("ecmp_paths_max", "ECMP paths (max)"),
)


def _slo_css(row: dict[str, Any], key: str) -> str:
    if key.endswith("budget_remaining_pct") and row.get(key) is not None:
        return "bad" if row[key] < 0 else "good"
    return ""


def _availability_css(row: dict[str, Any], key: str) -> str:
    if key == "availability_pct" and row.get(key) is not None:
        return "bad" if row[key] < 99.0 else ""
    return ""


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;font-size:12px;margin:.4em 0}th,td{border:1px solid #ccc;padding:2px 6px}
th{background:#f0f0f0;cursor:pointer;user-select:none}td[data-v]{text-align:right}
td:nth-child(-n+3){text-align:left}
td.bad{background:#f8d0cc}td.good{background:#d5efd5}.note{color:#666;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #eee;padding:4px}
.chart h3{font-size:12px;margin:2px}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function(th){
  th.addEventListener('click',function(){
    var table=th.closest('table'),body=table.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th);
    var asc=th.getAttribute('data-dir')!=='asc';
    th.parentNode.querySelectorAll('th').forEach(function(h){h.removeAttribute('data-dir')});
    th.setAttribute('data-dir',asc?'asc':'desc');
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=a.cells[i].getAttribute('data-v'),y=b.cells[i].getAttribute('data-v');
      var nx=parseFloat(x),ny=parseFloat(y),c;
      if(x===''&&y!=='')return 1;if(y===''&&x!=='')return -1;
      c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;});
    rows.forEach(function(r){body.appendChild(r)});});});
"""


def render_html(data: ReportData) -> str:
    """The whole page as one string."""
    span = data.first_day if data.first_day == data.last_day else f"{data.first_day} to {data.last_day}"
    worst = data.targets[: data.top]
    trends: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for point in data.trends:
        trends.setdefault((point["check_name"], point["target"]), []).append(point)
    charts = []
    for t in worst:
        key = (t["check_name"], t["target"])
        title = f"{t['check_name']} {t['target']} — {_fmt(t.get('availability_pct'))}% available"
        charts.append(f'<div class="chart"><h3>{html.escape(title)}</h3>{trend_svg(trends.get(key, []))}</div>')
    stats_rows = "".join(f"<tr><th>{html.escape(k)}</th><td data-v>{_fmt(v)}</td></tr>" for k, v in data.stats.items())
    unreadable = "".join(f"<li>{html.escape(p)}</li>" for p in data.unreadable_files[:50])
    broken = sum(
        1
        for s in data.slos
        if (s.get("availability_budget_remaining_pct") or 0) < 0 or (s.get("latency_budget_remaining_pct") or 0) < 0
    )
    heat_targets = [(t["check_name"], t["target"]) for t in data.targets]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>netobs report {html.escape(span)}</title>
<style>{_STYLE}</style></head><body>
<h1>netobs report: {html.escape(span)} (UTC)</h1>
<p class="note">Generated {html.escape(data.generated_at)}. Percentiles are nearest-rank (exact below 10,000 runs
per group, rank error at most 0.01% above). Latency is the ICMP average RTT for ICMP checks and the run duration
otherwise, over successful runs. Availability = successful runs / runs.</p>
<h2>Input</h2><table>{stats_rows}</table>
{f"<p>Unreadable files (skipped):</p><ul>{unreadable}</ul>" if unreadable else ""}
<h2>SLO compliance ({len(data.slos)} SLOs, {broken} broken;
{data.maintenance_windows} maintenance windows excluded)</h2>
{_table("slo", SLO_COLUMNS, data.slos, _slo_css)}
<h2>Worst {len(worst)} targets: latency percentiles by hour</h2>
<div class="charts">{"".join(charts)}</div>
<h2>Availability by POP and target (worst {min(len(heat_targets), HEATMAP_TARGETS)} targets)</h2>
{heatmap_svg(data.series, heat_targets)}
<h2>Targets (worst first)</h2>
{_table("targets", TARGET_COLUMNS, data.targets, _availability_css)}
<h2>Errors by type</h2>
{_table("errors", ERROR_COLUMNS, data.errors)}
<h2>Traceroute paths</h2>
{_table("paths", PATH_COLUMNS, data.paths)}
<script>{_SCRIPT}</script>
</body></html>
"""


def _write_csv(path: str, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    names = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in names})


def write_report(directory: str, data: ReportData) -> None:
    """Write report.html and the CSV files into ``directory`` (a local path), replacing earlier ones."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "report.html"), "w", encoding="utf-8") as f:
        f.write(render_html(data))
    _write_csv(os.path.join(directory, "targets.csv"), data.targets)
    _write_csv(os.path.join(directory, "series.csv"), data.series)
    _write_csv(os.path.join(directory, "slo.csv"), data.slos)
    _write_csv(os.path.join(directory, "errors.csv"), data.errors)
    _write_csv(os.path.join(directory, "paths.csv"), data.paths)
    _write_csv(os.path.join(directory, "trends.csv"), data.trends)
    _write_csv(
        os.path.join(directory, "ingest.csv"),
        [{"what": k, "count": v} for k, v in data.stats.items()],
        ["what", "count"],
    )
