"""The runner: what is common to every probe run.

It enforces the deadline, times the run, opens the root span (for traced types), maps exceptions to
the closed ``ErrorType`` set, builds the :class:`ProbeResult` and hands it to the sinks. A probe never
learns where its data goes.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from netobs._lightspans import span_ids
from netobs.probes.base import Outcome, Probe, ProbeContext
from netobs.result import ErrorType, ProbeResult

log = logging.getLogger(__name__)

ResultSink = Callable[[ProbeResult], None]

_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


def classify_exception(exc: BaseException) -> tuple[ErrorType, str]:
    """Map an exception escaping a probe to (error type, message). Never raises."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ErrorType.TIMEOUT, str(exc) or "deadline passed"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ErrorType.TLS_CERT, getattr(exc, "verify_message", None) or str(exc)
    if isinstance(exc, ssl.SSLError):
        return ErrorType.TLS_HANDSHAKE, getattr(exc, "reason", None) or str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return ErrorType.REFUSED, "connection refused"
    if isinstance(exc, PermissionError):
        return ErrorType.PERMISSION, str(exc)
    if isinstance(exc, OSError) and type(exc).__name__ == "gaierror":
        return ErrorType.RESOLVE, str(exc.strerror or exc)
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return ErrorType.UNREACHABLE, exc.strerror or str(exc)
    if isinstance(exc, ConnectionError | EOFError | asyncio.IncompleteReadError):
        return ErrorType.PROTOCOL, f"connection closed by peer: {exc}"
    if isinstance(exc, OSError):
        return ErrorType.NETWORK, exc.strerror or str(exc)
    return ErrorType.INTERNAL, f"{type(exc).__name__}: {exc}"


_V4_CLEAR = ~((0xF000 << 64) | (0xC << 60))
_V4_SET = (0x4000 << 64) | (0x8 << 60)


def new_result_id() -> str:
    """A random (version 4) UUID as text: what ``str(uuid.uuid4())`` gives, from the random module's generator
    (seeded from the OS at start and again after a fork) instead of a system call per id (0.7 against
    2.2 µs; ids need to be unique, not secret)."""
    h = "%032x" % ((random.getrandbits(128) & _V4_CLEAR) | _V4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def timed_out_message(check: Any) -> str:
    """The error message of a run that passed its deadline."""
    return f"no complete answer within timeout_s={check.timeout_s:g}"


class _Deadline:
    """Cancels the run's task when ``timeout_s`` has passed: ``asyncio.timeout`` without its context
    manager object, state machine and second clock read (a few µs per run at thousands of runs/s)."""

    __slots__ = ("expired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.expired = False

    def fire(self) -> None:
        self.expired = True
        self.task.cancel()


class Runner:
    """Runs one (check, target) at a time; safe to call concurrently for many."""

    def __init__(
        self,
        agent_id: str,
        pop: str,
        probes: Mapping[str, Probe],
        sinks: list[ResultSink] | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.pop = pop
        self.probes = dict(probes)
        self.sinks = list(sinks or [])
        self.tracer = tracer

    async def run(self, check: Any, target: str) -> ProbeResult:
        probe = self.probes[check.type]
        started_at_ms = time.time_ns() // 1_000_000
        start = time.perf_counter()
        ctx = ProbeContext(check=check, target=target, deadline=time.monotonic() + check.timeout_s)
        span = None
        if probe.traced and self.tracer is not None:
            span = self.tracer.start_span(
                f"{check.type} {target}",
                kind=SpanKind.CLIENT,
                attributes={
                    "netobs.check.name": check.name,
                    "netobs.check.type": check.type,
                    "netobs.target": target,
                },
            )
            ctx.span = span
            ctx.tracer = self.tracer
        return await self.complete(ctx, probe.run(ctx), started_at_ms, start, span)

    async def complete(
        self,
        ctx: ProbeContext,
        work: Awaitable[Outcome],
        started_at_ms: int,
        start: float,
        span: trace.Span | None,
    ) -> ProbeResult:
        """Await ``work`` (``ctx``'s run, or its rest) until ``ctx.deadline``, map what it raised, and
        ``finish``; ``start`` is the run's start on ``time.perf_counter``. ``Runner.run`` ends here, and so
        does an HTTP run of ``netobs._native`` that goes on with a redirect."""
        check = ctx.check
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None  # a run always runs in a task
        deadline = _Deadline(task)
        cancelling = task.cancelling()
        timer = loop.call_at(ctx.deadline, deadline.fire)  # the loop's clock is time.monotonic
        try:
            try:
                outcome = await work
            finally:
                timer.cancel()
                # Our own cancellation is taken back (as asyncio.timeout does); anyone else's stands.
                ours = deadline.expired and task.uncancel() <= cancelling
        except asyncio.CancelledError:
            if not ours:
                if span is not None:
                    span.end()
                raise
            outcome = Outcome.fail(ErrorType.TIMEOUT, timed_out_message(check))
        except Exception as exc:
            error_type, message = classify_exception(exc)
            if error_type is ErrorType.TIMEOUT:
                message = timed_out_message(check)
            if error_type is ErrorType.INTERNAL:
                log.exception("probe %s %s raised", check.name, ctx.target)
            outcome = Outcome.fail(error_type, message)
        duration_ms = (time.perf_counter() - start) * 1000.0
        return self.finish(ctx, started_at_ms, duration_ms, outcome, span)

    def finish(
        self,
        ctx: ProbeContext,
        started_at_ms: int,
        duration_ms: float,
        outcome: Outcome,
        span: trace.Span | None,
        *,
        end_ns: int | None = None,
    ) -> ProbeResult:
        """The end of ``ctx``'s run: its root span ended (at ``end_ns``, default now) and the result record
        built and handed to the sinks. ``Runner.run`` ends here, and so do the runs of ``netobs._native``."""
        check, target = ctx.check, ctx.target
        trace_id = span_id = None
        if span is not None:
            trace_int, span_int, _ = span_ids(span)
            trace_id = format(trace_int, "032x")
            span_id = format(span_int, "016x")
            if ctx.resolved_ip:
                span.set_attribute("network.peer.address", ctx.resolved_ip)
            if not outcome.success:
                span.set_attribute("error.type", str(outcome.error_type))
                span.set_status(Status(StatusCode.ERROR, outcome.error_message))
            span.end(end_ns)

        result = ProbeResult(
            result_id=new_result_id(),
            started_at_ms=started_at_ms,
            duration_ms=round(duration_ms, 3),
            agent_id=self.agent_id,
            pop=self.pop,
            check_name=check.name,
            check_type=check.type,
            target=target,
            success=outcome.success,
            resolved_ip=ctx.resolved_ip,
            error_type=None if outcome.success else str(outcome.error_type),
            error_message=None if outcome.success else outcome.error_message,
            phases_ms={k: round(v, 3) for k, v in ctx.phases_ms.items()},
            trace_id=trace_id,
            span_id=span_id,
            labels=dict(check.labels),
        )
        if ctx.detail is not None:
            setattr(result, check.type, ctx.detail)
        for sink in self.sinks:
            try:
                sink(result)
            except Exception:
                log.exception("result sink %r failed", sink)
        return result
