"""The five netobs dashboards: overview, check detail, path, agent health, pipeline health.

Every query uses the Grafana variables ``$pop``, ``$check``, ``$target`` (regex matchers, "All" is
``.*``) and Grafana's ``$__rate_interval`` / ``$__range``; :mod:`netobs_grafana.check` expands them to run
the queries against a real Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from netobs_grafana import names as n
from netobs_grafana.panels import (
    PROMETHEUS,
    bars,
    grid,
    heat,
    jaeger_search_url,
    link,
    query,
    rows_table,
    sel,
    series,
    single,
)

RENDERED_DIR = Path(__file__).resolve().parents[1] / "dashboards"
TAGS = ["netobs"]
AVAILABILITY_STEPS: list[tuple[float | None, str]] = [
    (None, "red"),
    (0.95, "orange"),
    (0.99, "yellow"),
    (0.999, "green"),
]


# -- variables ----------------------------------------------------------------------------------------------
def _variable(name: str, label: str, source: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(PROMETHEUS)
        .query({"query": f"label_values({source}, {name})", "refId": f"{name}-values"})
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def _probe_variables(board: dashboard.Dashboard, extra: str = "") -> dashboard.Dashboard:
    """pop -> check -> target, each narrowed by the ones before it."""
    comma = "," + extra if extra else ""
    return (
        board.with_variable(_variable(n.POP, "POP", f"{n.RUNS}{{{extra}}}" if extra else n.RUNS))
        .with_variable(_variable(n.CHECK, "Check", f'{n.RUNS}{{{n.POP}=~"$pop"{comma}}}'))
        .with_variable(_variable(n.TARGET, "Target", f'{n.RUNS}{{{n.POP}=~"$pop",{n.CHECK}=~"$check"{comma}}}'))
    )


def _board(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("netobs")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


SUCCEEDED = f'{n.SUCCESS}="true"'
FAILED = f'{n.SUCCESS}="false"'


def _availability(by: str, window: str, *extra: str) -> str:
    """Share of successful runs per ``by`` over ``window``; 0 (not absent) where every run failed."""
    ok = f"sum by ({by}) (increase({n.RUNS}{sel(SUCCEEDED, *extra)}[{window}]))"
    every = f"sum by ({by}) (increase({n.RUNS}{sel(*extra)}[{window}]))"
    return f"({ok} or 0 * {every}) / {every}"


def _quantile(q: float, metric: str, by: str, matchers: str | None = None) -> str:
    """The q-quantile of a histogram per ``by`` (matchers: the common variables' selector by default)."""
    where = sel() if matchers is None else matchers
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{where}[$__rate_interval])))"


def _check_link() -> dashboard.DashboardLink:
    return link(
        "Check detail: ${__field.labels.check} -> ${__field.labels.target}",
        "/d/netobs-check?var-check=${__field.labels.check}&var-target=${__field.labels.target}&${__url_time_range}",
    )


