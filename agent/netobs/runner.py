"""The runner: what is common to every probe run.

It enforces the deadline, times the run, opens the root span (for traced types), maps exceptions to
the closed ``ErrorType`` set, builds the :class:`ProbeResult` and hands it to the sinks. A probe never
learns where its data goes.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

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
        try:
            async with asyncio.timeout(check.timeout_s):
                outcome = await probe.run(ctx)
        except asyncio.CancelledError:
            if span is not None:
                span.end()
            raise
        except Exception as exc:
            error_type, message = classify_exception(exc)
            if error_type is ErrorType.TIMEOUT:
                message = f"no complete answer within timeout_s={check.timeout_s:g}"
            if error_type is ErrorType.INTERNAL:
                log.exception("probe %s %s raised", check.name, target)
            outcome = Outcome.fail(error_type, message)
        duration_ms = (time.perf_counter() - start) * 1000.0

        trace_id = span_id = None
        if span is not None:
            sc = span.get_span_context()
            trace_id = format(sc.trace_id, "032x")
            span_id = format(sc.span_id, "016x")
            if ctx.resolved_ip:
                span.set_attribute("network.peer.address", ctx.resolved_ip)
            if not outcome.success:
                span.set_attribute("error.type", str(outcome.error_type))
                span.set_status(Status(StatusCode.ERROR, outcome.error_message))
            span.end()

        result = ProbeResult(
            result_id=str(uuid.uuid4()),
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
