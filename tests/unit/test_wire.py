"""The C code (``netobs._wire``) against the Python it replaces: the writers give the same bytes, or refuse
and hand the batch to the Python writer (which then warns, drops or raises as it always did); a histogram
series' buckets count the same."""

from __future__ import annotations

import gc
import logging
import math
import random
import time
import weakref
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind, StatusCode

from netobs import _protowire
from netobs._fastmetrics import PyBuckets, SummedHistogram
from netobs._lightspans import _KINDS, _STATUSES, LightSpan, PySpanCore, SpanEncoder, encode_spans_python
from netobs._resultlogs import (
    RESULT_EVENT_NAME,
    SEVERITY_INFO,
    ResultLog,
    ResultLogEncoder,
    encode_result_logs_python,
)
from tests.unit.test_lightspans import RESOURCE, SCOPE

NATIVE: Any = _protowire.NATIVE
U64 = 2**64 - 1


def test_the_c_writers_are_built() -> None:
    # The test command builds them (`pip install -e .`); without them the agent silently takes the slow path.
    assert NATIVE is not None, "netobs._wire is not built: run `pip install -e .` (needs a C compiler)"
    assert NATIVE.__name__ == "netobs._wire"


def _span(name: str = "connect", **fields: Any) -> LightSpan:
    span = LightSpan(
        name,
        fields.pop("trace_id", 0x0123456789ABCDEF0123456789ABCDEF),
        fields.pop("span_id", 0x1122334455667788),
        fields.pop("parent_span_id", None),
        fields.pop("kind", SpanKind.INTERNAL),
        fields.pop("attributes", {}),
        fields.pop("start_time", 1_700_000_000_000_000_000),
        lambda s: None,
        fields.pop("parent_is_remote", False),
        fields.pop("status_code", StatusCode.UNSET),
    )
    span.events = fields.pop("events", [])
    span.status_description = fields.pop("status_description", None)
    span.end_time = fields.pop("end_time", 1_700_000_000_000_250_000)
    assert not fields, fields
    return span


SPAN_CASES: dict[str, list[LightSpan]] = {
    "none": [],
    "root": [_span("tcp 127.0.0.1:80", kind=SpanKind.CLIENT, attributes={"netobs.check.name": "db"})],
    "child": [_span(parent_span_id=0xA1B2C3D4E5F60708, attributes={"network.peer.port": 5432})],
    "remote parent": [_span(parent_span_id=1, parent_is_remote=True)],
    "every kind": [_span(kind=kind) for kind in SpanKind],
    "error with description": [_span(status_code=StatusCode.ERROR, status_description="HTTP 503")],
    "error without description": [_span(status_code=StatusCode.ERROR, status_description="")],
    "ok": [_span(status_code=StatusCode.OK)],
    "not ended": [_span(end_time=None)],
    "smallest and largest ids and times": [
        _span(trace_id=1, span_id=1, start_time=0, end_time=U64),
        _span(trace_id=2**128 - 1, span_id=U64, parent_span_id=U64, start_time=U64, end_time=0),
    ],
    "every value type": [
        _span(
            attributes={
                "str": "ünïcode ✓",
                "empty": "",
                "true": True,
                "false": False,
                "int": 443,
                "zero": 0,
                "negative": -1,
                "big": 2**70 + 5,
                "float": 0.25,
                "nan-free float": -1e300,
                "bytes": b"\x00\xff",
                "list": ["a", 1, 2.5, True],
                "tuple": ("x", "y"),
                "empty list": [],
                "nested": [["a"], [1, [2]]],
            }
        )
    ],
    "events": [
        _span(
            events=[
                ("retry", {"attempt": 2, "tags": ("a", "b")}, 1_500),
                ("exception", {}, 2_000),
            ]
        )
    ],
    "long texts (multi-byte lengths)": [
        _span(
            "n" * 200,
            attributes={"url.full": "u" * 20_000, "k" * 130: "v"},
            status_description="d" * 300,
            status_code=StatusCode.ERROR,
        ),
    ],
}


