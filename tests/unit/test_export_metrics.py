"""``netobs.export_metrics``: the agent's export threads report what they handed on, dropped and failed to
send, as the SDK self-observability counters, read from the real batchers and exporters at collection."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from netobs import __version__
from netobs._otlpdirect import Batcher, grpc_exporter, http_exporter
from netobs._resultlogs import ResultLog, ResultLogEncoder
from netobs.config import parse_config
from netobs.export_metrics import ExportMetrics
from netobs.telemetry import INSTRUMENTATION_SCOPE, Telemetry, TelemetryParts, build_resource, metric_points
from tests.contract.exemplars import result_of_type
from tests.exporters import CountingExporter

CFG = parse_config("agent_id: a\npop: p")
SCOPE = InstrumentationScope(INSTRUMENTATION_SCOPE, __version__)


def _values(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    return {tuple(sorted(attrs.items())): point.value for attrs, point in metric_points(reader).get(name, [])}


def _record(i: int) -> ResultLog:
    return (i, i, f"body-{i}", "c", "tcp", f"id-{i}")


def test_a_full_queue_counts_as_processed_with_queue_full() -> None:
    exporter = CountingExporter()
    batcher: Batcher[ResultLog] = Batcher(
        ResultLogEncoder(build_resource(CFG), SCOPE), exporter, "logs-under-test", max_queue_size=3
    )
    reader = InMemoryMetricReader()
    ExportMetrics(MeterProvider(metric_readers=[reader]).get_meter("t"), [], [batcher], [])
    try:
        for i in range(5):
            batcher.add(_record(i))
        component = (("otel.component.name", "logs-under-test"), ("otel.component.type", "batching_log_processor"))
        assert _values(reader, "otel.sdk.processor.log.processed") == {
            component: 0,
            ((("error.type", "queue_full"), *component)): 2,
        }
        assert batcher.force_flush()
        processed = _values(reader, "otel.sdk.processor.log.processed")
        assert processed[component] == 3 == exporter.items
        assert processed[(("error.type", "queue_full"), *component)] == 2
    finally:
        batcher.shutdown()


@pytest.mark.parametrize(
    ("error", "cause"),
    [(ConnectionResetError("peer reset"), "ConnectionResetError"), (None, "_OTHER")],
)
def test_failed_exports_are_counted_by_cause(error: Exception | None, cause: str) -> None:
    """An exception names the cause; an exporter that gives up without one is ``_OTHER``."""
    exporter = CountingExporter(fail=1, error=error)
    reader = InMemoryMetricReader()
    telemetry = Telemetry(
        build_resource(CFG),
        TelemetryParts(
            metric_readers=[reader], direct_span_exporters=[exporter], result_log_exporters=[CountingExporter()]
        ),
    )
    try:
        with telemetry.tracer.start_span("first"):
            pass
        telemetry.flush()  # the request of the first span fails
        for name in ("second", "third"):
            with telemetry.tracer.start_span(name):
                pass
        telemetry.flush()
        component = (("otel.component.name", "netobs-spans"), ("otel.component.type", "unknown_otlp_exporter"))
        assert _values(reader, "otel.sdk.exporter.span.exported") == {
            component: 2,
            (("error.type", cause), *component): 1,
        }
        processed = _values(reader, "otel.sdk.processor.span.processed")
        assert (
            processed[(("otel.component.name", "netobs-spans"), ("otel.component.type", "batching_span_processor"))]
            == 3
        )
    finally:
        telemetry.shutdown()


def test_every_signal_of_the_agent_is_reported() -> None:
    """Through the production ``Telemetry``: results recorded and flushed show up in all five counters."""
    reader = InMemoryMetricReader()
    exporters = [CountingExporter(), CountingExporter(), CountingExporter()]
    telemetry = Telemetry(
        build_resource(CFG),
        TelemetryParts(
            metric_readers=[reader],
            direct_span_exporters=[exporters[0]],
            result_log_exporters=[exporters[1]],
            direct_metric_exporters=[exporters[2]],
        ),
    )
    try:
        for check_type in ("http", "tcp", "icmp"):
            telemetry.record(result_of_type(check_type))
        telemetry.flush()
        totals = {
            name: sum(point.value for attrs, point in points if "error.type" not in attrs)
            for name, points in metric_points(reader).items()
            if name.startswith("otel.sdk.")
        }
        assert totals == {
            "otel.sdk.processor.span.processed": 0,  # results recorded directly carry no spans
            "otel.sdk.processor.log.processed": 3,
            "otel.sdk.exporter.span.exported": 0,
            "otel.sdk.exporter.log.exported": 3,
            "otel.sdk.exporter.metric_data_point.exported": exporters[2].items,
        }
        assert exporters[1].items == 3
        assert exporters[2].items > 0
    finally:
        telemetry.shutdown()


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_the_otlp_exporters_name_their_component_type(signal: str) -> None:
    item = {"traces": "span", "logs": "log", "metrics": "metric"}[signal]
    grpc = grpc_exporter(signal, endpoint="127.0.0.1:4317", insecure=True)  # type: ignore[arg-type]
    http = http_exporter(signal, endpoint="http://127.0.0.1:4318/v1/x")  # type: ignore[arg-type]
    try:
        assert grpc.component_type == f"otlp_grpc_{item}_exporter"
        assert http.component_type == f"otlp_http_{item}_exporter"
    finally:
        grpc.shutdown()
        http.shutdown()