# -- overview -----------------------------------------------------------------------------------------------
def overview() -> dashboard.Dashboard:
    board = _probe_variables(
        _board("netobs-overview", "netobs / Overview", "Availability by target and POP, latency, the worst targets.")
    )
    board = board.with_row(dashboard.Row("Availability"))
    board = board.with_panel(
        single(
            "Availability (range)",
            "Share of successful runs over the dashboard's time range, all selected checks.",
            "percentunit",
            query(_availability("", "$__range"), instant=True),
            thresholds=AVAILABILITY_STEPS,
        )
    )
    board = board.with_panel(
        single(
            "Runs per second",
            "Probe runs of the selected checks, every POP.",
            "ops",
            query(f"sum(rate({n.RUNS}{sel()}[$__rate_interval]))"),
        )
    )
    board = board.with_panel(
        single(
            "Failing (target, POP) pairs",
            "Pairs with more than half of their runs failing over the last 5 minutes.",
            "short",
            query(f"count({_availability(f'{n.POP}, {n.CHECK}, {n.TARGET}', '5m')} < 0.5) or vector(0)"),
            thresholds=[(None, "green"), (1, "red")],
        )
    )
    board = board.with_panel(
        single(
            "POPs reporting",
            "POPs with at least one agent sending results.",
            "short",
            query(f"count(count by ({n.POP}) ({n.RUNS}{sel()}))"),
        )
    )
    board = board.with_panel(
        grid(
            "Availability: target x POP",
            "Share of successful runs per target (rows) and POP (columns) over the time range. Click a cell "
            "for the check's detail.",
            "percentunit",
            query(_availability(f"{n.CHECK}, {n.TARGET}, {n.POP}", "$__range"), instant=True, table_format=True),
            rows=n.TARGET,
            columns=n.POP,
            thresholds=AVAILABILITY_STEPS,
            links=[_check_link()],
        )
    )
    board = board.with_panel(
        series(
            "Availability by POP",
            "Share of successful runs per POP.",
            "percentunit",
            query(_availability(n.POP, "$__rate_interval"), legend="{{pop}}"),
        )
    )
    board = board.with_panel(
        series(
            "Failures by error type",
            "Failed runs per second by error.type (closed set: timeout, dns_error, connection_refused, ...).",
            "ops",
            query(
                f"sum by ({n.ERROR_TYPE}) (rate({n.RUNS}{sel(FAILED)}[$__rate_interval]))",
                legend="{{error_type}}",
            ),
            stacked=True,
            bars=True,
        )
    )
    board = board.with_row(dashboard.Row("Latency"))
    board = board.with_panel(
        heat(
            "Probe duration heat map",
            "Distribution of run durations (every check type), per rate interval.",
            query(
                f"sum by (le) (increase({n.DURATION}_bucket{sel()}[$__rate_interval]))",
                legend="{{le}}",
                heatmap_format=True,
            ),
        )
    )
    board = board.with_panel(
        series(
            "p95 duration by POP",
            "95th percentile of run durations per POP.",
            "s",
            query(_quantile(0.95, n.DURATION, n.POP), legend="{{pop}}"),
        )
    )
    board = board.with_row(dashboard.Row("Worst targets"))
    board = board.with_panel(
        bars(
            "Lowest availability",
            "The ten (check, target) pairs with the lowest share of successful runs over the time range.",
            "percentunit",
            query(
                f"bottomk(10, {_availability(f'{n.CHECK}, {n.TARGET}', '$__range')})",
                legend="{{check}} {{target}}",
                instant=True,
            ),
            thresholds=AVAILABILITY_STEPS,
        )
    )
    board = board.with_panel(
        bars(
            "Slowest targets (p95)",
            "The ten (check, target) pairs with the highest 95th percentile duration over the time range.",
            "s",
            query(
                f"topk(10, histogram_quantile(0.95, sum by (le, {n.CHECK}, {n.TARGET}) "
                f"(increase({n.DURATION}_bucket{sel()}[$__range]))))",
                legend="{{check}} {{target}}",
                instant=True,
            ),
        )
    )
    return board


