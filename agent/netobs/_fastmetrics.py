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

``SummedCounter`` does the same for monotonic counters (an integer sum per series).

Over OTLP, the SDK's metric encoder (an SDK data point object per series, then generic attribute and
value encoders) cost ~25 µs per data point on the exporter's thread, ~12 µs per ICMP probe at 2,000
series; ``DirectMetricEncoder`` builds the ``ExportMetricsServiceRequest`` of the summed instruments itself
from a prototype data point per series (attributes, start time and bounds encoded once): ~3 µs per point.
What the collector receives is field for field what ``encode_metrics`` makes of the merged metrics
(``tests/unit/test_fastmetrics.py`` compares them).

``record``/``add`` run on the event loop; collection runs on the reader's thread. A histogram series' numbers
live in a ``Buckets`` object (C, ``_wire.Buckets``, when built; ``PyBuckets`` otherwise) whose ``add`` and
``snapshot`` are each atomic, so an export never shows a count that disagrees with its buckets.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_attributes,
    _encode_instrumentation_scope,
    _encode_resource,
)
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from netobs._protowire import NATIVE


class PyBuckets:
    """One histogram series' explicit-bucket counts, count, sum, min and max: ``_wire.Buckets`` in Python,
    the reference for the C type and what runs when it is not built (``add`` under a lock, so that a
    snapshot from the export thread never sees a count that disagrees with the buckets)."""

    __slots__ = ("_bounds", "_count", "_counts", "_lock", "_max", "_min", "_sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(float(b) for b in bounds)
        if any(b <= a for a, b in itertools.pairwise(self._bounds)):
            raise ValueError("Buckets: bounds must be strictly increasing")
        self._counts = [0] * (len(self._bounds) + 1)
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._lock = threading.Lock()

    def add(self, value: float) -> bool:
        """Count ``value`` in its bucket; False (dropped, as the SDK does) when negative, NaN or infinite."""
        if not value >= 0.0 or value == math.inf:  # also false for NaN
            return False
        index = bisect_left(self._bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._count += 1
            self._sum += value
            self._min = min(self._min, value)
            self._max = max(self._max, value)
        return True

    def snapshot(self) -> tuple[int, float, tuple[int, ...], float, float]:
        """(count, sum, bucket counts, min, max), taken together."""
        with self._lock:
            return self._count, self._sum, tuple(self._counts), self._min, self._max


class SeriesBuckets(Protocol):
    """What ``PyBuckets`` and the C ``_wire.Buckets`` both are."""

    def add(self, value: float) -> bool: ...
    def snapshot(self) -> tuple[int, float, tuple[int, ...], float, float]: ...


BucketsFactory = Callable[[Sequence[float]], SeriesBuckets]
# The C type (one call per measurement, atomic under the GIL: no lock on the event loop's path) when built.
Buckets: BucketsFactory = NATIVE.Buckets if NATIVE is not None else PyBuckets


class _Series:
    __slots__ = ("attributes", "buckets", "proto", "start_ns")

    def __init__(self, attributes: Mapping[str, Any], buckets: SeriesBuckets) -> None:
        self.attributes = attributes
        self.buckets = buckets
        self.start_ns = time.time_ns()
        self.proto: metrics_pb2.HistogramDataPoint | None = None  # built by DirectMetricEncoder


class _CounterSeries:
    __slots__ = ("attributes", "proto", "start_ns", "value")

    def __init__(self, attributes: Mapping[str, Any], value: int) -> None:
        self.attributes = attributes
        self.value = value
        self.start_ns = time.time_ns()
        self.proto: metrics_pb2.NumberDataPoint | None = None


class _Summed:
    """What every summed instrument has: its name, unit and description, and its metric from data points."""

    def __init__(self, name: str, unit: str, description: str) -> None:
        self.name = name
        self.unit = unit
        self.description = description

    def _metric(self, data: Histogram | Sum) -> Metric | None:
        """The instrument's metric carrying ``data``; None when it has no data points."""
        if not data.data_points:
            return None
        return Metric(name=self.name, description=self.description, unit=self.unit, data=data)


class SummedHistogram(_Summed):
    """An explicit-bucket histogram instrument aggregated in this process (cumulative)."""

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        bounds: Sequence[float],
        buckets: BucketsFactory = Buckets,
    ) -> None:
        super().__init__(name, unit, description)
        self.bounds = tuple(float(b) for b in bounds)
        self._buckets = buckets
        self._series: dict[Hashable, _Series] = {}
        self._lock = threading.Lock()  # series added (event loop) against series listed (export thread)

    def record(self, value: float, key: Hashable, attributes: Callable[[], Mapping[str, Any]]) -> None:
        """Add ``value`` to the series ``key``; ``attributes`` builds its attributes, called only the first
        time the series is seen. Like the SDK's histogram, negative and non-finite values are dropped."""
        series = self._series.get(key)
        if series is None:
            if not value >= 0.0 or value == math.inf:  # also false for NaN: no series for a dropped value
                return
            series = _Series(dict(attributes()), self._buckets(self.bounds))
            with self._lock:
                series = self._series.setdefault(key, series)
        series.buckets.add(value)

    def _snapshot(self) -> list[tuple[_Series, int, float, tuple[int, ...], float, float]]:
        with self._lock:
            series = list(self._series.values())
        return [(s, *s.buckets.snapshot()) for s in series]

    def collect(self, now_ns: int) -> Metric | None:
        """The instrument's cumulative metric as of ``now_ns``; None when nothing was recorded."""
        points = [
            HistogramDataPoint(
                attributes=series.attributes,
                start_time_unix_nano=series.start_ns,
                time_unix_nano=now_ns,
                count=count,
                sum=total,
                bucket_counts=counts,
                explicit_bounds=self.bounds,
                min=low,
                max=high,
            )
            for series, count, total, counts, low, high in self._snapshot()
        ]
        return self._metric(Histogram(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE))

    def encode_points(self, now_ns: int) -> Iterator[metrics_pb2.HistogramDataPoint]:
        """The data points as of ``now_ns`` as protobuf messages (see ``DirectMetricEncoder``), built as they
        are asked for."""
        for series, count, total, counts, low, high in self._snapshot():
            proto = series.proto
            if proto is None:
                proto = series.proto = metrics_pb2.HistogramDataPoint(
                    attributes=_encode_attributes(series.attributes),
                    start_time_unix_nano=series.start_ns,
                    explicit_bounds=self.bounds,
                )
            point = _stamped(proto, now_ns)
            point.count = count
            point.sum = total
            point.bucket_counts.extend(counts)
            point.min = low
            point.max = high
            yield point

    def fill_metric(self, metric: metrics_pb2.Metric, points: list[metrics_pb2.HistogramDataPoint]) -> None:
        metric.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        metric.histogram.data_points.extend(points)


class SummedCounter(_Summed):
    """A monotonic counter summed in this process: an integer sum per series (cumulative)."""

    def __init__(self, name: str, unit: str, description: str) -> None:
        super().__init__(name, unit, description)
        self._series: dict[Hashable, _CounterSeries] = {}

    def add(self, amount: int, key: Hashable, attributes: Callable[[], Mapping[str, Any]]) -> None:
        """Add ``amount`` (>= 0; negative amounts are dropped, as the SDK's counter does) to the series
        ``key``; ``attributes`` builds its attributes, called only the first time the series is seen."""
        if amount < 0:
            return
        series = self._series.get(key)
        if series is None:
            self._series[key] = _CounterSeries(dict(attributes()), amount)
        else:
            series.value += amount  # one writer (the event loop); readers copy the int

    def _snapshot(self) -> list[tuple[_CounterSeries, int]]:
        return [(s, s.value) for s in list(self._series.values())]

    def observe(self, options: CallbackOptions) -> list[Observation]:
        """The sums as observations (for an SDK observable counter, when merging is not possible)."""
        return [Observation(value, series.attributes) for series, value in self._snapshot()]

    def collect(self, now_ns: int) -> Metric | None:
        points = [
            NumberDataPoint(
                attributes=series.attributes, start_time_unix_nano=series.start_ns, time_unix_nano=now_ns, value=value
            )
            for series, value in self._snapshot()
        ]
        return self._metric(
            Sum(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE, is_monotonic=True)
        )

    def encode_points(self, now_ns: int) -> Iterator[metrics_pb2.NumberDataPoint]:
        for series, value in self._snapshot():
            proto = series.proto
            if proto is None:
                proto = series.proto = metrics_pb2.NumberDataPoint(
                    attributes=_encode_attributes(series.attributes), start_time_unix_nano=series.start_ns
                )
            point = _stamped(proto, now_ns)
            point.as_int = value
            yield point

    def fill_metric(self, metric: metrics_pb2.Metric, points: list[metrics_pb2.NumberDataPoint]) -> None:
        metric.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        metric.sum.is_monotonic = True
        metric.sum.data_points.extend(points)


SummedInstrument = SummedHistogram | SummedCounter
PointT = TypeVar("PointT", metrics_pb2.HistogramDataPoint, metrics_pb2.NumberDataPoint)


def _stamped(proto: PointT, now_ns: int) -> PointT:
    """A copy of a series' prototype data point (attributes, start time, bounds) at ``now_ns``."""
    point = type(proto)()
    point.CopyFrom(proto)
    point.time_unix_nano = now_ns
    return point


class DirectMetricEncoder:
    """``ExportMetricsServiceRequest`` messages of summed instruments, at most ``max_points`` data points
    each (serialising one request holds the GIL: thousands of points in one stalled the event loop)."""

    def __init__(
        self,
        resource: Resource,
        scope: InstrumentationScope,
        instruments: Sequence[SummedInstrument],
        max_points: int = 1000,
    ) -> None:
        self._resource = _encode_resource(resource)
        self._resource_schema_url = resource.schema_url
        self._scope = _encode_instrumentation_scope(scope)
        self._scope_schema_url = scope.schema_url or ""
        self.instruments = list(instruments)
        self.max_points = max_points

    def requests(self, now_ns: int) -> Iterator[tuple[ExportMetricsServiceRequest, int]]:
        """The requests as of ``now_ns``, each with its number of data points (none when nothing was
        recorded), one at a time: each is built when asked for (the series' numbers are taken per
        instrument, when its first data point is built)."""
        current: tuple[ExportMetricsServiceRequest, Any] | None = None  # the request being filled, its scope
        used = 0  # data points in it
        for instrument in self.instruments:
            points: Iterator[Any] = instrument.encode_points(now_ns)
            while chunk := list(itertools.islice(points, self.max_points - used)):
                if current is None:
                    current = self._new_request()
                metric = current[1].metrics.add(
                    name=instrument.name, description=instrument.description, unit=instrument.unit
                )
                instrument.fill_metric(metric, chunk)
                used += len(chunk)
                if used >= self.max_points:
                    yield current[0], used
                    current, used = None, 0
        if current is not None:
            yield current[0], used

    def _new_request(self) -> tuple[ExportMetricsServiceRequest, Any]:
        request = ExportMetricsServiceRequest()
        resource_metrics = request.resource_metrics.add()
        resource_metrics.resource.CopyFrom(self._resource)
        resource_metrics.schema_url = self._resource_schema_url
        scope = resource_metrics.scope_metrics.add()
        scope.scope.CopyFrom(self._scope)
        scope.schema_url = self._scope_schema_url
        return request, scope


def supports(reader: MetricReader) -> bool:
    """Whether ``reader`` can carry merged histograms: it collects cumulative histograms, and this SDK
    version keeps its collect callback where ``MetricMerger`` wraps it."""
    by_class: dict[type, AggregationTemporality] = getattr(reader, "_instrument_class_temporality", {})
    histogram = [t for cls, t in by_class.items() if issubclass(cls, HistogramInstrument)]
    return histogram == [AggregationTemporality.CUMULATIVE] and hasattr(reader, "_collect")


class MetricMerger:
    """Adds the metrics of ``instruments`` to every collection of the readers it is installed on."""

    def __init__(self, resource: Resource, scope: InstrumentationScope, instruments: Sequence[SummedInstrument]):
        self.resource = resource
        self.scope = scope
        self.instruments = list(instruments)

    def install(self, reader: MetricReader) -> None:
        """Wrap ``reader``'s collect callback (set when its MeterProvider was built)."""
        # The SDK types the callback loosely; it is MeasurementConsumer.collect(reader, timeout_millis=...).
        inner: Callable[..., MetricsData | None] | None = getattr(reader, "_collect", None)
        if inner is None:
            raise ValueError("the reader is not registered on a MeterProvider")

        def collect(r: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
            return self.merge(inner(r, timeout_millis=timeout_millis))

        setattr(reader, "_collect", collect)  # noqa: B010

    def merge(self, data: MetricsData | None, now_ns: int | None = None) -> MetricsData | None:
        """``data`` with this merger's metrics as of ``now_ns`` (default: now) added to the agent's scope
        (created where missing)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        extra = [m for m in (i.collect(now_ns) for i in self.instruments) if m is not None]
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