@pytest.mark.parametrize("spans", SPAN_CASES.values(), ids=SPAN_CASES.keys())
def test_spans_are_written_as_the_python_writer_writes_them(spans: list[LightSpan]) -> None:
    expected = encode_spans_python(spans)
    assert NATIVE.encode_spans(spans, _KINDS, _STATUSES) == expected
    request = ExportTraceServiceRequest.FromString(SpanEncoder(RESOURCE, SCOPE).encode(spans))
    assert [s.name for s in request.resource_spans[0].scope_spans[0].spans] == [s.name for s in spans]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(7 if depth < 2 else 5)
    if choice == 0:
        return "".join(rng.choice("aZ09 é✓\u2028") for _ in range(rng.randrange(0, 300)))
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.randrange(-(2**70), 2**70)
    if choice == 3:
        return rng.uniform(-1e9, 1e9)
    if choice == 4:
        return rng.randbytes(rng.randrange(0, 40))
    items = [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return items if choice == 5 else tuple(items)


def _random_span(rng: random.Random) -> LightSpan:
    attrs = {f"k{i}.{rng.randrange(10**6)}": _random_value(rng) for i in range(rng.randrange(0, 6))}
    events = [(f"e{i}", {"n": _random_value(rng)}, rng.randrange(2**64)) for i in range(rng.randrange(0, 2))]
    return _span(
        "x" * rng.randrange(0, 150),
        trace_id=rng.randrange(1, 2**128),
        span_id=rng.randrange(1, 2**64),
        parent_span_id=rng.choice([None, rng.randrange(1, 2**64)]),
        parent_is_remote=rng.random() < 0.3,
        kind=rng.choice(list(SpanKind)),
        attributes=attrs,
        events=events,
        start_time=rng.randrange(2**64),
        end_time=rng.choice([None, rng.randrange(2**64)]),
        status_code=rng.choice(list(StatusCode)),
        status_description=rng.choice([None, "", "boom ✗"]),
    )


def test_random_spans_are_written_as_the_python_writer_writes_them() -> None:
    rng = random.Random(20261123)
    for _ in range(300):
        spans = [_random_span(rng) for _ in range(rng.randrange(1, 5))]
        assert NATIVE.encode_spans(spans, _KINDS, _STATUSES) == encode_spans_python(spans)


def test_spans_of_the_python_core_are_written_the_same_by_attribute_lookup() -> None:
    # The C writer reads a SpanCore's fields straight from the object and any other span's by name: a
    # span on the Python core (what LightSpan derives from when the module is not built) takes that path.
    rng = random.Random(20261124)
    for _ in range(100):
        spans = [_random_span(rng) for _ in range(rng.randrange(1, 4))]
        copies = [_python_core_copy(span) for span in spans]
        assert not isinstance(copies[0], NATIVE.SpanCore)
        assert NATIVE.encode_spans(copies, _KINDS, _STATUSES) == encode_spans_python(spans)


def _python_core_copy(span: LightSpan) -> PySpanCore:
    copy = PySpanCore(
        span.name,
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.kind,
        span.attributes,
        span.start_time,
        lambda s: None,
        span.parent_is_remote,
        span.status_code,
    )
    copy.events, copy.status_description, copy.end_time = span.events, span.status_description, span.end_time
    return copy


CORES = pytest.mark.parametrize("core", [PySpanCore, "native"], ids=["python", "c"])


def _core(core: Any) -> Any:
    return NATIVE.SpanCore if core == "native" else core


@CORES
def test_a_span_core_keeps_what_it_is_given_and_ends_once(core: Any) -> None:
    ended: list[Any] = []
    attrs = {"a": 1}
    span = _core(core)("dns", 7, 8, None, SpanKind.INTERNAL, attrs, 1_000, ended.append, False, StatusCode.UNSET)
    fields = (span.name, span.trace_id, span.span_id, span.parent_span_id, span.kind, span.start_time)
    assert fields == ("dns", 7, 8, None, SpanKind.INTERNAL, 1_000)
    assert span.attributes is attrs
    assert (span.events, span.end_time, span.status_code, span.status_description) == ([], None, StatusCode.UNSET, None)
    assert (span.parent_is_remote, span._context, span._on_end) == (False, None, ended.append)
    span.end(end_time=5_000)
    span.end(9_000)  # a second end changes nothing and is not reported again
    assert span.end_time == 5_000
    assert ended == [span]


@CORES
def test_a_span_core_stamps_now_when_no_time_is_given(core: Any) -> None:
    ended: list[Any] = []
    before = time.time_ns()
    span = _core(core)("x", 1, 2, 3, SpanKind.CLIENT, {}, None, ended.append, True, StatusCode.UNSET)
    span.end(0)  # 0 is "now", as `end_time or time.time_ns()` has it
    after = time.time_ns()
    assert before <= span.start_time <= span.end_time <= after
    assert ended == [span]


@CORES
def test_a_span_core_refuses_wrong_arguments(core: Any) -> None:
    cls = _core(core)
    with pytest.raises(TypeError):
        cls("x", 1, 2, None, SpanKind.INTERNAL, {}, None, print, False)  # one short
    with pytest.raises(TypeError, match="attributes must be a dict"):
        cls("x", 1, 2, None, SpanKind.INTERNAL, [("a", 1)], None, print, False, StatusCode.UNSET)
    span = cls("x", 1, 2, None, SpanKind.INTERNAL, {}, None, lambda s: None, False, StatusCode.UNSET)
    with pytest.raises(TypeError):
        span.end(1, 2)
    with pytest.raises(TypeError):
        span.end(when=1)
    assert span.end_time is None


@CORES
def test_an_error_in_on_end_reaches_the_caller(core: Any) -> None:
    def fail(span: Any) -> None:
        raise RuntimeError("queue closed")

    span = _core(core)("x", 1, 2, None, SpanKind.INTERNAL, {}, None, fail, False, StatusCode.UNSET)
    with pytest.raises(RuntimeError, match="queue closed"):
        span.end()


def test_a_light_span_on_the_c_core_is_collected_in_a_cycle() -> None:
    # The C type takes part in garbage collection: a cycle through its fields (here its attributes) is freed.
    span = LightSpan("x", 1, 2, None, SpanKind.INTERNAL, {}, None, lambda s: None, False, StatusCode.UNSET)
    assert isinstance(span, NATIVE.SpanCore)
    span.attributes["self"] = span
    ref = weakref.ref(span)
    del span
    gc.collect()
    assert ref() is None


def test_a_value_only_python_handles_sends_the_batch_to_the_python_writer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spans = [_span(attributes={"ok": 1}), _span(attributes={"a dict": {"x": 1}, "kept": "yes"})]
    assert NATIVE.encode_spans(spans, _KINDS, _STATUSES) is None
    with caplog.at_level(logging.WARNING, logger="netobs._protowire"):
        encoded = SpanEncoder(RESOURCE, SCOPE).encode_slice(spans)
    assert encoded == encode_spans_python(spans)
    assert "a dict dropped" in caplog.text
    request = ExportTraceServiceRequest.FromString(SpanEncoder(RESOURCE, SCOPE).encode(spans))
    assert [a.key for a in request.resource_spans[0].scope_spans[0].spans[1].attributes] == ["kept"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"name": "lone \ud800 surrogate"}, UnicodeEncodeError),
        ({"start_time": -1}, Exception),
        ({"trace_id": 2**128}, OverflowError),
        ({"kind": "client"}, KeyError),
    ],
    ids=["text that is not UTF-8", "negative time", "id too large", "not a SpanKind"],
)
def test_what_the_python_writer_rejects_it_still_rejects(change: dict[str, Any], error: type[Exception]) -> None:
    span = _span()
    for key, value in change.items():
        setattr(span, key, value)
    assert NATIVE.encode_spans([span], _KINDS, _STATUSES) is None
    with pytest.raises(error):
        SpanEncoder(RESOURCE, SCOPE).encode_slice([span])


