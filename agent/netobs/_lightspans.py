"""A light tracer for the agent's own spans, encoded straight to OTLP protobuf a batch at a time.

Theory of operation. Through the OpenTelemetry SDK a span costs ~30 µs on the event loop (sampler,
attribute validation into ``BoundedAttributes``, span limits, locks, a ``ReadableSpan`` copy at the end,
the processor chain) and ~35 µs in the batch processor's thread (``encode_spans``), and a TCP run makes
three spans, an HTTP run five. Every run must be traced, so the agent keeps every span but makes them
cheaper: ``LightTracer`` implements the tracing API (``start_span``, ``start_as_current_span``, context
propagation through the standard ``Context``, so ``traceparent`` injection and parent lookup work as with
the SDK) with ``LightSpan`` objects that only store what they are told; ``end`` hands the span to a
``_otlpdirect.Batcher``, which writes it with ``SpanEncoder`` at once and whose thread joins the spans into
an ``ExportTraceServiceRequest``. A
span's fields, construction and ``end`` are ``_wire.SpanCore``'s, in C (2.0 -> 0.7 µs per phase span
started and ended; ``PySpanCore`` is the same in Python, the reference and the fallback when the C module
is not built), and the runner and the HTTP probe read a light span's ids directly (``span_ids``).

The spans are written in the protobuf wire format here (see ``_span``). What the
collector receives is what the SDK would have sent for the same span with its defaults (always
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
from typing import TYPE_CHECKING, Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

from netobs._protowire import NATIVE, ONE_BYTE, PACK_FIXED32, PACK_FIXED64, RequestEncoder, attributes, field

log = logging.getLogger(__name__)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_INTERNAL = SpanKind.INTERNAL
_UNSET = StatusCode.UNSET
_HAS_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_KIND = {kind: kind.value + 1 for kind in SpanKind}  # the protobuf enum has UNSPECIFIED = 0 first
# The members in value order, for the C writer (it finds a span's kind and status by identity).
_KINDS = tuple(sorted(SpanKind, key=lambda kind: kind.value))
_STATUSES = tuple(sorted(StatusCode, key=lambda code: code.value))


class PySpanCore:
    """A span's data, and its ``end``: the Python reference of ``_wire.SpanCore`` (same fields, same
    positional constructor), which ``LightSpan`` derives from when the C module is not built.
    ``start_time`` None means now; ``end`` stamps the end (now unless given) and hands the span to
    ``on_end``, once."""

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

    def __init__(  # noqa: PLR0917 (the C type's positional constructor)
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent_span_id: int | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int | None,
        on_end: Callable[[Any], None],
        parent_is_remote: bool,
        status_code: StatusCode,
    ) -> None:
        if not isinstance(attributes, dict):
            raise TypeError("SpanCore: attributes must be a dict")
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.parent_is_remote = parent_is_remote
        self.kind = kind
        self.attributes = attributes
        self.events: list[tuple[str, dict[str, Any], int]] = []
        self.start_time = time.time_ns() if start_time is None else start_time
        self.end_time: int | None = None
        self.status_code = status_code
        self.status_description: str | None = None
        self._context: SpanContext | None = None
        self._on_end = on_end

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time or time.time_ns()
        self._on_end(self)


if TYPE_CHECKING:
    _SpanCore = PySpanCore
else:
    _SpanCore = PySpanCore if NATIVE is None else NATIVE.SpanCore


class LightSpan(_SpanCore, trace.Span):
    """A recording span that stores its data and is handed to ``on_end`` when it ends (its data and ``end``
    are ``SpanCore``'s: in C when the module is built)."""

    __slots__ = ()

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


def span_ids(span: trace.Span) -> tuple[int, int, bool]:
    """(trace id, span id, sampled) of ``span``: a light span's own fields (always sampled), any other span's
    ``SpanContext`` (whose construction and checks cost ~1 µs, for ids the light span holds already)."""
    if type(span) is LightSpan:  # exact type: an ABC isinstance check costs more than it saves
        return span.trace_id, span.span_id, True
    sc = span.get_span_context()
    return sc.trace_id, sc.span_id, sc.trace_flags.sampled


class LightTracer(trace.Tracer):
    """Creates ``LightSpan`` objects (always sampled) and passes each, when it ends, to ``on_end``."""

    def __init__(self, on_end: Callable[[LightSpan], None], rng: random.Random | None = None) -> None:
        self._on_end = on_end
        self._getrandbits = (rng or random.Random()).getrandbits

    def _random_id(self, bits: int) -> int:
        """A random id of ``bits`` bits, never zero (the invalid id), as the SDK's generator gives."""
        value = self._getrandbits(bits)
        while not value:
            value = self._getrandbits(bits)
        return value

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
        if type(parent) is LightSpan:  # not isinstance: an ABC check per span costs ~0.3 µs
            trace_id, parent_id = parent.trace_id, parent.span_id
        else:
            pc = parent.get_span_context()
            if pc.is_valid:
                trace_id, parent_id, parent_remote = pc.trace_id, pc.span_id, pc.is_remote
            else:
                trace_id, parent_id = self._random_id(128), None
        return LightSpan(
            name,
            trace_id,
            self._random_id(64),
            parent_id,
            kind,
            dict(attributes) if attributes else {},
            start_time or None,
            self._on_end,
            parent_remote,
            _UNSET,
        )

    def start_trace(
        self, name: str, trace_id: int, kind: SpanKind, attributes: types.Attributes, start_time: int
    ) -> LightSpan:
        """A root span of the trace ``trace_id``, given: a run whose ids were drawn before it was recorded
        (the native engine's HTTP runs, whose ``traceparent`` went out first: ``netobs._native``)."""
        return LightSpan(
            name,
            trace_id,
            self._random_id(64),
            None,
            kind,
            dict(attributes) if attributes else {},
            start_time,
            self._on_end,
            False,
            _UNSET,
        )

    def start_child(
        self,
        parent: LightSpan,
        name: str,
        attributes: types.Attributes = None,
        start_time: int | None = None,
        span_id: int | None = None,
    ) -> LightSpan:
        """``start_span(name, context=set_span_in_context(parent), attributes=attributes, start_time=...)``
        without the context: an internal span under one of this tracer's spans (a run's phases, several per
        run); ``span_id`` given or random."""
        return LightSpan(
            name,
            parent.trace_id,
            span_id or self._random_id(64),
            parent.span_id,
            _INTERNAL,
            dict(attributes) if attributes else {},
            start_time,
            self._on_end,
            False,
            _UNSET,
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


# -- protobuf wire encoding ---------------------------------------------------------------------------
# The spans are written in the protobuf wire format here: building the same message field by field through
# the protobuf API cost ~10 µs per span in the export thread, this ~4.6 µs, and the same writer in C
# (``_wire.encode_spans``, used when built) a fraction of a µs. Field numbers are those of
# opentelemetry-proto's trace.proto; the test compares the result with the SDK's encoder, and the C
# writer's with this one.


def _span(s: LightSpan) -> bytes:
    parts = [
        b"\x0a\x10",
        s.trace_id.to_bytes(16, "big"),
        b"\x12\x08",
        s.span_id.to_bytes(8, "big"),
    ]
    if s.parent_span_id is not None:
        parts += (b"\x22\x08", s.parent_span_id.to_bytes(8, "big"))
    parts += (
        field(b"\x2a", s.name.encode()),
        b"\x30",
        ONE_BYTE[_KIND[s.kind]],
        b"\x39",
        PACK_FIXED64(s.start_time),
        b"\x41",
        PACK_FIXED64(s.end_time or 0),
    )
    if s.attributes:
        parts.append(attributes(b"\x4a", s.attributes, "span attribute"))
    for name, attrs, ts in s.events:
        parts.append(
            field(
                b"\x5a",
                b"\x09"
                + PACK_FIXED64(ts)
                + field(b"\x12", name.encode())
                + attributes(b"\x1a", attrs, "span attribute"),
            )
        )
    status = b""
    if s.status_description:
        status += field(b"\x12", s.status_description.encode())
    if s.status_code is not StatusCode.UNSET:
        status += b"\x18" + ONE_BYTE[s.status_code.value]
    parts.append(field(b"\x7a", status))
    parts += (b"\x85\x01", PACK_FIXED32(_HAS_IS_REMOTE | _IS_REMOTE if s.parent_is_remote else _HAS_IS_REMOTE))
    return field(b"\x12", b"".join(parts))  # ScopeSpans.spans


class SpanEncoder(RequestEncoder[LightSpan]):
    """Builds serialised ``ExportTraceServiceRequest``s for spans of one resource and scope."""

    def encode_native(self, items: Sequence[LightSpan]) -> bytes | None:
        assert NATIVE is not None
        encoded: bytes | None = NATIVE.encode_spans(items, _KINDS, _STATUSES)
        return encoded

    def encode_python(self, items: Sequence[LightSpan]) -> bytes:
        return encode_spans_python(items)


def encode_spans_python(items: Sequence[LightSpan]) -> bytes:
    """The spans as ScopeSpans.spans fields, by the Python writer (the C writer's reference)."""
    return b"".join(map(_span, items))
