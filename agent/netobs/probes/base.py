"""What every probe type shares: the context a run gets, and the outcome it returns.

A probe reports only what is specific to its type. The runner (``netobs.runner``) owns the deadline,
timing, the root span, error mapping and the result record; a probe:
- returns an :class:`Outcome` (success, or a failure with a low-cardinality ``ErrorType``);
- may raise ``OSError``/``TimeoutError``/``ssl`` errors: the runner maps them to an ``ErrorType``;
- records its phases with ``ctx.phase(name)`` (timed, and a child span when the check is traced);
- keeps its partial results in ``ctx`` (``resolved_ip``, ``detail``), so a run that times out still
  reports what it measured before the deadline.
Cancellation always propagates.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, cast

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from netobs._lightspans import LightSpan, LightTracer
from netobs.result import ErrorType


@dataclass(slots=True)
class Outcome:
    success: bool
    error_type: ErrorType | None = None
    error_message: str | None = None

    @classmethod
    def ok(cls) -> Outcome:
        return cls(True)

    @classmethod
    def fail(cls, error_type: ErrorType, message: str) -> Outcome:
        return cls(False, error_type, message)


class Resolver(Protocol):
    async def resolve(self, host: str, ip_version: str) -> list[str]:
        """Addresses of ``host`` (``ip_version``: "auto", "4" or "6"), preferred first; raises
        ``socket.gaierror`` when the name does not resolve."""
        ...


# Opens a connected non-blocking TCP socket to (ip, port); production: ``_sockio.connect_socket``.
Connector = Callable[[str, int], Awaitable[socket.socket]]


class SystemResolver:
    """The operating system's resolver (getaddrinfo), run off the event loop."""

    async def resolve(self, host: str, ip_version: str) -> list[str]:
        family = {"4": socket.AF_INET, "6": socket.AF_INET6}.get(ip_version, socket.AF_UNSPEC)
        if is_ip_literal(host):
            return [host]
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
        seen: list[str] = []
        for info in infos:
            addr = str(info[4][0])
            if addr not in seen:
                seen.append(addr)
        return seen


@functools.lru_cache(maxsize=65536)  # asked on every run of a target
def is_ip_literal(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


def literal_ip(host: str, ip_version: str) -> str | None:
    """``host`` itself when it is an IP address, None when it is a name to resolve. An address needs no
    lookup, so a run of it has no dns phase (``ping`` and ``curl`` report none either). Raises
    ``socket.gaierror`` (a resolve failure) when the address is not of ``ip_version`` ("4" or "6")."""
    if not is_ip_literal(host):
        return None
    if ip_version not in ("auto", "6" if ":" in host else "4"):
        raise socket.gaierror(socket.EAI_FAMILY, f"{host} is not an IPv{ip_version} address")
    return host


@dataclass(slots=True)
class ProbeContext:
    """One run of one (check, target). Created by the runner; probes fill in what they measure."""

    check: Any  # the check's config model (IcmpCheck, HttpCheck, ...)
    target: str
    deadline: float  # time.monotonic() value after which the run is over
    span: Span | None = None  # the run's root span when the check is traced
    tracer: trace.Tracer | None = None
    resolved_ip: str | None = None
    phases_ms: dict[str, float] = field(default_factory=dict)
    detail: Any = None  # the type's sub-record (IcmpResult, HttpResult, ...)

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def phase(self, name: str, **attributes: Any) -> _Phase:
        """Time ``name``; adds to ``phases_ms[name]`` (phases repeated over redirects add up) and, when
        traced, makes it a child span of the run, with error status if the block raises. The context
        manager gives the child span (None when not traced)."""
        return _Phase(self, name, attributes)


class PresetIds(RandomIdGenerator):
    """The SDK's random ids, except that the next trace or span id can be given (``next_trace_id``,
    ``next_span_id``, each used once): the ids of a run whose ``traceparent`` went out before its spans were
    made (the native engine's HTTP runs). The agent's SDK tracer provider uses it (``netobs.telemetry``)."""

    def __init__(self) -> None:
        self.next_trace_id = 0
        self.next_span_id = 0

    def generate_trace_id(self) -> int:
        value, self.next_trace_id = self.next_trace_id, 0
        return value or super().generate_trace_id()

    def generate_span_id(self) -> int:
        value, self.next_span_id = self.next_span_id, 0
        return value or super().generate_span_id()


def sets_ids(tracer: trace.Tracer) -> bool:
    """Whether ``tracer`` can make spans with given ids (``root_span``, ``child_span``'s ``span_id``)."""
    return type(tracer) is LightTracer or isinstance(getattr(tracer, "id_generator", None), PresetIds)


def root_span(tracer: trace.Tracer, name: str, trace_id: int, attributes: Mapping[str, Any], start_time: int) -> Span:
    """A client span that starts the trace ``trace_id`` (a tracer that ``sets_ids``)."""
    if type(tracer) is LightTracer:
        return tracer.start_trace(name, trace_id, SpanKind.CLIENT, attributes, start_time)
    cast(Any, tracer).id_generator.next_trace_id = trace_id
    return tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_time)