def _log(body: str = '{"success":true}', **fields: Any) -> ResultLog:
    return (
        fields.get("time_ns", 1_700_000_000_123_000_000),
        fields.get("observed_ns", 1_700_000_000_124_000_000),
        body,
        fields.get("check_name", "web"),
        fields.get("check_type", "http"),
        fields.get("result_id", "6f1c2a1e-4b7d-4f3e-9a51-0c2d7e8f9a10"),
    )


LOG_CASES: dict[str, list[ResultLog]] = {
    "none": [],
    "one": [_log()],
    "several": [_log(), _log(result_id="another"), _log(check_name="dns-root", check_type="dns")],
    "unicode": [_log('{"error_message":"délai dépassé ✗"}', check_name="prüfung")],
    "a body with a 3-byte length": [_log("b" * 70_000)],
    "extreme times": [_log(time_ns=0, observed_ns=U64)],
    "empty strings": [_log("", check_name="", check_type="", result_id="")],
}


@pytest.mark.parametrize("records", LOG_CASES.values(), ids=LOG_CASES.keys())
def test_result_logs_are_written_as_the_python_writer_writes_them(records: list[ResultLog]) -> None:
    expected = encode_result_logs_python(records)
    assert NATIVE.encode_result_logs(records, SEVERITY_INFO, RESULT_EVENT_NAME) == expected
    encoder = ResultLogEncoder(RESOURCE, SCOPE)
    request = ExportLogsServiceRequest.FromString(encoder.encode(records))
    bodies = [r.body.string_value for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert bodies == [r[2] for r in records]


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (_log(time_ns=-5), Exception),
        (_log("lone \udfff"), UnicodeEncodeError),
        (_log(check_name=None), None),  # type: ignore[arg-type]
    ],
    ids=["negative time", "text that is not UTF-8", "not a string (dropped with a warning)"],
)
def test_a_log_record_only_python_handles_goes_to_the_python_writer(
    record: ResultLog, error: type[Exception] | None, caplog: pytest.LogCaptureFixture
) -> None:
    batch = [_log(), record]
    assert NATIVE.encode_result_logs(batch, SEVERITY_INFO, RESULT_EVENT_NAME) is None
    encoder = ResultLogEncoder(RESOURCE, SCOPE)
    if error is not None:
        with pytest.raises(error):
            encoder.encode_slice(batch)
        return
    assert encoder.encode_slice(batch) == encode_result_logs_python(batch)
    assert "netobs.check.name dropped" in caplog.text


