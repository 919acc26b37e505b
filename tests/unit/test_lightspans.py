"""The light tracer: the same spans, encoded the same way, as the SDK's tracer; really exported."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from netobs import __version__
from netobs._lightspans import LightSpan, LightTracer, SpanEncoder, encode_spans_python, span_ids
from netobs.config import parse_config
from netobs.probes.base import Outcome, ProbeContext, child_span
from netobs.runner import Runner
from netobs.telemetry import INSTRUMENTATION_SCOPE, Telemetry, build_resource
from tests.unit.test_resultlogs import otlp_telemetry

SCOPE = InstrumentationScope(INSTRUMENTATION_SCOPE, __version__)
RESOURCE = build_resource(parse_config("agent_id: ams-7\npop: ams"))


def _http_like(tracer: trace.Tracer) -> None:
    """What a traced HTTP run does with its tracer: a root span, phase children, attributes, status."""
    root = tracer.start_span(
        "http http://x/", kind=SpanKind.CLIENT, attributes={"netobs.check.name": "web", "netobs.target": "x"}
    )
    ctx = trace.set_span_in_context(root)
    dns = tracer.start_span("dns", context=ctx, attributes={"server.address": "x"})
    dns.end()
    connect = tracer.start_span(
        "connect", context=ctx, attributes={"network.peer.address": "127.0.0.1", "network.peer.port": 80}
    )
    connect.set_status(Status(StatusCode.ERROR, "ConnectionRefusedError"))
    connect.end()
    hop = tracer.start_span("hop 3", context=ctx, start_time=1_000, attributes={"ratio": 0.5, "ok": True})
    hop.add_event("retry", {"attempt": 2, "tags": ("a", "b")}, timestamp=1_500)
    hop.set_status(StatusCode.OK)
    hop.set_status(Status(StatusCode.ERROR, "ignored after OK"))
    hop.end(end_time=2_000)
    root.set_attribute("http.response.status_code", 503)
    root.set_attribute("error.type", "http_status")
    root.set_status(Status(StatusCode.ERROR, "HTTP 503"))
    root.end()
    root.set_attribute("after.end", "ignored")
    # A child of a remote parent (an incoming traceparent): same trace, the remote flag in the span flags.
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    tracer.start_span("child of remote", context=trace.set_span_in_context(NonRecordingSpan(remote))).end()


def _normalised(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """Ids replaced by their order of appearance, times of spans without explicit ones zeroed."""
    out = ExportTraceServiceRequest()
    out.CopyFrom(request)
    labels: dict[bytes, bytes] = {}

    def label(raw: bytes) -> bytes:
        if not raw or raw in (b"\x00" * 16, (0xABC).to_bytes(16, "big"), (0xDEF).to_bytes(8, "big")):
            return raw
        return labels.setdefault(raw, len(labels).to_bytes(8, "big"))

    for rs in out.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.trace_id, span.span_id = label(span.trace_id), label(span.span_id)
                span.parent_span_id = label(span.parent_span_id)
                if span.start_time_unix_nano != 1_000:
                    span.start_time_unix_nano = span.end_time_unix_nano = 0
    return out


def test_encoding_matches_the_sdk_for_the_same_tracing_calls() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _http_like(provider.get_tracer(INSTRUMENTATION_SCOPE, __version__))
    expected = encode_spans(exporter.get_finished_spans())

    ended: list[LightSpan] = []
    _http_like(LightTracer(ended.append))
    got = ExportTraceServiceRequest.FromString(SpanEncoder(RESOURCE, SCOPE).encode(ended))

    assert [s.name for s in got.resource_spans[0].scope_spans[0].spans] == [
        "dns",
        "connect",
        "hop 3",
        "http http://x/",
        "child of remote",
    ]
    assert _normalised(got) == _normalised(expected)
    spans = got.resource_spans[0].scope_spans[0].spans
    root = spans[3]
    assert all(s.trace_id == root.trace_id and s.parent_span_id == root.span_id for s in spans[:3])
    assert spans[4].trace_id == (0xABC).to_bytes(16, "big") and spans[4].parent_span_id == (0xDEF).to_bytes(8, "big")


StatusCall = Callable[[trace.Span], None]


@pytest.mark.parametrize(
    "calls",
    [
        [],
        [lambda s: s.set_status(Status(StatusCode.ERROR, "boom"))],
        [lambda s: s.set_status(StatusCode.ERROR, "by code")],
        [lambda s: s.set_status(StatusCode.OK), lambda s: s.set_status(StatusCode.ERROR, "late")],
        [lambda s: s.set_status(StatusCode.ERROR, "first"), lambda s: s.set_status(StatusCode.UNSET)],
        [lambda s: s.set_status(Status(StatusCode.OK, "description dropped"))],
    ],
)
def test_status_rules_are_the_sdks(calls: list[StatusCall]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sdk_span = provider.get_tracer("t").start_span("s")
    light = LightTracer(lambda s: None).start_span("s")
    for call in calls:
        call(sdk_span)
        call(light)
    sdk_span.end()
    (finished,) = exporter.get_finished_spans()
    assert (light.status_code, light.status_description) == (
        finished.status.status_code,
        finished.status.description,
    )


def test_start_as_current_span_is_current_and_records_the_exception() -> None:
    ended: list[LightSpan] = []
    tracer = LightTracer(ended.append)
    seen: list[trace.Span] = []

    def body() -> None:
        with tracer.start_as_current_span("outer") as outer:
            seen.append(trace.get_current_span())
            assert seen[0] is outer
            tracer.start_span("inner").end()
            raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        body()
    inner, outer_span = ended
    assert inner.parent_span_id == outer_span.span_id and inner.trace_id == outer_span.trace_id
    assert outer_span.status_code is StatusCode.ERROR
    ((name, attrs, _),) = outer_span.events
    assert name == "exception" and attrs["exception.type"] == "ValueError" and attrs["exception.message"] == "bad"


@pytest.mark.parametrize(
    "attributes",
    [None, {}, {"network.peer.address": "127.0.0.1", "network.peer.port": 9}],
    ids=["none", "empty", "two"],
)
def test_a_phase_child_without_a_context_is_the_span_the_context_gives(attributes: dict[str, Any] | None) -> None:
    spans: list[list[LightSpan]] = [[], []]
    via_context, direct = (LightTracer(ended.append, random.Random(7)) for ended in spans)
    roots = [t.start_span("tcp 127.0.0.1:9", kind=SpanKind.CLIENT) for t in (via_context, direct)]
    children = [
        via_context.start_span("connect", context=trace.set_span_in_context(roots[0]), attributes=attributes),
        child_span(direct, roots[1], "connect", attributes),
    ]
    for child, root in zip(children, roots, strict=True):
        assert child.parent_span_id == root.span_id and child.trace_id == root.trace_id
        child.set_attribute("late", True)
        child.start_time, child.end_time = 1_000, 2_000
        child._on_end(child)
    assert spans[0] and encode_spans_python(spans[0]) == encode_spans_python(spans[1])
    # Any other tracer or parent goes through the context, as before.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sdk = provider.get_tracer("t")
    sdk_root = sdk.start_span("root")
    child_span(sdk, sdk_root, "connect", attributes).end()
    (finished,) = exporter.get_finished_spans()
    assert finished.parent is not None and finished.parent.span_id == sdk_root.get_span_context().span_id
    assert dict(finished.attributes or {}) == dict(attributes or {})


class _Traced:
    check_type: ClassVar[str] = "tcp"
    traced: ClassVar[bool] = True

    async def run(self, ctx: ProbeContext) -> Outcome:
        with ctx.phase("connect", **{"network.peer.address": "127.0.0.1", "network.peer.port": 9}):
            ctx.resolved_ip = "127.0.0.1"
        return Outcome.ok()


class _Check:
    name, type, timeout_s, interval_s = "svc", "tcp", 1.0, 5.0
    labels: ClassVar[dict[str, str]] = {}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_runs_arrive_at_an_otlp_receiver_as_a_root_and_phase_spans(protocol: str) -> None:
    with otlp_telemetry(protocol, "traces") as (telemetry, received):
        assert isinstance(telemetry.tracer, LightTracer)
        runner = Runner("ams-7", "ams", {"tcp": _Traced()}, sinks=[telemetry.record], tracer=telemetry.tracer)
        try:
            result = await runner.run(_Check(), "127.0.0.1:9")
            telemetry.flush()
        finally:
            telemetry.shutdown()
        spans: dict[str, Any] = {}
        for raw in received:
            for rs in ExportTraceServiceRequest.FromString(raw).resource_spans:
                assert {kv.key: kv.value.string_value for kv in rs.resource.attributes}["netobs.pop"] == "ams"
                for ss in rs.scope_spans:
                    assert ss.scope.name == INSTRUMENTATION_SCOPE
                    spans.update({s.name: s for s in ss.spans})
    root, connect = spans["tcp 127.0.0.1:9"], spans["connect"]
    assert root.trace_id.hex() == result.trace_id and root.span_id.hex() == result.span_id
    assert connect.trace_id == root.trace_id and connect.parent_span_id == root.span_id
    assert root.kind == 3  # SPAN_KIND_CLIENT
    assert {kv.key: kv.value.string_value for kv in root.attributes}["network.peer.address"] == "127.0.0.1"
    assert {kv.key: kv.value.int_value for kv in connect.attributes}["network.peer.port"] == 9
    assert root.end_time_unix_nano >= connect.end_time_unix_nano > connect.start_time_unix_nano > 0


async def test_without_span_exporters_runs_still_get_trace_ids() -> None:
    telemetry = Telemetry.from_config(
        parse_config("agent_id: a\npop: p\noutputs: {stdout_json: false, prometheus_listen: '127.0.0.1:0'}")
    )
    try:
        runner = Runner("a", "p", {"tcp": _Traced()}, tracer=telemetry.tracer)
        first, second = await runner.run(_Check(), "t"), await runner.run(_Check(), "t")
    finally:
        telemetry.shutdown()
    assert first.trace_id and second.trace_id and first.trace_id != second.trace_id
    assert len(first.trace_id) == 32 and first.span_id is not None and len(first.span_id) == 16


def test_unsupported_attribute_values_are_dropped_with_a_warning_and_the_rest_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ended: list[LightSpan] = []
    span = LightTracer(ended.append).start_span("s", attributes={"a": "x", "n": -3, "bad": {"k": 1}})
    span.set_attribute("big", 2**40)
    span.set_attribute("weird", [object()])
    span.end()
    span2 = LightTracer(ended.append).start_span("t", attributes={"a": "x", "n": -3})  # cached pairs again
    span2.end()
    with caplog.at_level(logging.WARNING):
        request = ExportTraceServiceRequest.FromString(SpanEncoder(RESOURCE, SCOPE).encode(ended))
    first, second = request.resource_spans[0].scope_spans[0].spans

    def plain(span: Any) -> dict[str, Any]:
        return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}

    assert plain(first) == {"a": "x", "n": -3, "big": 2**40}
    assert plain(second) == {"a": "x", "n": -3}
    assert "span attribute bad dropped" in caplog.text and "span attribute weird dropped" in caplog.text


def test_span_ids_are_the_span_contexts_for_light_sdk_and_remote_spans() -> None:
    light = LightTracer(lambda s: None, rng=random.Random(7)).start_span("run")
    sdk = TracerProvider().get_tracer("t").start_span("run")
    remote = NonRecordingSpan(SpanContext(5, 6, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT)))
    for span in (light, sdk, remote):
        sc = span.get_span_context()
        assert span_ids(span) == (sc.trace_id, sc.span_id, sc.trace_flags.sampled)
    assert span_ids(remote) == (5, 6, False)
    assert span_ids(light)[2] is True
