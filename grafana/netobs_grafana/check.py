"""Run every panel and variable query of the rendered dashboards against a real Prometheus.

Grafana's variables are expanded as Grafana would with "All" selected (``$pop`` -> ``.*``) and its
interval variables get fixed values (``$__rate_interval`` -> 1m, ``$__range`` -> the checked window).
A query passes when Prometheus accepts it and returns at least one series.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_VALUES: Mapping[str, str] = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$pop": ".*",
    "$check": ".*",
    "$target": ".*",
}
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


@dataclass(frozen=True)
class QueryResult:
    query: PanelQuery
    expanded: str
    series: int
    error: str | None


def panel_queries(board: Mapping[str, Any]) -> Iterator[PanelQuery]:
    """Every Prometheus query of a rendered dashboard: panel targets, then query variables (as ``count by``)."""
    title = str(board.get("title", "?"))

    def walk(panels: list[Any]) -> Iterator[PanelQuery]:
        for panel in panels:
            yield from walk(panel.get("panels") or [])
            for target in panel.get("targets") or []:
                if "expr" in target:
                    yield PanelQuery(
                        title,
                        str(panel.get("title", "?")),
                        str(target.get("refId", "?")),
                        str(target["expr"]),
                        bool(target.get("instant")) and not bool(target.get("range")),
                    )

    yield from walk(list(board.get("panels") or []))
    for variable in (board.get("templating") or {}).get("list") or []:
        q = variable.get("query")
        text = q.get("query") if isinstance(q, dict) else q
        match = _LABEL_VALUES.match(str(text or ""))
        if match is not None:
            expr = f"count by ({match['label']}) ({match['selector']})"
            yield PanelQuery(title, f"variable ${variable.get('name')}", "var", expr, True)


def expand(expr: str, values: Mapping[str, str] = DEFAULT_VALUES) -> str:
    # Longest names first: $__rate_interval before $__range-like prefixes.
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    leftover = re.findall(r"\$\{?\w+", expr)
    if leftover:
        raise ValueError(f"unexpanded Grafana variables {leftover} in {expr!r}")
    return expr


def run_query(prometheus_url: str, pq: PanelQuery, window_s: float = 300.0, timeout_s: float = 10.0) -> QueryResult:
    """Run one query as Grafana would (instant at now, or a range over the last ``window_s``)."""
    values = {**DEFAULT_VALUES, "$__range": f"{int(window_s)}s"}
    expanded = expand(pq.expr, values)
    now = time.time()
    if pq.instant:
        url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expanded, "time": f"{now:.3f}"})
    else:
        params = {"query": expanded, "start": f"{now - window_s:.3f}", "end": f"{now:.3f}", "step": "5"}
        url = f"{prometheus_url}/api/v1/query_range?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        return QueryResult(pq, expanded, 0, f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}")
    except (urllib.error.URLError, OSError) as exc:
        return QueryResult(pq, expanded, 0, f"{type(exc).__name__}: {exc}")
    if body.get("status") != "success":
        return QueryResult(pq, expanded, 0, str(body.get("error")))
    result = body["data"]["result"]
    return QueryResult(pq, expanded, len(result) if isinstance(result, list) else 1, None)