def test_wrong_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError, match="encode_spans"):
        NATIVE.encode_spans([], list(_KINDS), _STATUSES)
    with pytest.raises(TypeError, match="encode_result_logs"):
        NATIVE.encode_result_logs([], "9", RESULT_EVENT_NAME)
    with pytest.raises(TypeError, match="sequence"):
        NATIVE.encode_spans(5, _KINDS, _STATUSES)


BOUNDS = (0.0, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0, 10.0)
EDGE_VALUES = [0.0, 0.0005, 0.00050001, 1.0, 10.0, 10.5, 1e300, -0.0, -1.0, math.nan, math.inf, -math.inf, 3]


@pytest.mark.parametrize("bounds", [BOUNDS, (), (5.0,)], ids=["network latency", "no bounds", "one bound"])
def test_c_buckets_count_as_the_python_ones(bounds: tuple[float, ...]) -> None:
    rng = random.Random(11)
    values = (
        EDGE_VALUES + [rng.choice(bounds or (1.0,)) for _ in range(50)] + [rng.expovariate(100) for _ in range(500)]
    )
    native, python = NATIVE.Buckets(bounds), PyBuckets(bounds)
    assert [native.add(v) for v in values] == [python.add(v) for v in values]
    assert native.snapshot() == python.snapshot()
    count, total, counts, low, high = native.snapshot()
    assert count == sum(counts) == len(values) - 4  # -1, NaN and both infinities dropped (-0.0 is zero)
    assert (low, high) == (0.0, 1e300) and math.isclose(total, sum(v for v in values if 0 <= v < math.inf))


def test_a_new_series_starts_empty_and_bounds_must_increase() -> None:
    assert NATIVE.Buckets(BOUNDS).snapshot() == PyBuckets(BOUNDS).snapshot() == (0, 0.0, (0,) * 10, math.inf, -math.inf)
    for buckets in (NATIVE.Buckets, PyBuckets):
        with pytest.raises(ValueError, match="strictly increasing"):
            buckets((1.0, 1.0))
        with pytest.raises(ValueError, match="strictly increasing"):
            buckets((2.0, 1.0))
    with pytest.raises(TypeError):
        NATIVE.Buckets(("a",))


def test_a_histogram_collects_the_same_points_with_either_buckets() -> None:
    rng = random.Random(5)
    collected = []
    for buckets in (NATIVE.Buckets, PyBuckets):
        histogram = SummedHistogram("netobs.probe.duration", "s", "d", BOUNDS, buckets=buckets)
        for _ in range(2_000):
            target = f"10.0.0.{rng.randrange(20)}"
            histogram.record(rng.choice([rng.expovariate(50), -1.0]), target, lambda t=target: {"netobs.target": t})
        metric = histogram.collect(now_ns=1_700_000_000_000_000_000)
        assert metric is not None
        collected.append(
            [(p.attributes, p.count, p.sum, p.bucket_counts, p.min, p.max) for p in metric.data.data_points]
        )
        rng = random.Random(5)
    assert collected[0] == collected[1] and len(collected[0]) == 20
