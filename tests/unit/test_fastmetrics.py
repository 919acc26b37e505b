"""Self-aggregated histograms: the same data points as the SDK's histograms, merged into every reader."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from netobs._fastmetrics import MetricMerger, SummedHistogram, supports
from netobs.config import parse_config
from netobs.telemetry import LATENCY_BUCKETS_S, Telemetry, TelemetryParts
from tests.contract.exemplars import result_of_type

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
    assert telemetry._instruments.summed_histograms  # the fast path is on with this SDK version
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
    assert telemetry._instruments.summed_histograms == []
    telemetry.record(result_of_type("icmp"))
    data = delta.get_metrics_data()
    (point,) = _points(data, "netobs.probe.duration")
    assert point.count == 1
    telemetry.shutdown()