# -- check detail -------------------------------------------------------------------------------------------
def check_detail() -> dashboard.Dashboard:
    board = _probe_variables(
        _board(
            "netobs-check",
            "netobs / Check detail",
            "One check (or a few): percentiles, phases, loss. Exemplars on the percentile panel open the run's "
            "trace in Jaeger.",
        )
    )
    board = board.with_panel(
        series(
            "Duration percentiles",
            "p50 / p90 / p99 of run durations. The dots are exemplars: a click opens that run's trace in Jaeger.",
            "s",
            query(_quantile(0.5, n.DURATION, n.POP), legend="p50 {{pop}}", exemplar=True),
            query(_quantile(0.9, n.DURATION, n.POP), legend="p90 {{pop}}", exemplar=True),
            query(_quantile(0.99, n.DURATION, n.POP), legend="p99 {{pop}}", exemplar=True),
            w=24,
        )
    )
    board = board.with_panel(
        series(
            "Mean phase durations",
            "Where the time goes: dns, connect, tls, ttfb, transfer (HTTP; TCP has connect/tls, DNS its query).",
            "s",
            query(
                f"sum by ({n.PHASE}) (rate({n.PHASE_DURATION}_sum{sel()}[$__rate_interval]))"
                f" / sum by ({n.PHASE}) (rate({n.PHASE_DURATION}_count{sel()}[$__rate_interval]))",
                legend="{{netobs_phase}}",
            ),
            stacked=True,
        )
    )
    board = board.with_panel(
        series(
            "p95 phase durations",
            "95th percentile per phase.",
            "s",
            query(_quantile(0.95, n.PHASE_DURATION, n.PHASE), legend="{{netobs_phase}}"),
        )
    )
    board = board.with_panel(
        series(
            "Success ratio by POP",
            "Share of successful runs.",
            "percentunit",
            query(_availability(n.POP, "$__rate_interval"), legend="{{pop}}"),
        )
    )
    board = board.with_panel(
        series(
            "ICMP loss by POP",
            "Share of echo requests left unanswered (ICMP checks).",
            "percentunit",
            query(
                f"sum by ({n.POP}) (rate({n.ICMP_LOST}{sel()}[$__rate_interval]))"
                f" / sum by ({n.POP}) (rate({n.ICMP_SENT}{sel()}[$__rate_interval]))",
                legend="{{pop}}",
            ),
        )
    )
    board = board.with_panel(
        heat(
            "ICMP RTT distribution",
            "Every echo reply's round-trip time (smokeping-style), per rate interval.",
            query(
                f"sum by (le) (increase({n.ICMP_RTT}_bucket{sel()}[$__rate_interval]))",
                legend="{{le}}",
                heatmap_format=True,
            ),
        )
    )
    board = board.with_panel(
        series(
            "ICMP jitter",
            "Mean absolute difference of consecutive RTTs, last run.",
            "s",
            query(f"max by ({n.POP}, {n.TARGET}) ({n.ICMP_JITTER}{sel()})", legend="{{pop}} {{target}}"),
        )
    )
    board = board.with_panel(
        rows_table(
            "TLS certificate expiry",
            "Time until the server certificate expires (negative: expired), per target.",
            "s",
            query(f"min by ({n.CHECK}, {n.TARGET}) ({n.CERT_EXPIRY}{sel()})", instant=True, table_format=True),
        )
    )
    board = board.with_panel(
        rows_table(
            "Recent traces",
            "Runs per (check, target); the link searches their traces in Jaeger.",
            "short",
            query(
                f"sum by ({n.CHECK}, {n.CHECK_TYPE}, {n.TARGET}) (increase({n.RUNS}{sel()}[$__range]))",
                instant=True,
                table_format=True,
            ),
            w=24,
            links=[
                link(
                    "Traces of ${__field.labels.check} -> ${__field.labels.target} (Jaeger)",
                    jaeger_search_url(
                        "${__field.labels.check_type} ${__field.labels.target}",
                        "netobs.check.name=${__field.labels.check}",
                    ),
                )
            ],
        )
    )
    return board


# -- path ---------------------------------------------------------------------------------------------------
TRACEROUTE = f'{n.CHECK_TYPE}="traceroute"'


