"""Small typed helpers over grafana-foundation-sdk builders: one call per panel kind, common defaults once."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, dashboard, heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import prometheus as pm

from netobs_grafana import names as n

PROMETHEUS = dm.DataSourceRef(type_val="prometheus", uid=n.PROMETHEUS_UID)
JAEGER = dm.DataSourceRef(type_val="jaeger", uid=n.JAEGER_UID)

# Selector of the common variables; extra matchers are appended.
VARS = {n.POP: "$pop", n.CHECK: "$check", n.TARGET: "$target"}


def sel(*extra: str, variables: Sequence[str] = (n.POP, n.CHECK, n.TARGET)) -> str:
    """``{pop=~"$pop",check=~"$check",target=~"$target",<extra>}`` for the named variables."""
    matchers = [f'{label}=~"{VARS[label]}"' for label in variables] + list(extra)
    return "{" + ",".join(matchers) + "}"


def query(
    expr: str,
    legend: str = "__auto",
    ref: str = "A",
    *,
    instant: bool = False,
    table_format: bool = False,
    heatmap_format: bool = False,
    exemplar: bool = False,
) -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).ref_id(ref).legend_format(legend).datasource(PROMETHEUS)
    q = q.instant() if instant else q.range()
    if table_format:
        q = q.format(pm.PromQueryFormat.TABLE)
    if heatmap_format:
        q = q.format(pm.PromQueryFormat.HEATMAP)
    if exemplar:
        q = q.exemplar(True)
    return q


def _queries(panel: Builder[dm.Panel], queries: Sequence[prom.Dataquery]) -> None:
    for i, q in enumerate(queries):
        panel.with_target(q.ref_id(chr(ord("A") + i)))  # type: ignore[attr-defined]


def series(title: str, description: str, unit: str, *queries: prom.Dataquery, w: int = 12, h: int = 8,
           stacked: bool = False, bars: bool = False) -> timeseries.Panel:  # fmt: skip
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            cb.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if stacked:
        panel = panel.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    _queries(panel, queries)
    return panel


def single(title: str, description: str, unit: str, q: prom.Dataquery, *, w: int = 6, h: int = 5,
           thresholds: Sequence[tuple[float | None, str]] = ()) -> stat.Panel:  # fmt: skip
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(w)
        .height(h)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if thresholds:
        panel = panel.thresholds(_thresholds(thresholds))
    _queries(panel, [q])
    return panel


def bars(title: str, description: str, unit: str, q: prom.Dataquery, *, w: int = 12, h: int = 8,
         thresholds: Sequence[tuple[float | None, str]] = ()) -> bargauge.Panel:  # fmt: skip
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(w)
        .height(h)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if thresholds:
        panel = panel.thresholds(_thresholds(thresholds))
    _queries(panel, [q])
    return panel


def heat(title: str, description: str, q: prom.Dataquery, *, w: int = 12, h: int = 8,
         exemplars: bool = False) -> heatmap.Panel:  # fmt: skip
    panel = (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .span(w)
        .height(h)
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s"))
        .color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("Spectral").steps(64))
        .cell_values(heatmap.CellValues().unit("short"))
        .show_legend()
    )
    if exemplars:
        panel = panel.exemplars_color("rgba(255,0,255,0.7)")
    _queries(panel, [q])
    return panel


def grid(title: str, description: str, unit: str, q: prom.Dataquery, *, rows: str, columns: str,
         w: int = 24, h: int = 9, thresholds: Sequence[tuple[float | None, str]] = (),
         links: Sequence[dashboard.DashboardLink] = ()) -> table.Panel:  # fmt: skip
    """A table of one value per (rows x columns), e.g. availability per target x POP."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(w)
        .height(h)
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"columnField": columns, "rowField": rows, "valueField": "Value", "emptyValue": "null"},
            )
        )
    )
    if thresholds:
        panel = panel.thresholds(_thresholds(thresholds)).color_scheme(
            dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)
        )
    if links:
        panel = panel.data_links(list(links))
    _queries(panel, [q])
    return panel


def rows_table(title: str, description: str, unit: str, q: prom.Dataquery, *, w: int = 12, h: int = 8,
               links: Sequence[dashboard.DashboardLink] = ()) -> table.Panel:  # fmt: skip
    """A plain table of an instant query, one row per series (labels as columns)."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(w)
        .height(h)
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True, "__name__": True}, "renameByName": {}}
            )
        )
    )
    if links:
        panel = panel.data_links(list(links))
    _queries(panel, [q])
    return panel


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def jaeger_search_url(operation: str, tags: str) -> str:
    """A Grafana Explore URL that searches the agent's traces in the Jaeger datasource.

    ``operation`` and ``tags`` may hold data-link variables such as ``${__field.labels.target}``; they are
    interpolated by Grafana, so the JSON pane is URL-encoded around them, not through them.
    """
    pane = {
        "jaeger": {
            "datasource": n.JAEGER_UID,
            "queries": [
                {
                    "refId": "A",
                    "datasource": {"type": "jaeger", "uid": n.JAEGER_UID},
                    "queryType": "search",
                    "service": n.AGENT_SERVICE,
                    "operation": operation,
                    "tags": tags,
                    "limit": 20,
                }
            ],
            "range": {"from": "${__from}", "to": "${__to}"},
        }
    }
    encoded = urllib.parse.quote(json.dumps(pane, separators=(",", ":")), safe="${}_.:")
    return f"/explore?schemaVersion=1&orgId=1&panes={encoded}"


def link(title: str, url: str) -> dashboard.DashboardLink:
    return dashboard.DashboardLink(title).url(url).target_blank(False)