def child_span(
    tracer: trace.Tracer,
    parent: Span,
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    start_time: int | None = None,
    span_id: int | None = None,
) -> Span:
    """A span under ``parent`` (starting at ``start_time``, default now; ``span_id`` given, from a tracer
    that ``sets_ids``, or random): ``tracer.start_span(name, context=set_span_in_context(parent), ...)``,
    or for the agent's light tracer and its own span, the same span without the context object."""
    if type(tracer) is LightTracer and type(parent) is LightSpan:  # exact types: ABC isinstance checks are slow
        return tracer.start_child(parent, name, attributes, start_time, span_id)
    if span_id:
        cast(Any, tracer).id_generator.next_span_id = span_id
    return tracer.start_span(
        name, context=trace.set_span_in_context(parent), attributes=attributes, start_time=start_time
    )


class _Phase:
    """``ProbeContext.phase`` as a plain context manager class (a generator-based one cost ~2 µs more per
    phase; an HTTP run has four or five).

    A probe that has a better measure of the phase than the time the block took (the kernel's, which the
    agent's own load does not delay) hands it to :meth:`measured` inside the block: the phase and its span
    then last that long, the span from its start."""

    __slots__ = ("attributes", "child", "ctx", "measured_ms", "name", "start")

    def __init__(self, ctx: ProbeContext, name: str, attributes: dict[str, Any]) -> None:
        self.ctx = ctx
        self.name = name
        self.attributes = attributes
        self.child: Span | None = None
        self.start = 0.0
        self.measured_ms: float | None = None

    def __enter__(self) -> Span | None:
        ctx = self.ctx
        if ctx.tracer is not None and ctx.span is not None:
            self.child = child_span(ctx.tracer, ctx.span, self.name, self.attributes or None)
        self.start = time.perf_counter()
        return self.child

    def measured(self, ms: float | None) -> None:
        """Take ``ms``, the probe's own measure of this phase (the kernel's), when it is plausible: not
        negative and not longer than the block so far. The two come from different clocks (the kernel
        stamps packets in wall-clock time), so a step of the wall clock leaves the block's own time."""
        if ms is not None and 0.0 <= ms <= (time.perf_counter() - self.start) * 1000.0:
            self.measured_ms = ms

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        measured_ms = self.measured_ms
        elapsed_ms = (time.perf_counter() - self.start) * 1000.0 if measured_ms is None else measured_ms
        phases = self.ctx.phases_ms
        phases[self.name] = phases.get(self.name, 0.0) + elapsed_ms
        child = self.child
        if child is not None:
            if exc_type is not None:
                child.set_status(Status(StatusCode.ERROR, exc_type.__name__))
            if measured_ms is None:
                child.end()
            else:
                start_ns = getattr(child, "start_time", None)  # light spans and the SDK's have it
                child.end(start_ns + round(measured_ms * 1_000_000) if isinstance(start_ns, int) else None)


class Probe(Protocol):
    """A probe type. Implementations hold their I/O dependencies (resolver, socket factories) as
    constructor arguments with production defaults, so unit tests swap them."""

    check_type: ClassVar[str]
    traced: ClassVar[bool]  # whether each run is a trace (root span + phase spans)

    async def run(self, ctx: ProbeContext) -> Outcome: ...