def path() -> dashboard.Dashboard:
    board = _probe_variables(
        _board(
            "netobs-path",
            "netobs / Path",
            "Traceroute checks: hop count, path changes, last-hop latency; links to the traceroute traces.",
        ),
        extra=TRACEROUTE,
    )
    board = board.with_panel(
        series(
            "Hop count",
            "Hops to the destination (or to the last responder).",
            "short",
            query(f"max by ({n.POP}, {n.TARGET}) ({n.HOPS}{sel(TRACEROUTE)})", legend="{{pop}} {{target}}"),
        )
    )
    board = board.with_panel(
        series(
            "Path changes",
            "Changes of the path identifier (first 32 bits of the path hash) per interval.",
            "short",
            query(
                f"sum by ({n.POP}, {n.TARGET}) (changes({n.PATH_ID}{sel(TRACEROUTE)}[$__rate_interval]))",
                legend="{{pop}} {{target}}",
            ),
            bars=True,
        )
    )
    board = board.with_panel(
        series(
            "Last-hop latency (p50)",
            "Median RTT of the last responding hop.",
            "s",
            query(_quantile(0.5, n.LAST_HOP_RTT, f"{n.POP}, {n.TARGET}", sel(TRACEROUTE)), legend="{{pop}} {{target}}"),
        )
    )
    board = board.with_panel(
        series(
            "Destination reached",
            "1 when the last traceroute reached the destination.",
            "short",
            query(f"min by ({n.POP}, {n.TARGET}) ({n.REACHED}{sel(TRACEROUTE)})", legend="{{pop}} {{target}}"),
        )
    )
    board = board.with_panel(
        rows_table(
            "Current paths",
            "Path identifier, hops and whether the destination was reached, per (POP, target). The link opens "
            "the traceroute traces (one span per hop) in Jaeger.",
            "short",
            query(
                f"max by ({n.POP}, {n.CHECK}, {n.TARGET}) ({n.PATH_ID}{sel(TRACEROUTE)})",
                instant=True,
                table_format=True,
            ),
            w=24,
            links=[
                link(
                    "Traceroutes of ${__field.labels.target} (Jaeger)",
                    jaeger_search_url(
                        "traceroute ${__field.labels.target}",
                        "netobs.check.name=${__field.labels.check}",
                    ),
                )
            ],
        )
    )
    return board


# -- agent health -------------------------------------------------------------------------------------------
ITEMS = "(metric_points|spans|log_records)"
KINDS = ("metric_points", "spans", "log_records")
KAFKA = 'exporter=~"kafka.*"'


def _failures_or_zero(items: str, *extra: str) -> str:
    """Send failures per exporter, 0 for exporters that send without failing (the collector creates its
    failure counters only at the first failure, so a healthy exporter would otherwise show no data)."""
    failed = f"sum by (exporter) (rate({_otelcol('exporter_send_failed_' + items, *extra)}[$__rate_interval]))"
    sent = f"sum by (exporter) (rate({_otelcol('exporter_sent_' + items, *extra)}[$__rate_interval]))"
    return f"{failed} or 0 * {sent}"


def _otelcol(name_regex: str, *extra: str) -> str:
    """A selector of a collector self-metric; its Prometheus endpoint names counters without _total."""
    return "{" + ",".join([f'__name__=~"otelcol_{name_regex}(_total)?"', *extra]) + "}"


