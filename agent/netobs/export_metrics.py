"""The agent's own export pipeline, observed: the OpenTelemetry SDK self-observability metrics.

An agent that cannot export fast enough (the collector down or slow, or more spans per second than its
export thread encodes) drops the oldest queued items; an exporter whose requests fail loses what they
carried. Both are counted where they happen (``_otlpdirect``) and reported here with the names and
attributes of the semantic conventions for SDK metrics, so that a dashboard or an alert can tell "the
network is fine but this agent's data is incomplete":

- ``otel.sdk.processor.span.processed`` / ``otel.sdk.processor.log.processed``: items the batch processors
  handed to their exporter, and (``error.type=queue_full``) the ones dropped because the queue was full;
- ``otel.sdk.exporter.span.exported`` / ``otel.sdk.exporter.log.exported`` /
  ``otel.sdk.exporter.metric_data_point.exported``: items whose export finished, with ``error.type`` (the
  exception's type, or ``_OTHER`` when the exporter gave up without one) for those that failed.

Every point carries ``otel.component.type`` and ``otel.component.name`` (the export thread's name). The
counts are read when a metric reader collects, never on a probe's path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from netobs._otlpdirect import Batcher, PeriodicExporter

QUEUE_FULL = "queue_full"


def _component(kind: str, name: str) -> dict[str, str]:
    return {"otel.component.type": kind, "otel.component.name": name}


def processed(batchers: Sequence[Batcher[Any]], component_type: str) -> Callable[[CallbackOptions], list[Observation]]:
    """Observations of what ``batchers`` handed on (no ``error.type``) and dropped (``queue_full``)."""

    def observe(options: CallbackOptions) -> list[Observation]:
        points = []
        for b in batchers:
            attrs = _component(component_type, b.name)
            points.append(Observation(b.exported + b.failed, attrs))
            points.append(Observation(b.dropped, {**attrs, "error.type": QUEUE_FULL}))
        return points

    return observe


def exported(threads: Sequence[Batcher[Any] | PeriodicExporter]) -> Callable[[CallbackOptions], list[Observation]]:
    """Observations of what the exporters of ``threads`` sent, and failed to send by cause."""

    def observe(options: CallbackOptions) -> list[Observation]:
        points = []
        for t in threads:
            attrs = _component(t.exporter_type, t.name)
            points.append(Observation(t.exported, attrs))
            points.extend(Observation(n, {**attrs, "error.type": cause}) for cause, n in sorted(t.failures.items()))
        return points

    return observe


class ExportMetrics:
    """Registers the SDK self-observability counters on ``meter`` for the agent's export threads."""

    def __init__(
        self,
        meter: metrics.Meter,
        span_batchers: Sequence[Batcher[Any]],
        log_batchers: Sequence[Batcher[Any]],
        metric_exporters: Sequence[PeriodicExporter],
    ) -> None:
        counters: Iterable[tuple[str, str, str, Callable[[CallbackOptions], list[Observation]]]] = (
            (
                "otel.sdk.processor.span.processed",
                "{span}",
                "Spans the agent's batch processor handed to its exporter, or dropped (error.type=queue_full)",
                processed(span_batchers, "batching_span_processor"),
            ),
            (
                "otel.sdk.processor.log.processed",
                "{log_record}",
                "Result log records the agent's batch processor handed to its exporter, or dropped "
                "(error.type=queue_full)",
                processed(log_batchers, "batching_log_processor"),
            ),
            (
                "otel.sdk.exporter.span.exported",
                "{span}",
                "Spans whose export finished; error.type names the failure of those that failed",
                exported(span_batchers),
            ),
            (
                "otel.sdk.exporter.log.exported",
                "{log_record}",
                "Result log records whose export finished; error.type names the failure of those that failed",
                exported(log_batchers),
            ),
            (
                "otel.sdk.exporter.metric_data_point.exported",
                "{data_point}",
                "Metric points of the agent's own instruments whose export finished; error.type names the "
                "failure of those that failed",
                exported(metric_exporters),
            ),
        )
        for name, unit, description, callback in counters:
            meter.create_observable_counter(name, callbacks=[callback], unit=unit, description=description)
