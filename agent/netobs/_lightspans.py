"""A light tracer for the agent's own spans, encoded straight to OTLP protobuf a batch at a time.

Theory of operation. Through the OpenTelemetry SDK a span costs ~30 µs on the event loop (sampler,
attribute validation into ``BoundedAttributes``, span limits, locks, a ``ReadableSpan`` copy at the end,
the processor chain) and ~35 µs in the batch processor's thread (``encode_spans``), and a TCP run makes
three spans, an HTTP run five. Every run must be traced, so the agent keeps every span but makes them
cheaper: ``LightTracer`` implements the tracing API (``start_span``, ``start_as_current_span``, context
propagation through the standard ``Context``, so ``traceparent`` injection and parent lookup work as with
the SDK) with ``LightSpan`` objects that only store what they are told; ``end`` hands the span to a
``_otlpdirect.Batcher`` whose thread builds the ``ExportTraceServiceRequest`` with ``SpanEncoder``.

What the collector receives is what the SDK would have sent for the same span with its defaults (always
sampled, random 128-bit trace and 64-bit span ids, no span limits reached): ``tests/unit/test_lightspans.py``
compares the encoding with the SDK's ``encode_spans`` field by field. Not supported, because the agent does
not use them: links, trace state and span limits.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._internal import _encode_instrumentation_scope, _encode_resource
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

log = logging.getLogger(__name__)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_HAS_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_KIND = {kind: kind.value + 1 for kind in SpanKind}  # the protobuf enum has UNSPECIFIED = 0 first


class LightSpan(trace.Span):
    """A recording span that stores its data and is handed to ``on_end`` when it ends."""

    __slots__ = (
        "_context",
        "_on_end",
        "attributes",
        "end_time",
        "events",
        "kind",
        "name",
        "parent_is_remote",
        "parent_span_id",
        "span_id",
        "start_time",
        "status_code",
        "status_description",
        "trace_id",
    )

    def __init__(
        self,
        name: str,
        *,
        trace_id: int,
        span_id: int,
        parent_span_id: int | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
        on_end: Callable[[LightSpan], None],
        parent_is_remote: bool = False,
    ) -> None:
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.parent_is_remote = parent_is_remote
        self.kind = kind
        self.attributes = attributes
        self.events: list[tuple[str, dict[str, Any], int]] = []
        self.start_time = start_time
        self.end_time: int | None = None
        self.status_code = StatusCode.UNSET
        self.status_description: str | None = None
        self._context: SpanContext | None = None
        self._on_end = on_end

    def get_span_context(self) -> SpanContext:
        if self._context is None:
            self._context = SpanContext(self.trace_id, self.span_id, is_remote=False, trace_flags=_SAMPLED)
        return self._context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self.end_time is None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self.end_time is None:
            self.attributes.update(attributes)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self.end_time is None:
            self.events.append((name, dict(attributes or {}), timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, UNSET is ignored, a description is kept only with ERROR.
        if self.end_time is not None or self.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
        if code is StatusCode.UNSET:
            return
        self.status_code = code
        self.status_description = description if code is StatusCode.ERROR else None

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        attrs: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        attrs.update(attributes or {})
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time or time.time_ns()
        self._on_end(self)


class LightTracer(trace.Tracer):
    """Creates ``LightSpan`` objects (always sampled) and passes each, when it ends, to ``on_end``."""

    def __init__(self, on_end: Callable[[LightSpan], None], rng: random.Random | None = None) -> None:
        self._on_end = on_end
        self._getrandbits = (rng or random.Random()).getrandbits

    def start_span(  # noqa: PLR0917 (the tracing API's signature)
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> LightSpan:
        parent = trace.get_current_span(context)
        parent_remote = False
        if isinstance(parent, LightSpan):
            trace_id, parent_id = parent.trace_id, parent.span_id
        else:
            pc = parent.get_span_context()
            if pc.is_valid:
                trace_id, parent_id, parent_remote = pc.trace_id, pc.span_id, pc.is_remote
            else:
                trace_id, parent_id = 0, None
                while not trace_id:
                    trace_id = self._getrandbits(128)
        span_id = 0
        while not span_id:
            span_id = self._getrandbits(64)
        return LightSpan(
            name,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_id,
            kind=kind,
            attributes=dict(attributes) if attributes else {},
            start_time=start_time or time.time_ns(),
            on_end=self._on_end,
            parent_is_remote=parent_remote,
        )

    @_agnosticcontextmanager
    def start_as_current_span(  # noqa: PLR0917 (the tracing API's signature)
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


def _set_value(target: AnyValue, value: Any) -> None:
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, Sequence):
        values = target.array_value.values
        for item in value:
            _set_value(values.add(), item)
    else:
        raise TypeError(f"unsupported attribute value {value!r}")


def _set_attributes(target: Any, attributes: Mapping[str, Any]) -> None:
    for key, value in attributes.items():
        try:
            kv = target.add(key=key)
            _set_value(kv.value, value)
        except TypeError:
            del target[-1]
            log.warning("span attribute %s dropped: unsupported value %r", key, value)


class SpanEncoder:
    """Builds ``ExportTraceServiceRequest`` messages for spans of one resource and scope."""

    def __init__(self, resource: Resource, scope: InstrumentationScope) -> None:
        self._resource = _encode_resource(resource)
        self._resource_schema_url = resource.schema_url
        self._scope = _encode_instrumentation_scope(scope)
        self._scope_schema_url = scope.schema_url

    def encode(self, spans: Sequence[LightSpan]) -> ExportTraceServiceRequest:
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.CopyFrom(self._resource)
        if self._resource_schema_url:
            resource_spans.schema_url = self._resource_schema_url
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.CopyFrom(self._scope)
        if self._scope_schema_url:
            scope_spans.schema_url = self._scope_schema_url
        add = scope_spans.spans.add
        for s in spans:
            pb = add(
                trace_id=s.trace_id.to_bytes(16, "big"),
                span_id=s.span_id.to_bytes(8, "big"),
                name=s.name,
                kind=_KIND[s.kind],
                start_time_unix_nano=s.start_time,
                end_time_unix_nano=s.end_time,
                flags=_HAS_IS_REMOTE | _IS_REMOTE if s.parent_is_remote else _HAS_IS_REMOTE,
            )
            if s.parent_span_id is not None:
                pb.parent_span_id = s.parent_span_id.to_bytes(8, "big")
            if s.attributes:
                _set_attributes(pb.attributes, s.attributes)
            for name, attrs, ts in s.events:
                event = pb.events.add(name=name, time_unix_nano=ts)
                _set_attributes(event.attributes, attrs)
            status = pb.status
            status.SetInParent()
            if s.status_code is not StatusCode.UNSET:
                status.code = s.status_code.value
            if s.status_description:
                status.message = s.status_description
        return request