def agent_health() -> dashboard.Dashboard:
    board = _board(
        "netobs-agents",
        "netobs / Agent health",
        "Probe agents: throughput, schedule lateness, config reloads, and whether their data gets through the "
        "collector.",
    ).with_variable(_variable(n.POP, "POP", n.SCHEDULED))
    pop = sel(variables=(n.POP,))
    board = board.with_panel(
        series(
            "Probes per second",
            "Runs per second per agent.",
            "ops",
            query(f"sum by ({n.AGENT}, {n.POP}) (rate({n.RUNS}{pop}[$__rate_interval]))", legend="{{agent}} ({{pop}})"),
        )
    )
    board = board.with_panel(
        series(
            "Scheduled (check, target) pairs",
            "What each agent is configured to run.",
            "short",
            query(f"sum by ({n.AGENT}, {n.POP}) ({n.SCHEDULED}{pop})", legend="{{agent}} ({{pop}})"),
        )
    )
    board = board.with_panel(
        series(
            "Schedule lateness p99",
            "How late runs start against their slot: a busy or starved agent shows here first.",
            "s",
            query(_quantile(0.99, n.LATENESS, n.AGENT, pop), legend="p99 {{agent}}"),
            query(_quantile(0.5, n.LATENESS, n.AGENT, pop), legend="p50 {{agent}}"),
        )
    )
    board = board.with_panel(
        rows_table(
            "Last report",
            "Seconds since each agent's last data point reached Prometheus.",
            "s",
            query(
                f"time() - max by ({n.AGENT}, {n.POP}) (timestamp({n.SCHEDULED}{pop}))", instant=True, table_format=True
            ),
        )
    )
    board = board.with_panel(
        series(
            "Config reloads",
            "Reloads (SIGHUP) by outcome; a rejected config keeps the old one running.",
            "short",
            query(
                f"sum by ({n.AGENT}, {n.RELOAD_OUTCOME}) (increase({n.RELOADS}{pop}[$__range]))",
                legend="{{agent}} {{netobs_reload_outcome}}",
            ),
            bars=True,
        )
    )
    board = board.with_panel(
        series(
            "Runs skipped (overload)",
            "Runs not started because the agent was too far behind its schedule (a run that late would measure "
            "the agent's backlog, not the network). Anything above zero: give the agent more CPU or fewer checks.",
            "ops",
            query(
                f"sum by ({n.AGENT}, {n.POP}) (rate({n.SKIPPED}{pop}[$__rate_interval]))"
                f" or 0 * sum by ({n.AGENT}, {n.POP}) (rate({n.RUNS}{pop}[$__rate_interval]))",
                legend="{{agent}} ({{pop}})",
            ),
        )
    )
    board = board.with_row(dashboard.Row("Agent process"))
    agent_pop = sel(f'{n.AGENT}!=""', variables=(n.POP,))
    cpu_cores = f"sum by ({n.AGENT}, {n.POP}) (rate({n.PROCESS_CPU}{agent_pop}[$__rate_interval]))"
    process_panels = (
        ("Agent CPU", "CPU the agent process uses, in cores (user + system, all its threads).", "short", cpu_cores),
        (
            "CPU per probe",
            "Agent CPU time per probe run, the figure docs/deploy.md sizes agents by.",
            "µs",
            f"1e6 * {cpu_cores} / sum by ({n.AGENT}, {n.POP}) (rate({n.RUNS}{pop}[$__rate_interval]))",
        ),
        (
            "Agent memory",
            "Resident memory of the agent process.",
            "bytes",
            f"sum by ({n.AGENT}, {n.POP}) ({n.PROCESS_MEMORY}{agent_pop})",
        ),
        (
            "Open file descriptors",
            "Descriptors the agent process holds open; every run in flight holds a socket, so a count that only "
            "grows is a leak.",
            "short",
            f"sum by ({n.AGENT}, {n.POP}) ({n.PROCESS_FDS}{agent_pop})",
        ),
    )
    for title, description, unit, expr in process_panels:
        board = board.with_panel(series(title, description, unit, query(expr, legend="{{agent}} ({{pop}})"), w=6))
    by_component = f"{n.AGENT}, {n.POP}, {n.COMPONENT_NAME}"
    sent = sel(f'__name__=~"{n.EXPORT_EXPORTED}"', f'{n.ERROR_TYPE}=""', f'{n.AGENT}!=""', variables=(n.POP,))
    lost = sel(
        f'__name__=~"{n.EXPORT_PROCESSED}|{n.EXPORT_EXPORTED}"',
        f'{n.ERROR_TYPE}!=""',
        f'{n.AGENT}!=""',
        variables=(n.POP,),
    )
    board = board.with_panel(
        series(
            "Agent export: sent and lost",
            "Spans, result logs and metric points each agent's export threads sent to the collector per second, "
            "and those lost: dropped because the export queue was full (queue_full: the collector down or slow, "
            "or the agent producing more than it can encode) or in failed exports (the error type). Lost items "
            "mean gaps in that agent's data although the network may be fine; alert NetobsAgentTelemetryLost.",
            "ops",
            query(
                f"sum by ({by_component}) (rate({sent}[$__rate_interval]))",
                legend="{{agent}} {{otel_component_name}} sent",
            ),
            query(
                f"sum by ({by_component}, {n.ERROR_TYPE}) (rate({lost}[$__rate_interval]))",
                legend="{{agent}} {{otel_component_name}} lost: {{error_type}}",
                ref="B",
            ),
            w=24,
        )
    )
    board = board.with_row(dashboard.Row("Export (collector side)"))
    board = board.with_panel(
        series(
            "Accepted by the collector",
            "Metric points, spans and log records per second the collector's OTLP receiver accepted.",
            "ops",
            *(
                query(f"sum(rate({_otelcol('receiver_accepted_' + kind)}[$__rate_interval]))", legend=kind)
                for kind in KINDS
            ),
        )
    )
    board = board.with_panel(
        series(
            "Export errors",
            "Items the collector refused from agents (receiver: memory limiter) or failed to send on (exporters). "
            "Non-zero exporter failures mean data waits in the on-disk queues.",
            "ops",
            *(
                query(
                    f"sum by (receiver) (rate({_otelcol('receiver_refused_' + kind)}[$__rate_interval]))",
                    legend=f"refused {kind}: {{{{receiver}}}}",
                )
                for kind in KINDS
            ),
            query(
                _failures_or_zero(ITEMS),
                legend="send failed: {{exporter}}",
            ),
        )
    )
    return board


