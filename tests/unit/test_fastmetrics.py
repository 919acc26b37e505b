"""Self-aggregated histograms: the same data points as the SDK's histograms, merged into every reader."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from netobs._fastmetrics import DirectMetricEncoder, MetricMerger, SummedCounter, SummedHistogram, supports
from netobs.config import parse_config
from netobs.telemetry import LATENCY_BUCKETS_S, Telemetry, TelemetryParts
from tests.contract.exemplars import result_of_type
from tests.unit.test_resultlogs import otlp_telemetry

BOUNDS = (0.001, 0.01, 0.1, 1.0)
SCOPE = InstrumentationScope("netobs.agent", "1")


def _points(data: MetricsData | None, name: str) -> list[Any]:
    assert data is not None
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


@pytest.mark.parametrize(
    "values",
    [
        [0.0005],
        [0.001, 0.01, 0.1, 1.0],  # exactly on a bound: counted in that bound's bucket
        [0.0, 5.0, 0.02, 0.02, 0.3],  # zero, above the last bound
        [0.05, -0.001, math.nan, math.inf, 0.5],  # negative and non-finite values are dropped
    ],
)
def test_summed_histogram_matches_the_sdk_histogram(values: list[float]) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    sdk = provider.get_meter("t").create_histogram("h", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
    summed = SummedHistogram("h", "s", "", BOUNDS)
    attrs = {"netobs.target": "a"}
    for v in values:
        sdk.record(v, attrs)
        summed.record(v, "a", lambda: attrs)
    (expected,) = _points(reader.get_metrics_data(), "h")
    metric = summed.collect(123)
    assert metric is not None and metric.unit == "s"
    assert metric.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    (got,) = metric.data.data_points
    assert (got.count, got.bucket_counts, got.min, got.max, dict(got.attributes)) == (
        expected.count,
        tuple(expected.bucket_counts),
        expected.min,
        expected.max,
        dict(expected.attributes),
    )
    assert got.sum == pytest.approx(expected.sum)
    assert tuple(got.explicit_bounds) == tuple(expected.explicit_bounds)
    assert got.time_unix_nano == 123
    provider.shutdown()


def test_attributes_are_built_once_per_series_and_series_stay_apart() -> None:
    built: list[str] = []
    h = SummedHistogram("h", "s", "", BOUNDS)

    def attrs(target: str) -> dict[str, str]:
        built.append(target)
        return {"netobs.target": target}

    for target, value in [("a", 0.002), ("b", 0.5), ("a", 0.003)]:
        h.record(value, target, lambda t=target: attrs(t))  # type: ignore[misc]
    metric = h.collect(1)
    assert metric is not None
    counts = {p.attributes["netobs.target"]: (p.count, p.bucket_counts) for p in metric.data.data_points}
    assert counts == {"a": (2, (0, 2, 0, 0, 0)), "b": (1, (0, 0, 0, 1, 0))}
    assert built == ["a", "b"]


def test_merger_adds_to_the_agent_scope_or_creates_it() -> None:
    resource = Resource.create({"service.name": "x"})
    h = SummedHistogram("h", "s", "d", BOUNDS)
    merger = MetricMerger(resource, SCOPE, [h])
    assert merger.merge(None) is None  # nothing recorded: nothing to add
    h.record(0.5, "k", lambda: {"k": "v"})
    created = merger.merge(None)
    assert created is not None
    (rm,) = created.resource_metrics
    assert rm.resource is resource
    ((sm,),) = [rm.scope_metrics]
    assert sm.scope == SCOPE and [m.name for m in sm.metrics] == ["h"]
    # A collection that already has the agent's scope gets the histogram appended to it.
    merged = merger.merge(created)
    assert merged is not None
    ((sm2,),) = [merged.resource_metrics[0].scope_metrics]
    assert [m.name for m in sm2.metrics] == ["h", "h"]


def test_telemetry_merges_histograms_into_the_in_memory_reader() -> None:
    telemetry = Telemetry.in_memory()
    assert telemetry._instruments.summed  # the fast path is on with this SDK version
    telemetry.record(result_of_type("icmp"))
    telemetry.record_lateness(0.003, "icmp")
    points = telemetry.metric_points()
    ((_, lateness),) = points["netobs.agent.schedule.lateness"]
    assert lateness.count == 1 and lateness.bucket_counts[4] == 1  # (0.0025, 0.005]
    ((attrs, duration),) = points["netobs.probe.duration"]
    assert attrs == {"netobs.check.name": "web", "netobs.check.type": "icmp", "netobs.target": "example.net"}
    assert tuple(duration.explicit_bounds) == tuple(LATENCY_BUCKETS_S)
    # Same resource and scope as the SDK's own instruments: one ResourceMetrics, one ScopeMetrics.
    data = telemetry.metric_reader.get_metrics_data()
    assert data is not None
    (rm,) = data.resource_metrics
    (sm,) = rm.scope_metrics
    assert {"netobs.probe.duration", "netobs.probe.runs"} <= {m.name for m in sm.metrics}


def test_a_delta_reader_gets_the_sdk_histograms() -> None:
    delta = InMemoryMetricReader(preferred_temporality={HistogramInstrument: AggregationTemporality.DELTA})
    assert not supports(delta) and supports(InMemoryMetricReader())
    cfg = parse_config("agent_id: a\npop: p")
    from netobs.telemetry import build_resource

    telemetry = Telemetry(build_resource(cfg), TelemetryParts(metric_readers=[delta], batch=False))
    assert telemetry._instruments.summed == []
    telemetry.record(result_of_type("icmp"))
    data = delta.get_metrics_data()
    (point,) = _points(data, "netobs.probe.duration")
    assert point.count == 1
    telemetry.shutdown()


def _recorded(series: int) -> tuple[Resource, list[SummedHistogram | SummedCounter]]:
    resource = Resource.create({"service.name": "x", "netobs.pop": "ams"})
    h = SummedHistogram("netobs.h", "s", "a histogram", BOUNDS)
    c = SummedCounter("netobs.c", "{run}", "a counter")
    for i in range(series):
        target = f"t{i}"
        for value in (0.0005 * (i + 1), 0.05, 2.0):
            h.record(value, target, lambda t=target: {"netobs.target": t, "netobs.check.type": "icmp"})  # type: ignore[misc]
        c.add(i + 1, target, lambda t=target: {"netobs.target": t, "ok": True})  # type: ignore[misc]
        c.add(2, target, lambda: {"unused": "x"})
    return resource, [h, c]


def _sorted_points(request: ExportMetricsServiceRequest) -> dict[str, list[bytes]]:
    """{metric name: its data points serialised, sorted} over every resource and scope of ``request``."""
    out: dict[str, list[bytes]] = {}
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                data = getattr(m, m.WhichOneof("data"))
                out.setdefault(m.name, []).extend(p.SerializeToString(deterministic=True) for p in data.data_points)
    return {k: sorted(v) for k, v in out.items()}


def test_direct_encoding_is_what_the_sdk_encoder_makes_of_the_merged_metrics() -> None:
    resource, instruments = _recorded(series=3)
    merged = MetricMerger(resource, SCOPE, instruments).merge(None, now_ns=123_456)
    assert merged is not None
    expected = encode_metrics(merged)
    (request, points), *rest = DirectMetricEncoder(resource, SCOPE, instruments).requests(123_456)
    assert rest == [] and points == 6
    assert request.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    h = request.resource_metrics[0].scope_metrics[0].metrics[0]
    assert (h.name, h.unit, h.description) == ("netobs.h", "s", "a histogram")
    first = {
        kv.value.string_value: p for p in h.histogram.data_points for kv in p.attributes if kv.key == "netobs.target"
    }
    assert first["t0"].count == 3 and list(first["t0"].bucket_counts) == [1, 0, 1, 0, 1]
    c = request.resource_metrics[0].scope_metrics[0].metrics[1]
    assert c.sum.is_monotonic and sorted(p.as_int for p in c.sum.data_points) == [3, 4, 5]


@pytest.mark.parametrize(("series", "max_points", "requests"), [(5, 4, 3), (5, 10, 1), (5, 5, 2), (1, 1, 2)])
def test_direct_encoding_splits_requests_and_keeps_every_point(series: int, max_points: int, requests: int) -> None:
    resource, instruments = _recorded(series)
    encoded = list(DirectMetricEncoder(resource, SCOPE, instruments, max_points=max_points).requests(99))
    assert len(encoded) == requests
    assert all(0 < count <= max_points for _, count in encoded)
    assert sum(count for _, count in encoded) == 2 * series
    merged = MetricMerger(resource, SCOPE, instruments).merge(None, now_ns=99)
    assert merged is not None
    combined: dict[str, list[bytes]] = {}
    for request, count in encoded:
        assert count == sum(len(v) for v in _sorted_points(request).values())
        for name, points in _sorted_points(request).items():
            combined[name] = sorted(combined.get(name, []) + points)
    assert combined == _sorted_points(encode_metrics(merged))


def test_requests_are_built_as_they_are_asked_for() -> None:
    """The metrics thread rests between requests: each is built when taken, an instrument's numbers are
    read when its first point is built."""
    resource, instruments = _recorded(series=3)
    encoder = DirectMetricEncoder(resource, SCOPE, instruments, max_points=3)
    requests = encoder.requests(7)
    first, points = next(requests)
    assert points == 3 and list(_sorted_points(first)) == ["netobs.h"]
    counter = instruments[1]
    assert isinstance(counter, SummedCounter)
    counter.add(9, "late", lambda: {"netobs.target": "late"})  # after the first request was built
    second, points = next(requests)
    assert points == 3 and list(_sorted_points(second)) == ["netobs.c"]
    (third, points), *rest = list(requests)
    assert rest == [] and points == 1  # the series that came after the first request
    assert [p.as_int for p in third.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points] == [9]


def test_nothing_recorded_encodes_no_request() -> None:
    resource = Resource.create({"service.name": "x"})
    encoder = DirectMetricEncoder(
        resource, SCOPE, [SummedHistogram("h", "s", "d", BOUNDS), SummedCounter("c", "1", "")]
    )
    assert list(encoder.requests(1)) == []


def test_summed_counter_drops_negative_amounts_and_observes_sums() -> None:
    c = SummedCounter("c", "1", "d")
    c.add(3, "k", lambda: {"a": 1})
    c.add(-5, "k", lambda: {"a": 1})
    c.add(2, "k", lambda: {"a": 2})  # attributes are built once per series
    assert [(o.value, o.attributes) for o in c.observe(None)] == [(5, {"a": 1})]  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_otlp_receiver_gets_the_summed_metrics_and_the_sdk_ones(protocol: str) -> None:
    """Over OTLP the summed instruments go through the direct encoder, the SDK's through its reader: the
    receiver gets both, under the agent's resource and scope."""
    with otlp_telemetry(protocol, "metrics") as (telemetry, received):
        try:
            telemetry.record(result_of_type("icmp"))
            telemetry.record(result_of_type("icmp"))
            telemetry.set_checks(7)
            telemetry.flush()
        finally:
            telemetry.shutdown()
        metrics: dict[str, Any] = {}
        for raw in received:
            for rm in ExportMetricsServiceRequest.FromString(raw).resource_metrics:
                resource = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
                assert (resource["netobs.agent.id"], resource["netobs.pop"]) == ("ams-7", "ams")
                for sm in rm.scope_metrics:
                    assert sm.scope.name == "netobs.agent"
                    for m in sm.metrics:
                        metrics.setdefault(m.name, m)
    runs = metrics["netobs.probe.runs"].sum
    assert runs.is_monotonic and [p.as_int for p in runs.data_points] == [2]
    (duration,) = metrics["netobs.probe.duration"].histogram.data_points
    assert duration.count == 2 and tuple(duration.explicit_bounds) == tuple(LATENCY_BUCKETS_S)
    (scheduled,) = metrics["netobs.agent.scheduled"].gauge.data_points  # an SDK instrument
    assert scheduled.as_int == 7
