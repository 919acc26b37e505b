"""Histograms aggregated here, in plain Python, and merged into what every metric reader collects.

Theory of operation. The OpenTelemetry Python SDK spends 15-25 µs on each synchronous histogram
measurement (attribute validation and hashing, a ``Measurement`` object, view matching, a lock per
aggregation); the agent makes several per result, thousands of results per second. The SDK has no
asynchronous histogram and no metric-producer hook, so ``SummedHistogram`` keeps, per series (a hashable
key chosen by the caller, with its attributes built once), the explicit-bucket counts, sum, count, min and
max -- a ``bisect`` and a few additions per measurement -- and ``MetricMerger`` wraps each reader's collect
callback so that the collected ``MetricsData`` also carries one cumulative ``Histogram`` metric per
instrument, under the agent's resource and instrumentation scope. Every reader (periodic OTLP export,
Prometheus, in-memory) then exports exactly what an SDK histogram with the same name, unit, description,
bucket bounds and attributes would have produced with cumulative temporality.

``record`` runs on the event loop; collection runs on the reader's thread and copies each series under
the histogram's lock, so an export never shows a count that disagrees with its buckets.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope


class _Series:
    __slots__ = ("attributes", "count", "counts", "max", "min", "start_ns", "sum")

    def __init__(self, attributes: Mapping[str, Any], buckets: int) -> None:
        self.attributes = attributes
        self.counts = [0] * buckets
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.start_ns = time.time_ns()


class SummedHistogram:
    """An explicit-bucket histogram instrument aggregated in this process (cumulative)."""

    def __init__(self, name: str, unit: str, description: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(float(b) for b in bounds)
        self._series: dict[Hashable, _Series] = {}
        self._lock = threading.Lock()

    def record(self, value: float, key: Hashable, attributes: Callable[[], Mapping[str, Any]]) -> None:
        """Add ``value`` to the series ``key``; ``attributes`` builds its attributes, called only the first
        time the series is seen. Like the SDK's histogram, negative and non-finite values are dropped."""
        if not value >= 0.0 or value == math.inf:  # also false for NaN
            return
        series = self._series.get(key)
        if series is None:
            series = _Series(dict(attributes()), len(self.bounds) + 1)
            with self._lock:
                self._series.setdefault(key, series)
                series = self._series[key]
        index = bisect_left(self.bounds, value)
        with self._lock:
            series.counts[index] += 1
            series.count += 1
            series.sum += value
            series.min = min(series.min, value)
            series.max = max(series.max, value)

    def collect(self, now_ns: int) -> Metric | None:
        """The instrument's cumulative metric as of ``now_ns``; None when nothing was recorded."""
        # Copy the numbers under the lock and build the data points outside it: recording (on the event
        # loop) waits for this lock, so it is held for as short a time as possible.
        with self._lock:
            snapshot = [
                (s.attributes, s.start_ns, s.count, s.sum, tuple(s.counts), s.min, s.max) for s in self._series.values()
            ]
        points = [
            HistogramDataPoint(
                attributes=attributes,
                start_time_unix_nano=start_ns,
                time_unix_nano=now_ns,
                count=count,
                sum=total,
                bucket_counts=counts,
                explicit_bounds=self.bounds,
                min=low,
                max=high,
            )
            for attributes, start_ns, count, total, counts, low, high in snapshot
        ]
        if not points:
            return None
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Histogram(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE),
        )


def supports(reader: MetricReader) -> bool:
    """Whether ``reader`` can carry merged histograms: it collects cumulative histograms, and this SDK
    version keeps its collect callback where ``MetricMerger`` wraps it."""
    by_class: dict[type, AggregationTemporality] = getattr(reader, "_instrument_class_temporality", {})
    histogram = [t for cls, t in by_class.items() if issubclass(cls, HistogramInstrument)]
    return histogram == [AggregationTemporality.CUMULATIVE] and hasattr(reader, "_collect")


class MetricMerger:
    """Adds the metrics of ``histograms`` to every collection of the readers it is installed on."""

    def __init__(self, resource: Resource, scope: InstrumentationScope, histograms: Sequence[SummedHistogram]):
        self.resource = resource
        self.scope = scope
        self.histograms = list(histograms)

    def install(self, reader: MetricReader) -> None:
        """Wrap ``reader``'s collect callback (set when its MeterProvider was built)."""
        # The SDK types the callback loosely; it is MeasurementConsumer.collect(reader, timeout_millis=...).
        inner: Callable[..., MetricsData | None] | None = getattr(reader, "_collect", None)
        if inner is None:
            raise ValueError("the reader is not registered on a MeterProvider")

        def collect(r: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
            return self.merge(inner(r, timeout_millis=timeout_millis))

        setattr(reader, "_collect", collect)  # noqa: B010

    def merge(self, data: MetricsData | None) -> MetricsData | None:
        """``data`` with this merger's metrics added to the agent's scope (created where missing)."""
        now_ns = time.time_ns()
        extra = [m for m in (h.collect(now_ns) for h in self.histograms) if m is not None]
        if not extra:
            return data
        resource_metrics = list(data.resource_metrics) if data is not None else []
        for i, rm in enumerate(resource_metrics):
            if rm.resource is not self.resource and rm.resource != self.resource:
                continue
            scopes = list(rm.scope_metrics)
            for j, sm in enumerate(scopes):
                if sm.scope == self.scope:
                    scopes[j] = ScopeMetrics(scope=sm.scope, metrics=[*sm.metrics, *extra], schema_url=sm.schema_url)
                    break
            else:
                scopes.append(self._scope_metrics(extra))
            resource_metrics[i] = ResourceMetrics(resource=rm.resource, scope_metrics=scopes, schema_url=rm.schema_url)
            break
        else:
            resource_metrics.append(
                ResourceMetrics(
                    resource=self.resource,
                    scope_metrics=[self._scope_metrics(extra)],
                    schema_url=self.resource.schema_url,
                )
            )
        return MetricsData(resource_metrics=resource_metrics)

    def _scope_metrics(self, metrics: list[Metric]) -> ScopeMetrics:
        return ScopeMetrics(scope=self.scope, metrics=metrics, schema_url=self.scope.schema_url or "")