# -- pipeline health ----------------------------------------------------------------------------------------
def pipeline_health() -> dashboard.Dashboard:
    board = _board(
        "netobs-pipeline",
        "netobs / Pipeline health",
        "Collector queues, Kafka (results produced, consumer lag), alerts raised by the Flink job.",
    )
    board = board.with_panel(
        series(
            "Collector exporter queues",
            "Items waiting in each exporter's queue, as a share of its capacity.",
            "percentunit",
            query(
                "max by (exporter) (otelcol_exporter_queue_size / otelcol_exporter_queue_capacity)",
                legend="{{exporter}}",
            ),
        )
    )
    board = board.with_panel(
        series(
            "Result records to Kafka",
            f"Records per second the collector's Kafka exporter sent to {n.RESULTS_TOPIC}, and failed to.",
            "ops",
            query(
                f"sum by (exporter) (rate({_otelcol('exporter_sent_log_records', KAFKA)}[$__rate_interval]))",
                legend="sent {{exporter}}",
            ),
            query(
                _failures_or_zero("log_records", KAFKA),
                legend="failed {{exporter}}",
            ),
        )
    )
    board = board.with_panel(
        series(
            "Kafka consumer lag",
            "Messages not yet consumed, per consumer group and topic (the Flink job's group reads "
            f"{n.RESULTS_TOPIC}). Source: the collector's kafkametrics receiver.",
            "short",
            query("sum by (group, topic) (kafka_consumer_group_lag)", legend="{{group}} {{topic}}"),
        )
    )
    board = board.with_panel(
        series(
            "Alerts raised by the Flink job",
            f"Alert events per second the Flink job wrote to {n.ALERTS_TOPIC} (firing and resolved). Source: "
            "the collector's kafkametrics receiver (topic offsets).",
            "ops",
            query(
                f'sum(rate(kafka_partition_current_offset{{topic="{n.ALERTS_TOPIC}"}}[$__rate_interval]))',
                legend="alert events",
            ),
        )
    )
    board = board.with_panel(
        series(
            "Alerts received by Alertmanager",
            "Alerts per second posted to Alertmanager (Prometheus rules and the Flink job), by status.",
            "ops",
            query("sum by (status) (rate(alertmanager_alerts_received_total[$__rate_interval]))", legend="{{status}}"),
        )
    )
    board = board.with_panel(
        series(
            "Active alerts",
            "Alerts Alertmanager holds, by state.",
            "short",
            query("sum by (state) (alertmanager_alerts)", legend="{{state}}"),
        )
    )
    board = board.with_panel(
        series(
            "Prometheus remote-write intake",
            "Samples per second the collector writes into Prometheus.",
            "ops",
            query(
                'sum(rate(prometheus_http_requests_total{handler="/api/v1/write"}[$__rate_interval]))',
                legend="write requests/s",
            ),
        )
    )
    return board


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "overview": overview,
    "check-detail": check_detail,
    "path": path,
    "agent-health": agent_health,
    "pipeline-health": pipeline_health,
}


def to_json(board: dashboard.Dashboard) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    # Stable panel ids (links with viewPanel=<id> keep working across renders).
    for panel_id, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = panel_id
    return data


def render_all() -> dict[str, str]:
    """{file name: JSON text} of every dashboard, as written to grafana/dashboards/."""
    return {
        f"{name}.json": json.dumps(to_json(build()), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }
